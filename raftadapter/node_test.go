package raftadapter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
)

// kvMachine is a test state machine: each entry is "key=value", put into
// bucket kv; it also counts the entries it applied in key "#applied", so
// that applying an entry twice shows. The result is the entry's index.
type kvMachine struct{}

func (kvMachine) Apply(tx *quiver.Tx, ents []Entry) ([]any, error) {
	b, err := tx.CreateBucketIfNotExists([]byte("kv"))
	if err != nil {
		return nil, err
	}
	var n uint64
	if v := b.Get([]byte("#applied")); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	res := make([]any, len(ents))
	for i, e := range ents {
		k, v, ok := bytes.Cut(e.Data, []byte("="))
		if !ok {
			return nil, fmt.Errorf("kvMachine: entry %d is not key=value: %q", e.Index, e.Data)
		}
		if err := b.Put(k, v); err != nil {
			return nil, err
		}
		n++
		res[i] = e.Index
	}
	return res, b.Put([]byte("#applied"), binary.BigEndian.AppendUint64(nil, n))
}

// cluster is a set of nodes on one in-process network, each with its own
// database file.
type cluster struct {
	t     *testing.T
	net   *Network
	dir   string
	ids   []uint64
	mu    sync.Mutex // guards dbs and nodes, which faults change under clients
	dbs   map[uint64]*quiver.DB
	nodes map[uint64]*Node
	// machine is the members' state machine (kvMachine if nil), and
	// contentsOf the bucket converge compares ("kv" if empty).
	machine    StateMachine
	contentsOf string
	// logWindow is the members' Config.LogWindow (0: the default).
	logWindow int64
	// newMachine, if set, makes each member's state machine when it
	// starts (over machine); one that has Close() error is closed when
	// the member stops, before its database.
	newMachine func(db *quiver.DB) (StateMachine, error)
	machines   map[uint64]StateMachine
	// dbOptions, if set, gives the options each member's database opens
	// with.
	dbOptions func(id uint64) *quiver.Options
	// wal gives each member a write-ahead file (Config.WAL) beside its
	// database, opened with walOpen(id) if set.
	wal       bool
	walOpen   func(id uint64) func(string, int, os.FileMode) (quiver.File, error)
	walRotate int64         // Config.walRotate
	batchAge  time.Duration // Config.ApplyBatch
}

// node returns the running node id, or nil.
func (c *cluster) node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func newCluster(t *testing.T, n int, seed uint64) *cluster {
	return newClusterOf(t, n, seed, nil, "")
}

// newClusterOf is newCluster with members running machine, compared by
// bucket (nil, "": kvMachine and "kv").
func newClusterOf(t *testing.T, n int, seed uint64, machine StateMachine, bucket string) *cluster {
	return newClusterWith(t, n, seed, func(c *cluster) { c.machine, c.contentsOf = machine, bucket })
}

// newClusterWith is newCluster with the cluster's settings changed by set
// before the nodes start.
func newClusterWith(t *testing.T, n int, seed uint64, set func(*cluster)) *cluster {
	c := &cluster{t: t, net: NewNetwork(seed), dir: t.TempDir(), dbs: map[uint64]*quiver.DB{}, nodes: map[uint64]*Node{}, machines: map[uint64]StateMachine{}}
	set(c)
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	for _, id := range c.ids {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, id := range c.ids {
			c.stop(id)
		}
	})
	return c
}

func (c *cluster) start(id uint64) { c.startNode(id, false) }

