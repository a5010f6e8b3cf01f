package raftadapter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/quiverdb/quiver"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// State transfer. The state machine's state is the database, so a
// snapshot is the database file itself, as one read transaction sees it
// (Tx.WriteTo): nothing is built in memory, and it can be taken at any
// applied index. The leader streams it beside the MsgSnap; the follower
// stages it in a file next to its database, verifies it, and, once raft
// accepts the snapshot, switches to it with DB.Restore, keeping its own
// raft state (its term and vote) in the new file.
//
// raft asks Storage.Snapshot for the metadata when it decides to send;
// by the time the stream starts the leader may have applied more. The
// message sent carries the metadata the streamed transaction holds (its
// applied index, that entry's term, the configuration as of it), so the
// follower's raft state and its data always agree: no entry is applied
// twice or skipped after an install.

// stagedImageSuffix names staged images: PATH.snap-*.
const stagedImageSuffix = ".snap-"

// stagedSnapshot is a received snapshot: the message and its image, staged
// and verified in a file, waiting for the node's loop.
type stagedSnapshot struct {
	m    *pb.Message
	path string
	done chan error
}

// finish removes the staged image and tells StepSnapshot how it ended.
func (st *stagedSnapshot) finish(err error) {
	_ = os.Remove(st.path)
	st.done <- err
}

// removeStaged removes the images a crash left staged beside path.
func removeStaged(path string) {
	stale, _ := filepath.Glob(path + stagedImageSuffix + "*")
	for _, f := range stale {
		_ = os.Remove(f)
	}
}

// Snapshots returns the number of snapshots this node has streamed to
// followers and installed from a leader.
func (n *Node) Snapshots() (sent, installed int64) { return n.sent.Load(), n.installed.Load() }

// send hands the Ready's messages to the transport, and each snapshot to
// a goroutine that streams it.
func (n *Node) send(msgs []*pb.Message) {
	var plain []*pb.Message
	for _, m := range msgs {
		if m.GetType() != pb.MessageType_MsgSnap {
			if plain == nil {
				plain = make([]*pb.Message, 0, len(msgs))
			}
			plain = append(plain, m)
			continue
		}
		to := m.GetTo()
		if n.sending[to] {
			continue // the stream under way reports to raft
		}
		n.sending[to] = true
		n.snapWG.Add(1)
		go func() {
			defer n.snapWG.Done()
			err := n.streamSnapshot(m)
			if err == nil {
				n.sent.Add(1)
			}
			select {
			case n.snapDone <- snapReport{to: to, err: err}:
			case <-n.ctx.Done():
			}
		}()
	}
	if len(plain) > 0 {
		n.cfg.Transport.Send(plain)
	}
}

// streamSnapshot sends m with the database as a read transaction begun
// now sees it, and the metadata of that state.
func (n *Node) streamSnapshot(m *pb.Message) error {
	tx, err := n.cfg.DB.Begin(false)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	meta, err := imageMetadata(tx)
	if err != nil {
		return err
	}
	msg := proto.Clone(m).(*pb.Message)
	msg.Snapshot = &pb.Snapshot{Metadata: meta}
	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, err := tx.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	err = n.cfg.Transport.SendSnapshot(n.ctx, msg, pr)
	// The transport may stop reading early: end the writer before the
	// transaction.
	pr.CloseWithError(errors.New("raftadapter: the snapshot transfer ended"))
	<-written
	return err
}

// imageMetadata is the snapshot metadata of the state tx sees.
func imageMetadata(tx *quiver.Tx) (*pb.SnapshotMetadata, error) {
	st, err := loadState(tx)
	if err != nil {
		return nil, err
	}
	term := st.snap.GetTerm()
	if st.applied != st.snap.GetIndex() {
		v := tx.Bucket(bucketName).Bucket(logBucket).Get(indexKey(st.applied))
		if v == nil {
			return nil, corruptf("applied entry %d is not in the log [%d, %d]", st.applied, st.first, st.last)
		}
		e, err := decodeEntry(st.applied, v)
		if err != nil {
			return nil, err
		}
		term = e.GetTerm()
	}
	return &pb.SnapshotMetadata{Index: new(st.applied), Term: new(term), ConfState: st.conf}, nil
}

// StepSnapshot hands the node a snapshot from the leader (a MsgSnap) with
// its database image, read from image to its end. The image is written
// next to the database and verified (it opens, every page passes its
// checksum and Check, and the raft state in it matches the message)
// before raft sees the message; if raft accepts the snapshot, the
// database switches to the image atomically (DB.Restore). It returns once
// the node has handled the message: nil whether raft installed the
// snapshot or ignored it as stale, an error when the image is refused.
func (n *Node) StepSnapshot(ctx context.Context, m *pb.Message, image io.Reader) error {
	if m.GetType() != pb.MessageType_MsgSnap || m.GetTo() != n.cfg.ID || m.GetSnapshot().GetMetadata().GetIndex() == 0 {
		return fmt.Errorf("raftadapter: StepSnapshot: a %v to %d for snapshot %d: not a snapshot for node %d",
			m.GetType(), m.GetTo(), m.GetSnapshot().GetMetadata().GetIndex(), n.cfg.ID)
	}
	select {
	case <-n.done:
		return n.stopErr()
	default:
	}
	path := n.cfg.DB.Path()
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+stagedImageSuffix+"*")
	if err != nil {
		return err
	}
	st := &stagedSnapshot{m: m, path: f.Name(), done: make(chan error, 1)}
	handed := false
	defer func() {
		if !handed {
			_ = os.Remove(st.path)
		}
	}()
	_, err = io.CopyBuffer(f, image, make([]byte, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raftadapter: receiving snapshot %d: %w", m.GetSnapshot().GetMetadata().GetIndex(), err)
	}
	if err := verifyImage(st.path, n.cfg.DB, m.GetSnapshot().GetMetadata()); err != nil {
		return err
	}
	select {
	case n.snapc <- st:
		handed = true
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stopErr()
	}
	select {
	case err := <-st.done:
		return err
	case <-n.done:
		return n.stopErr()
	}
}

