// Package quiver is an embeddable key/value storage engine: one file of
// fixed-size pages mapped read-only into memory, a copy-on-write B+tree,
// one writer and any number of concurrent readers. Its API keeps bbolt's
// names and semantics, so a program moves from bbolt by changing its import
// path.
//
// # Commit order and what survives a crash
//
// A write transaction never changes a page that a committed state refers
// to. Its commit:
//
//  1. rebalances and splits the nodes it changed and gives them pages that
//     are free in the last committed state (contiguous where the freelist
//     allows, else at the end of the file);
//  2. writes those pages and a commit record listing every page span
//     written with its checksum and the spans the commit freed and
//     allocated (the freelist's delta; a whole freelist checkpoint is added
//     only every so often), then the meta page of the slot the last durable
//     commit's meta is not in, with as few pwrite calls as the layout
//     allows;
//  3. calls fdatasync once (skipped with NoSync, or for a commit that
//     asked for it: Tx.DeferSync);
//  4. publishes the new meta to new readers.
//
// Every page carries an xxhash64 checksum, its own id and the txid that
// wrote it. On open, the newest meta that decodes wins if every span its
// commit record lists is intact; otherwise the other meta wins. That meta
// was made durable by the previous commit's sync before this commit wrote
// anything, and this commit wrote only pages free in it, so a power cut at
// any point of a commit leaves either the new state or the previous one:
// a commit whose Commit returned nil is never lost (unless NoSync; a
// DeferSync commit is durable once a later commit has synced, or
// DB.Sync).
//
// A write or sync that fails leaves the database refusing writes (ErrFailed)
// until it is reopened: after a failed fdatasync the kernel may have dropped
// the dirty pages, so retrying could report a commit durable that is not.
//
// # Readers
//
// A read transaction pins the current snapshot and the mapping epoch it is
// read through, without locks shared with the writer. When the file outgrows
// the mapping, the writer maps it anew; old readers keep the old mapping,
// which is unmapped when its last reader ends. Pages freed by a commit are
// reused only when no open reader can see them. Values returned by Get and
// cursors point into the mapping and are valid until the transaction ends.
//
// # Errors
//
// Damaged bytes never panic: Open returns an error, and a transaction that
// meets a damaged page stops there and reports a *CorruptionError (naming
// the page) from View, Update, Commit or Tx.Err. Tx.Check verifies every
// page checksum and the structure of the whole file.
package quiver
