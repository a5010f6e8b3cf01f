// Package bbolt is bbolt's API (v1.5.0) backed by quiver, so that a
// program written for bbolt, etcd included, moves onto quiver with one
// line in its go.mod:
//
//	replace go.etcd.io/bbolt => github.com/quiverdb/quiver/compat/bbolt vX.Y.Z
//
// Every call delegates to quiver; DB, Tx, Bucket and Cursor are thin
// wrappers that keep bbolt's types (Tx.DB returns *DB, Bucket.Tx returns
// *Tx). The file is quiver's format: a bbolt file is refused with an error
// naming `quiver import --from-bbolt`, which converts it.
//
// What the compat does with the bbolt settings that have no quiver
// meaning:
//
//   - NoFreelistSync, PreLoadFreelist: accepted and kept in the DB's
//     fields; quiver persists its freelist as small per-commit deltas and
//     always loads it, so there is nothing to skip and nothing to preload.
//   - FreelistType: "array" and "hashmap" select quiver's two freelists;
//     the empty type is quiver's default, the hashmap one.
//   - InitialMmapSize, NoGrowSync: accepted; quiver maps with room to spare
//     (readers never block the writer) and its one fdatasync per commit
//     covers the file's growth.
//   - MmapFlags, Mlock: accepted and kept; the mapping is made by quiver
//     with its own advice.
//   - NoStatistics: accepted; quiver's counters are atomics added once per
//     transaction, cheap enough to keep.
//   - StrictMode: honoured here: each commit is followed by Tx.Check, and
//     a failed check panics, as in bbolt.
//   - Tx.WriteFlag: accepted; WriteTo copies from quiver's mapping.
package bbolt
