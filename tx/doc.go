// Package tx is quiver's transactions: a copy-on-write B+tree over any page
// store that implements Backend. It holds Tx, Bucket and Cursor (the API
// programs use, with bbolt's names and contracts), the in-memory nodes of a
// write transaction, the commit sequence (rebalance, split, allocate,
// encode) and Check.
//
// Programs import the root package, github.com/quiverdb/quiver, which opens
// files and re-exports Tx, Bucket and Cursor under the same names; this
// package's documentation is where their methods are described.
//
// # Transactions and handles
//
// A read-only transaction sees the snapshot of the last commit before it
// began, for its whole life; any number run at once. One read-write
// transaction runs at a time and sees its own changes. A Tx and the Buckets
// and Cursors it hands out are for one goroutine at a time. They are valid
// until the transaction ends (Commit, Rollback, or the return of the
// function given to Update or View): afterwards methods that return an
// error return ErrTxClosed and the others return nil or zero values. Keys
// and values returned by Get and cursors point into the mapped file (or the
// transaction's memory) and are valid only until the transaction ends; copy
// them to keep them. A Bucket deleted in its transaction answers
// ErrBucketNotFound, or nothing, from then on.
//
// # The Backend contract
//
// A transaction reads pages straight from the Snapshot it was begun on (a
// meta page and a mapping of the file) and asks its Backend for everything
// else: pages to write (Allocate, Free), the backend's own pages of the
// commit (Reserve), scratch to encode pages into (WriteBuffer), the commit
// itself (Commit), and the end of the transaction (End). The root package's
// DB is the file-backed Backend: it owns the file, the meta pages, the
// freelist, the writer lock and the reader registry. A Backend is called by
// one transaction at a time for writes; Pin and End may be called from
// several read transactions at once.
package tx
