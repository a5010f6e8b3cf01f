package quiver_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testhook"
)

// TestSnapshotIsolation runs one writer and several readers at once. The
// writer records the model of every commit under its txid; each reader
// reads the whole database and compares it with the model of the txid it
// saw. Some readers stay open across many commits, so that the pages they
// see must not be reused, and the mapping is kept small so that the writer
// remaps while readers hold older epochs.
func TestSnapshotIsolation(t *testing.T) {
	commits := 300
	if testing.Short() {
		commits = 80
	}
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		seed := testSeed(t)
		db := openDBWith(t, ft, &quiver.Options{NoSync: true, PageSize: 1024}, &testhook.Hooks{MinReservation: 64 << 10})
		var mu sync.Mutex
		versions := map[int]map[string]string{}
		ok(t, db.View(func(tx *quiver.Tx) error {
			got, err := flattenDB(tx)
			versions[tx.ID()] = got
			return err
		}))
		var done atomic.Bool
		var wg sync.WaitGroup
		var checked atomic.Int64
		errs := make(chan error, 16)
		for rd := 0; rd < 4; rd++ {
			wg.Add(1)
			go func(rd int) {
				defer wg.Done()
				r := newRand(seed + uint64(rd) + 1)
				for !done.Load() {
					tx, err := db.Begin(false)
					if err != nil {
						errs <- err
						return
					}
					got, err := flattenDB(tx)
					if err == nil && rd == 0 {
						// A long reader: hold the snapshot while the writer
						// commits, then read it again.
						time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
						again, err2 := flattenDB(tx)
						if d := diffFlat(got, again); err2 == nil && d != "" {
							err = fmt.Errorf("reader of tx %d saw its snapshot change:\n%s", tx.ID(), d)
						}
					}
					id := tx.ID()
					_ = tx.Rollback()
					if err != nil {
						errs <- err
						return
					}
					var want map[string]string
					for want == nil && !done.Load() {
						mu.Lock()
						want = versions[id]
						mu.Unlock()
						if want == nil {
							time.Sleep(time.Millisecond)
						}
					}
					if want == nil {
						continue
					}
					if d := diffFlat(want, got); d != "" {
						errs <- fmt.Errorf("reader of tx %d (seed %d) saw:\n%s", id, seed, d)
						return
					}
					checked.Add(1)
				}
			}(rd)
		}
		r := newRand(seed)
		model := newMBucket()
		for i := 0; i < commits && len(errs) == 0; i++ {
			work := model.clone()
			tx, err := db.Begin(true)
			ok(t, err)
			t.Cleanup(func() { _ = tx.Rollback() })
			for n := r.IntN(100); n >= 0; n-- {
				randomOp(t, r, tx, work)
			}
			id := tx.ID()
			ok(t, tx.Commit())
			model = work
			mu.Lock()
			versions[id] = modelRoot(model)
			mu.Unlock()
		}
		done.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if checked.Load() < 10 {
			t.Fatalf("readers checked only %d snapshots", checked.Load())
		}
		t.Logf("%d reader snapshots checked over %d commits", checked.Load(), commits)
	})
}
