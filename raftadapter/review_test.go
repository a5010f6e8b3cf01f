package raftadapter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Regression tests of the defects a review of the first raftadapter
// increments found; each failed before its fix.

// An idle cluster after an election: the leader's empty entry of its term
// counts as applied, so ReadIndex returns without another write.
func TestReadIndexOnIdleCluster(t *testing.T) {
	c := newCluster(t, 3, 1)
	n := c.node(c.leader())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.ReadIndex(ctx); err != nil {
		t.Fatalf("ReadIndex on an idle cluster: %v (applied %d, commit %d)", err, n.Applied(), n.Status().Commit)
	}
}

// blockTransport blocks the node's loop in its first Send until released.
type blockTransport struct {
	once  sync.Once
	block chan struct{}
}

func (b *blockTransport) Send(msgs []*pb.Message) {
	if len(msgs) > 0 {
		b.once.Do(func() { <-b.block })
	}
}

func (b *blockTransport) SendSnapshot(context.Context, *pb.Message, io.Reader) error {
	return errors.New("blockTransport sends no snapshots")
}

// Read requests whose callers gave up (no leader, the loop busy) leave
// nothing behind.
func TestReadRequestsDoNotLeak(t *testing.T) {
	db, err := quiver.Open(filepath.Join(t.TempDir(), "a.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tr := &blockTransport{block: make(chan struct{})}
	n, err := StartNode(Config{ID: 1, Peers: []uint64{1, 2, 3}, DB: db, StateMachine: kvMachine{}, Transport: tr, TickInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	time.Sleep(100 * time.Millisecond) // the loop is blocked in Send (a pre-vote)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			_ = n.ReadIndex(ctx)
		}()
	}
	wg.Wait()
	close(tr.block)
	time.Sleep(200 * time.Millisecond)
	n.mu.Lock()
	left := len(n.reads)
	n.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d read requests left after every caller returned", left)
	}
}

// Stop may be called from several goroutines at once.
func TestConcurrentStop(t *testing.T) {
	db, err := quiver.Open(filepath.Join(t.TempDir(), "a.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 20; i++ {
		n, err := StartNode(Config{ID: 1, Peers: []uint64{1}, DB: db, StateMachine: kvMachine{}, Transport: NewNetwork(1).Endpoint(1)})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j := 0; j < 4; j++ {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; n.Stop() }()
		}
		close(start)
		wg.Wait()
	}
}

// The in-process network duplicates messages but never a forwarded
// proposal, which raft would append twice: every proposal through a
// follower is applied once.
func TestDuplicatingNetworkAppliesProposalsOnce(t *testing.T) {
	c := newCluster(t, 3, 1)
	lead := c.leader()
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	c.net.SetFaults(0, 1, 0) // every other message delivered twice
	var last uint64
	for i := 0; i < 10; i++ {
		idx, err := c.propose(follower, fmt.Sprintf("k%d=v", i))
		if err != nil {
			t.Fatal(err)
		}
		last = idx
	}
	c.net.SetFaults(0, 0, 0)
	kv := c.converge(last)
	if got := binary.BigEndian.Uint64([]byte(kv["#applied"])); got != 10 {
		t.Fatalf("10 proposals, %d entries applied", got)
	}
}

// A stored commit index outside the log is reported as damage at start,
// not left to raft, which panics on it.
func TestStartRefusesDamagedHardState(t *testing.T) {
	db, _ := openTestDB(t)
	s, err := OpenStorage(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(t, s, func(w *Writer) error {
		return w.SetHardState(&pb.HardState{Term: new(uint64(1)), Commit: new(uint64(100))})
	}); err != nil {
		t.Fatal(err)
	}
	_, err = StartNode(Config{ID: 1, Peers: []uint64{1}, DB: db, StateMachine: kvMachine{}, Transport: NewNetwork(1).Endpoint(1)})
	if !quiver.IsCorruption(err) {
		t.Fatalf("StartNode on a commit past the log: %v, want a corruption error", err)
	}
}

// Two Writers whose commits publish out of order leave no stale entry in
// the cache.
func TestStoragePublishOutOfOrder(t *testing.T) {
	db, _ := openTestDB(t)
	s, err := OpenStorage(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ents []*pb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, entry(i, 1, "a"))
	}
	if err := write(t, s, func(w *Writer) error { return w.Append(ents) }); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	committed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = db.Update(func(tx *quiver.Tx) error {
			tx.OnCommit(func() { close(committed); <-hold }) // runs before the Writer's publish
			w, err := s.Writer(tx)
			if err != nil {
				return err
			}
			return w.Append([]*pb.Entry{entry(8, 2, "b"), entry(9, 2, "b"), entry(10, 2, "b")})
		})
	}()
	<-committed
	if err := write(t, s, func(w *Writer) error { return w.Append([]*pb.Entry{entry(11, 2, "c")}) }); err != nil {
		t.Fatal(err)
	}
	close(hold)
	<-done
	term, _ := s.Term(9)
	got, err := s.Entries(8, 12, math.MaxUint64)
	if err != nil || len(got) != 4 {
		t.Fatalf("Entries(8, 12): %d, %v", len(got), err)
	}
	if term != 2 || !proto.Equal(got[1], entry(9, 2, "b")) {
		t.Fatalf("Term(9) = %d, entry 9 = %v; the file holds term 2", term, got[1])
	}
}

// Close returns at once even when a peer stops reading and a write is
// blocked.
func TestTCPCloseWithAPeerThatDoesNotRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never read
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	tr, err := NewTCPTransport(TCPConfig{ID: 1, ClusterID: 1, Listen: "127.0.0.1:0", Peers: map[uint64]string{2: ln.Addr().String()}, WriteTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		tr.Send([]*pb.Message{{To: new(uint64(2)), From: new(uint64(1)), Type: pb.MessageType_MsgApp.Enum(), Entries: []*pb.Entry{{Data: big}}}})
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	tr.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v (blocked on a peer that does not read)", d)
	}
}