// startNode starts node id; a joining node starts with no members of its
// own and waits for the leader (Config.Join).
func (c *cluster) startNode(id uint64, join bool) {
	c.t.Helper()
	var opts *quiver.Options
	if c.dbOptions != nil {
		opts = c.dbOptions(id)
	}
	db, err := quiver.Open(filepath.Join(c.dir, fmt.Sprintf("node%d.db", id)), 0o600, opts)
	if err != nil {
		c.t.Fatal(err)
	}
	var sm StateMachine = kvMachine{}
	if c.machine != nil {
		sm = c.machine
	}
	if c.newMachine != nil {
		if sm, err = c.newMachine(db); err != nil {
			c.t.Fatal(err)
		}
	}
	cfg := Config{ID: id, Peers: c.ids, DB: db, StateMachine: sm, Transport: c.net.Endpoint(id), TickInterval: 5 * time.Millisecond, LogWindow: c.logWindow, Join: join}
	if join {
		cfg.Peers = nil
	}
	if c.wal {
		cfg.WAL = filepath.Join(c.dir, fmt.Sprintf("node%d.wal", id))
		if c.walOpen != nil {
			cfg.WALOpenFile = c.walOpen(id)
		}
		cfg.walRotate = c.walRotate
		cfg.ApplyBatch = c.batchAge
	}
	n, err := StartNode(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.dbs[id], c.nodes[id], c.machines[id] = db, n, sm
	c.mu.Unlock()
	c.net.Attach(id, n)
}

// stop stops node id and closes its database (a clean shutdown; the
// files stay).
func (c *cluster) stop(id uint64) {
	c.mu.Lock()
	n, db, sm := c.nodes[id], c.dbs[id], c.machines[id]
	delete(c.nodes, id)
	delete(c.dbs, id)
	delete(c.machines, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	c.net.Detach(id)
	if err := n.Stop(); err != nil {
		c.t.Errorf("node %d: %v", id, err)
	}
	if cl, ok := sm.(interface{ Close() error }); ok {
		if err := cl.Close(); err != nil {
			c.t.Errorf("node %d: closing its state machine: %v", id, err)
		}
	}
	if err := db.Close(); err != nil {
		c.t.Errorf("node %d: close: %v", id, err)
	}
}

// leader waits for a node to be leader and returns it.
func (c *cluster) leader() uint64 {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range c.ids {
			if n := c.node(id); n != nil && n.Status().Lead == id {
				return id
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no leader in 10 s")
	return 0
}

// contents returns bucket kv of node id's database.
func (c *cluster) contents(id uint64) map[string]string {
	c.t.Helper()
	out := map[string]string{}
	c.mu.Lock()
	db, n := c.dbs[id], c.nodes[id]
	c.mu.Unlock()
	if n != nil {
		// Every result handed out readable (a running node's open batch).
		if err := n.Fence(context.Background()); err != nil && !errors.Is(err, ErrStopped) {
			c.t.Fatal(err)
		}
	}
	name := "kv"
	if c.contentsOf != "" {
		name = c.contentsOf
	}
	err := db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error { out[string(k)] = string(v); return nil })
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// converge waits until every running node applied index at least and
// holds the same kv bucket, and returns it.
func (c *cluster) converge(index uint64) map[string]string {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var first map[string]string
		same := true
		for _, id := range c.ids {
			n := c.node(id)
			if n == nil {
				continue
			}
			if n.Applied() < index {
				same = false
				break
			}
			got := c.contents(id)
			if first == nil {
				first = got
			} else if fmt.Sprint(got) != fmt.Sprint(first) {
				same = false
				break
			}
		}
		if same && first != nil {
			return first
		}
		if time.Now().After(deadline) {
			for _, id := range c.ids {
				if n := c.node(id); n != nil {
					c.t.Logf("node %d: applied %d, %d keys", id, n.Applied(), len(c.contents(id)))
				}
			}
			c.t.Fatalf("the nodes did not converge on index %d in 20 s", index)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) propose(id uint64, data string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.node(id).Propose(ctx, []byte(data))
	if err != nil {
		return 0, err
	}
	return r.(uint64), nil
}

// TestClusterReplicates: a 3-node cluster elects a leader; puts proposed
// concurrently through every node are applied once each, in the same
// order, on every node.
func TestClusterReplicates(t *testing.T) {
	c := newCluster(t, 3, testutil.Seed(t))
	c.leader()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last uint64
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := c.ids[g%3]
			for i := 0; i < 40; i++ {
				idx, err := c.propose(id, fmt.Sprintf("g%d-k%02d=v%d", g, i, i))
				if err != nil {
					t.Errorf("propose through node %d: %v", id, err)
					return
				}
				mu.Lock()
				last = max(last, idx)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	kv := c.converge(last)
	if len(kv) != 6*40+1 {
		t.Fatalf("%d keys, want %d", len(kv), 6*40+1)
	}
	if got := binary.BigEndian.Uint64([]byte(kv["#applied"])); got != 240 {
		t.Fatalf("%d entries applied, want 240 (an entry applied twice or lost)", got)
	}
}

// TestClusterRestartAppliesOnce: a node stopped while the others go on
// catches up from the leader's log after its restart; nodes restarted
// with applied entries in their files apply none of them again.
func TestClusterRestartAppliesOnce(t *testing.T) {
	c := newCluster(t, 3, testutil.Seed(t))
	lead := c.leader()
	for i := 0; i < 30; i++ {
		if _, err := c.propose(lead, fmt.Sprintf("a%02d=1", i)); err != nil {
			t.Fatal(err)
		}
	}
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	c.stop(follower)
	var last uint64
	for i := 0; i < 50; i++ {
		idx, err := c.propose(lead, fmt.Sprintf("b%02d=2", i))
		if err != nil {
			t.Fatal(err)
		}
		last = idx
	}
	c.start(follower)
	c.converge(last)
	// Restart every node: nothing is applied twice.
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.start(id)
	}
	lead = c.leader()
	idx, err := c.propose(lead, "c=3")
	if err != nil {
		t.Fatal(err)
	}
	kv := c.converge(idx)
	if len(kv) != 30+50+1+1 {
		t.Fatalf("%d keys, want %d", len(kv), 82)
	}
	if got := binary.BigEndian.Uint64([]byte(kv["#applied"])); got != 81 {
		t.Fatalf("%d entries applied, want 81 (an entry applied twice or lost)", got)
	}
}
