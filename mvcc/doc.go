// Package mvcc is a revisioned key space on quiver, with etcd's data model
// and semantics (go.etcd.io/etcd/server/v3/storage/mvcc):
//
//   - every write transaction that changes anything gets the next main
//     revision; each change in it a sub revision;
//   - every key carries its create revision, mod revision, version and
//     lease; a delete writes a tombstone and ends the key's generation, and
//     a later put starts a new one at version 1;
//   - Range reads a key, a range or a prefix at any revision since the last
//     compaction, with a limit, count only or keys only; Txn compares keys
//     and runs one list of operations or the other as one change;
//   - Compact discards history before a revision; HashKV hashes the
//     contents at a revision, equal across replicas and equal to etcd's.
//
// # Layout
//
// Every revision is a record in the bucket "mvcc.rev" of the database,
// keyed by its revision in big-endian (main, sub), so that revision order
// is byte order; compaction progress is kept in "mvcc.meta". An in-memory
// index (a github.com/google/btree of keys) maps each key to its history,
// 8 bytes a revision; Open rebuilds it by scanning the records.
//
// # Writes and reads
//
// A write is applied in memory, in revision order, under the store's
// writer lock, and joins the pending batch; a committer goroutine writes
// each batch in one engine transaction (group commit) and the write returns
// once it is durable. Reads go to the index and to an engine read
// transaction at the last durable revision: they never wait for a commit.
package mvcc
