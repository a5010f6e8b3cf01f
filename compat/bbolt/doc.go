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
//   - MmapFlags, Mlock: passed to quiver, which adds the flags to every
//     mapping of the file and, with Mlock, locks the whole file in memory
//     as it grows.
//   - NoStatistics: accepted; quiver's counters are atomics added once per
//     transaction, cheap enough to keep.
//   - StrictMode: honoured here: each commit is followed by Tx.Check, and
//     a failed check panics, as in bbolt.
//   - Tx.WriteFlag: accepted; WriteTo copies from quiver's mapping.
//
// Where quiver answers otherwise than bbolt, the wrappers answer as bbolt:
//
//   - Open of a file that is no database returns ErrInvalid itself, which
//     bbolt's callers compare with ==; only a bbolt file keeps quiver's
//     detail, which names the command that converts it. Of a file whose
//     two metas are damaged, Open returns ErrChecksum itself.
//   - Commit or Rollback inside Update, View or Batch panics.
//   - WriteTo failing in the first two pages says "meta N copy: ...".
//   - BucketStats has bbolt's fields. quiver keeps no bucket inline in its
//     parent's page: InlineBucketN counts the buckets without pages, and
//     InlineBucketInuse is 0.
//
// compat/bbolttest runs bbolt's own tests of its API against this module.
package bbolt