// verifyImage checks the staged image at path: it opens as a database
// with the page size of db, passes Check, and holds raft state whose
// applied index and configuration are those of meta.
func verifyImage(path string, db *quiver.DB, meta *pb.SnapshotMetadata) error {
	fail := func(err error) error {
		if !errors.Is(err, quiver.ErrCorrupt) {
			err = fmt.Errorf("%w: %w", quiver.ErrCorrupt, err)
		}
		return fmt.Errorf("raftadapter: the image of snapshot %d is refused: %w", meta.GetIndex(), err)
	}
	img, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer img.Close()
	var pageSize uint32
	if err := db.View(func(tx *quiver.Tx) error { pageSize = tx.Meta().PageSize; return nil }); err != nil {
		return err
	}
	return img.View(func(tx *quiver.Tx) error {
		if ps := tx.Meta().PageSize; ps != pageSize {
			return fail(fmt.Errorf("%d-byte pages, the database has %d-byte ones", ps, pageSize))
		}
		for err := range tx.Check() {
			return fail(err)
		}
		got, err := imageMetadata(tx)
		if err != nil {
			return fail(err)
		}
		if got.GetIndex() != meta.GetIndex() || got.GetTerm() != meta.GetTerm() || !proto.Equal(got.GetConfState(), pb.EnsureConfState(meta.GetConfState())) {
			return fail(fmt.Errorf("it holds the state of index %d term %d, the message says index %d term %d", got.GetIndex(), got.GetTerm(), meta.GetIndex(), meta.GetTerm()))
		}
		return nil
	})
}

// install switches the database to the staged image of rd's snapshot,
// with this node's raft state written into it: its HardState, the
// snapshot's configuration, an empty log after the snapshot. Then the
// storage and the state machine read the new state.
func (n *Node) install(rd raft.Ready) error {
	meta := rd.Snapshot.GetMetadata()
	st := n.staged
	if st == nil || st.m.GetSnapshot().GetMetadata().GetIndex() != meta.GetIndex() {
		return fmt.Errorf("raftadapter: raft restored snapshot %d, and no image of it is staged", meta.GetIndex())
	}
	hs := rd.HardState
	if raft.IsEmptyHardState(hs) {
		hs, _, _ = n.storage.InitialState()
		if hs == nil {
			hs = &pb.HardState{}
		}
	}
	// The image's log ends at the snapshot: its commit is the snapshot's
	// index (raft's on restoring it). A higher commit of rd, for entries
	// after it, is written with those entries in the next transaction; a
	// crash between the two must not leave a commit past the log.
	hs = proto.Clone(hs).(*pb.HardState)
	hs.Commit = new(meta.GetIndex())
	f, err := os.Open(st.path)
	if err != nil {
		return err
	}
	defer f.Close()
	var gen uint64 // the write-ahead file's next generation (0: no file)
	if n.wal != nil {
		gen = newGen(n.wal.gen)
	}
	if err := n.cfg.DB.Restore(f, func(db *quiver.DB) error {
		return db.Update(func(tx *quiver.Tx) error { return adoptImage(tx, meta, hs, gen) })
	}); err != nil {
		return fmt.Errorf("raftadapter: installing snapshot %d: %w", meta.GetIndex(), err)
	}
	if n.wal != nil {
		// The file's records are older than the image, which Restore
		// made durable with the new generation.
		if err := n.wal.reset(gen); err != nil {
			return err
		}
	}
	n.installed.Add(1)
	n.pending = nil // the image replaced the log they extended
	if err := n.storage.reload(); err != nil {
		return err
	}
	if r, ok := n.cfg.StateMachine.(Restorer); ok {
		if err := r.Restored(n.cfg.DB); err != nil {
			return fmt.Errorf("raftadapter: the state machine's Restored: %w", err)
		}
	}
	n.applied.Store(meta.GetIndex())
	return nil
}

// adoptImage replaces the raft state of a leader's image, in tx, by this
// node's: its HardState (a term and vote it must keep), the snapshot's
// configuration and metadata, an empty log, and its write-ahead
// generation (gen; 0: none, and the leader's is dropped too).
func adoptImage(tx *quiver.Tx, meta *pb.SnapshotMetadata, hs *pb.HardState, gen uint64) error {
	b := tx.Bucket(bucketName)
	if b == nil {
		return corruptf("the snapshot image holds no bucket %q", bucketName)
	}
	if err := b.DeleteBucket(logBucket); err != nil {
		return err
	}
	if _, err := b.CreateBucket(logBucket); err != nil {
		return err
	}
	put := func(k []byte, m proto.Message) error {
		v, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	}
	if err := b.Delete(hardStateKey); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(hs) {
		if err := put(hardStateKey, hs); err != nil {
			return err
		}
	}
	if err := put(confStateKey, pb.EnsureConfState(meta.GetConfState())); err != nil {
		return err
	}
	if err := put(snapshotKey, meta); err != nil {
		return err
	}
	if gen == 0 {
		if err := b.Delete(walGenKey); err != nil {
			return err
		}
	} else if err := b.Put(walGenKey, binary.BigEndian.AppendUint64(nil, gen)); err != nil {
		return err
	}
	return b.Put(appliedKey, indexKey(meta.GetIndex()))
}
