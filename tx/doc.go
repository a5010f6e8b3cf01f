// Package tx implements quiver's transactions over the copy-on-write
// B+tree: Tx, Bucket, Cursor, the in-memory nodes of a write transaction,
// the commit sequence (rebalance, split, allocate, encode) and Check.
//
// A transaction reads pages straight from the mapping epoch it pinned and
// talks to its database through Backend, so the database's file, meta pages,
// freelist, locks and reader registry stay in the root package. The root
// package re-exports Tx, Bucket and Cursor under the same names.
package tx
