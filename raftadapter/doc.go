// Package raftadapter runs quiver as a replicated state machine on
// go.etcd.io/raft/v3: raft does consensus, quiver does storage, and this
// package is the glue.
//
// # The raft log in the engine file
//
// Storage implements raft.Storage on a quiver database: the log entries
// (under big-endian index keys), the HardState, the ConfState and the
// snapshot metadata live in one bucket of the same file as the state
// machine's data, so that one engine commit, with one fdatasync, makes an
// append, a new HardState and the application of committed entries durable
// together. Storage changes only through a Writer bound to a write
// transaction; the changes are published to raft's reads when that
// transaction commits (Tx.OnCommit), and never if it rolls back.
//
// Memory is bounded in bytes, not in entries: only the newest entries are
// cached, up to StorageOptions.CacheBytes; older ones are read from the
// file when a lagging follower needs them. (etcd's count-based window of
// in-memory catch-up entries is what turned 2 MB values into 10 GB of RSS.)
//
// # Nodes
//
// Node drives a raft.RawNode over Storage. Each Ready is handled in one
// engine write transaction: the new entries, the HardState, the committed
// entries (applied by the StateMachine, with configuration changes applied
// to raft), the applied index and, now and then, the log's compaction;
// then, once that commit is durable, the messages are sent, the proposers
// told and raft advanced (raft's synchronous storage contract: nothing is
// promised to a peer before it is on disk). A Ready with a snapshot
// installs it first (below). A new cluster is bootstrapped as raft recommends: every member
// starts from a snapshot at index 1 whose configuration is the first
// membership.
//
// # Log compaction and snapshots
//
// Each member compacts its own log to a catch-up window sized in bytes of
// stored entries (Config.LogWindow), never past its applied index. A
// follower that needs an entry below the leader's window gets a snapshot.
// The state machine's state is the database, so the snapshot is the
// database file as one read transaction sees it (Tx.WriteTo), streamed by
// Transport.SendSnapshot beside the MsgSnap, never built in memory; the
// metadata sent is the one that transaction holds (its applied index, the
// term of that entry, the configuration as of it). The follower stages
// the image in a file next to its database and verifies it (it opens,
// passes Check, and holds the raft state the message names) before raft
// sees the message; once raft accepts the snapshot, DB.Restore switches
// the database to it atomically, with the follower's own HardState, the
// snapshot's configuration and an empty log written into it first. A
// crash before the switch leaves the old state, after it the new one,
// whole; a state machine with memory of its own reloads it (Restorer).
//
// # Membership
//
// Node.ProposeConfChange proposes a ConfChangeV2: add a voter or a
// learner, promote a learner, remove a member. A change raft cannot make
// (removing the last voter, promoting a voter) is skipped on every member
// alike and reported to its proposer, where raft itself would panic. A new
// member starts with Config.Join and an empty database; the leader brings
// it up to date with a snapshot.
//
// With a write-ahead file (Config.WAL) the file makes each Ready durable,
// and the committed entries of several Readies are applied in one write
// transaction, kept open for at most Config.ApplyBatch (5 ms): the proposers are
// told as their entries are applied, and the transaction commits, without
// its own fdatasync, when the time is up, when a reader waits for it
// (Fence), or before anything that must see the database (a snapshot, a
// configuration change, a new write-ahead generation). etcd's backend
// batches its commits the same way (every 100 ms).
//
// Reads: LinearizableRead waits for raft's ReadIndex (the leader confirms
// its leadership with a quorum) and for this member to apply up to it;
// SerializableRead reads the member's own state, possibly stale, but never
// older than a result it handed out (Fence).
//
// Transports: TCPTransport for real clusters, Network for tests in one
// process. Both are best effort: raft copes with lost, duplicated and
// reordered messages.
//
// Damaged stored state (an entry that does not decode, a gap in the log, a
// HardState or ConfState that does not parse) is reported as an error that
// matches quiver.ErrCorrupt and names what is damaged; it never panics.
package raftadapter
