package raftadapter

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/fuzz/crash"
	"github.com/quiverdb/quiver/internal/testutil"
	"github.com/quiverdb/quiver/mvcc"
)

// cutPoint is a moment of the workload: the puts acknowledged before it
// and, read after that, how far each member's file had got.
type cutPoint struct {
	acked  []string
	ops    map[uint64]int
	walOps map[uint64]int // the write-ahead files'
}

// TestPowerCut: every member's file goes through the power-cut simulator
// (fuzz/crash) while a 3-node cluster, replicating an mvcc store with a
// small catch-up window (so logs are compacted and snapshots sent), takes
// concurrent puts. At moments sampled during the load, every member loses
// power: each file is rebuilt as a cut there could leave it (unsynced
// writes kept, dropped or torn, at random). The cluster restarted on those
// files keeps every put acknowledged before the moment, and its members
// converge to the same revision and HashKV. QUIVER_POWERCUT_POINTS sets
// the number of moments (default 8). It runs twice: with the engine's
// commits syncing, and with a write-ahead file (Config.WAL) that goes
// through the simulator too, while the engine's commits skip their syncs.
func TestPowerCut(t *testing.T) {
	for _, wal := range []bool{false, true} {
		t.Run(fmt.Sprintf("wal=%v", wal), func(t *testing.T) { powerCut(t, wal) })
	}
}

func powerCut(t *testing.T, wal bool) {
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	points := 8
	if n, err := strconv.Atoi(os.Getenv("QUIVER_POWERCUT_POINTS")); err == nil && n > 0 {
		points = n
	}
	openStore := func(db *quiver.DB) (StateMachine, error) {
		s, err := mvcc.Open(db, nil)
		return closingMVCC{MVCCMachine{Store: s}}, err
	}
	recs := map[uint64]*crash.Recorder{1: {}, 2: {}, 3: {}}
	walRecs := map[uint64]*crash.Recorder{1: {}, 2: {}, 3: {}}
	// The default catch-up window: a snapshot's install switches files,
	// and a Recorder follows one file.
	c := newClusterWith(t, 3, seed, func(c *cluster) {
		c.contentsOf = "mvcc.rev"
		c.newMachine = openStore
		c.dbOptions = func(id uint64) *quiver.Options { return &quiver.Options{OpenFile: recs[id].OpenFile} }
		c.wal = wal
		c.walRotate = 4 << 10 // new generations during the load: cuts around them
		c.walOpen = func(id uint64) func(string, int, os.FileMode) (quiver.File, error) { return walRecs[id].OpenFile }
	})
	c.leader()

	var mu sync.Mutex
	var acked []string
	var cuts []cutPoint
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // the moments: bounded in number and time
		defer close(sampled)
		for len(cuts) < 4*points {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(5+r.IntN(20)) * time.Millisecond):
			}
			mu.Lock()
			cp := cutPoint{acked: append([]string(nil), acked...), ops: map[uint64]int{}, walOps: map[uint64]int{}}
			mu.Unlock()
			for id, rec := range recs { // read after the acknowledgements
				cp.ops[id], cp.walOps[id] = rec.Len(), walRecs[id].Len()
			}
			cuts = append(cuts, cp)
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				key := fmt.Sprintf("g%d-%03d", g, i)
				id := c.ids[(g+i)%len(c.ids)]
				if _, err := c.txn(id, &mvcc.Txn{Then: []mvcc.Op{mvcc.OpPut([]byte(key), []byte(key), 0)}}); err != nil {
					t.Errorf("put %s through %d: %v", key, id, err)
					return
				}
				mu.Lock()
				acked = append(acked, key)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	for _, id := range c.ids {
		c.stop(id)
	}
	if len(cuts) == 0 {
		t.Fatal("no moment sampled")
	}

	for k := 0; k < points; k++ {
		cp := cuts[r.IntN(len(cuts))]
		dir := t.TempDir()
		lost := false
		for id, rec := range recs {
			img := rec.Image(cp.ops[id], r)
			if img == nil {
				lost = true // before the file's directory entry was synced
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("node%d.db", id)), img, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if lost {
			t.Logf("cut %d: a file lost whole (its directory entry not yet synced); skipped", k)
			continue
		}
		for id, rec := range walRecs {
			// A write-ahead file lost whole had no record yet: none
			// is written before its directory entry is synced.
			if img := rec.Image(cp.walOps[id], r); img != nil {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("node%d.wal", id)), img, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Run(fmt.Sprintf("cut%d", k), func(t *testing.T) {
			rc := newClusterWith(t, 3, seed+uint64(k), func(c *cluster) {
				c.dir = dir
				c.wal = wal
				c.logWindow = 4 << 10
				c.contentsOf = "mvcc.rev"
				c.newMachine = openStore
			})
			lead := rc.leader()
			if _, err := rc.txn(lead, &mvcc.Txn{Then: []mvcc.Op{mvcc.OpPut([]byte("after"), []byte("1"), 0)}}); err != nil {
				t.Fatal(err)
			}
			rc.converge(rc.node(lead).Applied())
			s := rc.store(lead)
			for _, key := range cp.acked {
				res, err := s.Range([]byte(key), nil, mvcc.RangeOptions{})
				if err != nil || len(res.KVs) != 1 {
					t.Fatalf("put %s, acknowledged before the cut, is lost: %v", key, err)
				}
			}
			rev := s.Rev()
			hash, _, err := s.HashKV(0)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range rc.ids {
				h, _, err := rc.store(id).HashKV(0)
				if err != nil || h != hash || rc.store(id).Rev() != rev {
					t.Fatalf("member %d: revision %d, HashKV %08x (%v); the leader's %d, %08x", id, rc.store(id).Rev(), h, err, rev, hash)
				}
			}
			t.Logf("%d puts acknowledged before the cut, all there; revision %d, HashKV %08x", len(cp.acked), rev, hash)
		})
	}
}
