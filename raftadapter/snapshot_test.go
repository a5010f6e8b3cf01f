package raftadapter

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// logInfo returns the stored bytes (keys and values) of node id's raft log
// and its first index.
func (c *cluster) logInfo(id uint64) (size int64, first uint64) {
	c.t.Helper()
	c.mu.Lock()
	db := c.dbs[id]
	c.mu.Unlock()
	err := db.View(func(tx *quiver.Tx) error {
		return tx.Bucket(bucketName).Bucket(logBucket).ForEach(func(k, v []byte) error {
			if first == 0 {
				first = binary.BigEndian.Uint64(k)
			}
			size += int64(len(k) + len(v))
			return nil
		})
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return size, first
}

// putMany proposes n puts of 1 KiB values through node id and returns the
// index of the last.
func (c *cluster) putMany(id uint64, prefix string, n int) uint64 {
	c.t.Helper()
	value := strings.Repeat("v", 1000)
	var last uint64
	for i := 0; i < n; i++ {
		idx, err := c.propose(id, fmt.Sprintf("%s%04d=%s", prefix, i, value))
		if err != nil {
			c.t.Fatalf("put %s%04d through node %d: %v", prefix, i, id, err)
		}
		last = idx
	}
	return last
}

func appliedCount(t *testing.T, kv map[string]string) uint64 {
	t.Helper()
	v := kv["#applied"]
	if len(v) != 8 {
		t.Fatalf("no #applied counter: %q", v)
	}
	return binary.BigEndian.Uint64([]byte(v))
}

// TestSnapshotCatchUp: with a small catch-up window, the leader's log is
// compacted past a stopped follower, and stays within the window; the
// follower, restarted, is brought up to date by a snapshot (the leader's
// database streamed), then by the log; every entry is applied exactly
// once, across the install and a restart of every node.
//
// It runs with the engine's commits syncing, and with write-ahead files
// (an install starts a new generation of the follower's file).
func TestSnapshotCatchUp(t *testing.T) {
	for _, wal := range []bool{false, true} {
		t.Run(fmt.Sprintf("wal=%v", wal), func(t *testing.T) { snapshotCatchUp(t, wal) })
	}
}

func snapshotCatchUp(t *testing.T, wal bool) {
	const window = 32 << 10
	c := newClusterWith(t, 3, testutil.Seed(t), func(c *cluster) { c.logWindow, c.wal = window, wal })
	lead := c.leader()
	c.putMany(lead, "a", 20)
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	behind := c.node(follower).Applied()
	c.stop(follower)
	last := c.putMany(lead, "b", 200)

	size, first := c.logInfo(lead)
	t.Logf("leader's log: %d bytes from entry %d to %d (the follower applied %d)", size, first, last, behind)
	if first <= behind+1 {
		t.Fatalf("the leader's log starts at %d: not compacted past the follower's %d", first, behind)
	}
	// Trimmed when window/8 bytes came since the last trim.
	if size > window+window/8+4<<10 {
		t.Fatalf("the leader's log holds %d bytes, window %d", size, window)
	}

	c.start(follower)
	kv := c.converge(last)
	if _, installed := c.node(follower).Snapshots(); installed < 1 {
		t.Fatalf("the follower caught up without a snapshot")
	}
	if sent, _ := c.node(lead).Snapshots(); sent < 1 {
		t.Fatalf("the leader counts no snapshot sent")
	}
	if n := appliedCount(t, kv); n != 220 {
		t.Fatalf("%d entries applied, want 220", n)
	}
	// The follower's log starts after the snapshot, and the image kept
	// no entry of the leader's log.
	if _, f := c.logInfo(follower); f != 0 && f <= behind+1 {
		t.Fatalf("the follower's log starts at %d, before the snapshot", f)
	}

	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.start(id)
	}
	idx, err := c.propose(c.leader(), "c=1")
	if err != nil {
		t.Fatal(err)
	}
	kv = c.converge(idx)
	if n := appliedCount(t, kv); n != 221 || len(kv) != 222 {
		t.Fatalf("after restarts: %d entries applied, %d keys; want 221, 222", n, len(kv))
	}
}

// TestMembershipReplaceWipedNode: a member whose disk is lost is removed,
// and a new member added in its place, first as a learner: it joins with
// an empty database, catches up by snapshot, is promoted, and the cluster
// goes on with it. A change raft cannot make is refused with an error,
// not a panic, on every member.
func TestMembershipReplaceWipedNode(t *testing.T) {
	c := newClusterWith(t, 3, testutil.Seed(t), func(c *cluster) { c.logWindow = 16 << 10 })
	lead := c.leader()
	c.putMany(lead, "a", 40)
	lost := c.ids[2]
	if lost == lead {
		lost = c.ids[1]
	}
	c.stop(lost)
	if err := os.Remove(filepath.Join(c.dir, fmt.Sprintf("node%d.db", lost))); err != nil {
		t.Fatal(err)
	}
	change := func(typ pb.ConfChangeType, ids ...uint64) error {
		cc := &pb.ConfChangeV2{}
		for _, id := range ids {
			cc.Changes = append(cc.Changes, &pb.ConfChangeSingle{Type: typ.Enum(), NodeId: new(id)})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.node(c.leader()).ProposeConfChange(ctx, cc)
	}
	if err := change(pb.ConfChangeType_ConfChangeRemoveNode, lost); err != nil {
		t.Fatalf("removing node %d: %v", lost, err)
	}
	c.ids = slices.DeleteFunc(c.ids, func(id uint64) bool { return id == lost })

	const newID = 4
	c.ids = append(c.ids, newID)
	c.startNode(newID, true)
	if err := change(pb.ConfChangeType_ConfChangeAddLearnerNode, newID); err != nil {
		t.Fatalf("adding learner %d: %v", newID, err)
	}
	last := c.putMany(c.leader(), "b", 20)
	c.converge(last)
	if _, installed := c.node(newID).Snapshots(); installed < 1 {
		t.Fatalf("the new member caught up without a snapshot")
	}
	if err := change(pb.ConfChangeType_ConfChangeAddNode, newID); err != nil {
		t.Fatalf("promoting %d: %v", newID, err)
	}
	// Removing every voter at once is refused by raft's rules.
	err := change(pb.ConfChangeType_ConfChangeRemoveNode, c.ids...)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("removing every voter: %v, want a refusal", err)
	}
	last = c.putMany(c.leader(), "c", 10)
	kv := c.converge(last)
	if n := appliedCount(t, kv); n != 70 {
		t.Fatalf("%d entries applied, want 70", n)
	}
	for _, id := range c.ids {
		_, cs, _ := c.node(id).Storage().InitialState()
		if want := []uint64{c.ids[0], c.ids[1], newID}; !slices.Equal(slices.Sorted(slices.Values(cs.GetVoters())), slices.Sorted(slices.Values(want))) || len(cs.GetLearners()) != 0 {
			t.Fatalf("node %d's configuration: %v, want voters %v", id, cs, want)
		}
	}
	// The new member votes: with the leader stopped, the two left elect
	// one of themselves and commit.
	old := c.leader()
	c.stop(old)
	c.ids = slices.DeleteFunc(c.ids, func(id uint64) bool { return id == old })
	if _, err := c.propose(c.leader(), "d=1"); err != nil {
		t.Fatalf("a proposal after the leader stopped: %v", err)
	}
}

// TestStepSnapshotRefusesBadImages: an image that is not a database, one
// that is cut short, and one whose raft state is not the message's are
// refused with an error naming the snapshot, before raft sees them; the
// member's data and raft state stay as they were, and it goes on.
func TestStepSnapshotRefusesBadImages(t *testing.T) {
	c := newCluster(t, 3, testutil.Seed(t))
	lead := c.leader()
	last := c.putMany(lead, "a", 5)
	c.converge(last)
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	// A real image, from the leader, at its applied index.
	var image bytes.Buffer
	var meta *pb.SnapshotMetadata
	c.mu.Lock()
	leadDB := c.dbs[lead]
	c.mu.Unlock()
	if err := leadDB.View(func(tx *quiver.Tx) error {
		var err error
		if meta, err = imageMetadata(tx); err != nil {
			return err
		}
		_, err = tx.WriteTo(&image)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	msg := func(m *pb.SnapshotMetadata) *pb.Message {
		return &pb.Message{Type: pb.MessageType_MsgSnap.Enum(), From: new(lead), To: new(follower), Term: c.node(lead).Status().Term, Snapshot: &pb.Snapshot{Metadata: m}}
	}
	other := proto.Clone(meta).(*pb.SnapshotMetadata)
	other.Index = new(meta.GetIndex() + 7)
	before := c.contents(follower)
	cases := []struct {
		name string
		m    *pb.Message
		img  []byte
		want string
	}{
		{"not a database", msg(meta), bytes.Repeat([]byte("x"), 8192), "is refused"},
		{"cut short", msg(meta), image.Bytes()[:image.Len()/2], "is refused"},
		{"another index", msg(other), image.Bytes(), "the message says index"},
		{"not a snapshot", &pb.Message{Type: pb.MessageType_MsgApp.Enum(), To: new(follower)}, image.Bytes(), "not a snapshot"},
	}
	for _, tc := range cases {
		err := c.node(follower).StepSnapshot(context.Background(), tc.m, bytes.NewReader(tc.img))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	if _, installed := c.node(follower).Snapshots(); installed != 0 {
		t.Fatalf("%d snapshots installed from bad images", installed)
	}
	if after := c.contents(follower); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("the follower's data changed")
	}
	staged, _ := filepath.Glob(filepath.Join(c.dir, "*"+stagedImageSuffix+"*"))
	if len(staged) != 0 {
		t.Fatalf("staged images left behind: %v", staged)
	}
	c.converge(c.putMany(lead, "b", 5))
}
