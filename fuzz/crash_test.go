package fuzz_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/fuzz/crash"
	"github.com/quiverdb/quiver/internal/dbtest"
)

// state is the whole content of a snapshot (dbtest.Flatten).
var state = dbtest.Flatten

func sameState(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// crashWorkload runs commits that cover puts, page splits and merges,
// values on overflow pages, bucket creation and deletion and file growth,
// through rec. It returns the state after each commit (states[0]: the new
// database) and, for each, the number of recorded operations when its
// Commit returned.
//
// With deferEvery > 0, about one commit in deferEvery asks to skip its
// sync (Tx.DeferSync).
func crashWorkload(t *testing.T, path string, ft quiver.FreelistType, rec *crash.Recorder, seed uint64, deferEvery int) (states []map[string]string, acks []int) {
	r := rand.New(rand.NewPCG(seed, 5))
	db, err := quiver.Open(path, 0o600, &quiver.Options{OpenFile: rec.OpenFile, FreelistType: ft, PageSize: 1024, AllocSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	snap := func() {
		err := db.View(func(tx *quiver.Tx) error {
			s, err := state(tx)
			states = append(states, s)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, rec.Len())
	}
	snap()
	for c := 0; c < 90; c++ { // past 64 records: chained deltas and checkpoints both
		err := db.Update(func(tx *quiver.Tx) error {
			if deferEvery > 0 && r.IntN(deferEvery) == 0 {
				tx.DeferSync()
			}
			name := []byte(fmt.Sprintf("b%d", r.IntN(3)))
			if r.IntN(12) == 0 {
				if tx.Bucket(name) != nil {
					return tx.DeleteBucket(name)
				}
			}
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			if r.IntN(4) == 0 {
				if b, err = b.CreateBucketIfNotExists([]byte("nested")); err != nil {
					return err
				}
			}
			for i := 0; i < 1+r.IntN(60); i++ {
				k := []byte(fmt.Sprintf("k%04d", r.IntN(400)))
				switch r.IntN(10) {
				case 0, 1, 2:
					if err := b.Delete(k); err != nil {
						return err
					}
				case 3:
					if err := b.Put(k, []byte(strings.Repeat("L", 2000+r.IntN(8000)))); err != nil {
						return err
					}
				default:
					if err := b.Put(k, []byte(fmt.Sprintf("v%d-%d", c, i))); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		snap()
	}
	// Drop everything, then write a little: the free end of the file is
	// given back (a checkpoint, then a truncate after the sync).
	peak, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 14; c++ {
		err := db.Update(func(tx *quiver.Tx) error {
			if deferEvery > 0 && c%deferEvery == 1 {
				tx.DeferSync()
			}
			for i := 0; i < 3; i++ {
				name := []byte(fmt.Sprintf("b%d", i))
				if c == 0 && tx.Bucket(name) != nil {
					if err := tx.DeleteBucket(name); err != nil {
						return err
					}
				}
			}
			b, err := tx.CreateBucketIfNotExists([]byte("b0"))
			if err != nil {
				return err
			}
			return b.Put([]byte(fmt.Sprintf("k%04d", c)), []byte("after"))
		})
		if err != nil {
			t.Fatal(err)
		}
		snap()
	}
	if end, err := os.Stat(path); err != nil || end.Size() >= peak.Size() {
		t.Fatalf("the file did not shrink after everything was deleted (%d bytes, then %v, %v)", peak.Size(), end.Size(), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return states, acks
}

// TestCrashImages builds the file a power cut would leave at every
// recorded write, truncate and sync of the workload, several times with
// unsynced writes kept, dropped or torn at random, and requires each to
// open, pass Check, and hold the state of a commit no older than the last
// durable one: the last acknowledged, or, where commits deferred their
// sync (the "deferred" runs), the last acknowledged before a sync.
func TestCrashImages(t *testing.T) {
	variants := 5
	if os.Getenv("QUIVER_CRASH_LONG") != "" {
		variants = 400
	}
	for _, ft := range quiver.FreelistTypes() {
		for _, deferEvery := range []int{0, 3} {
			name := string(ft)
			if deferEvery > 0 {
				name += "/deferred"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				rec := &crash.Recorder{}
				seed := uint64(1)
				states, acks := crashWorkload(t, filepath.Join(dir, "db"), ft, rec, seed, deferEvery)
				// durable[c]: the newest commit a sync had made durable
				// when commit c was acknowledged.
				ops := rec.Ops()
				durable := make([]int, len(acks))
				for c := 1; c < len(acks); c++ {
					durable[c] = durable[c-1]
					for _, op := range ops[acks[c-1]:acks[c]] {
						if op.Kind == crash.Sync {
							durable[c] = c
						}
					}
				}
				deferred := 0
				for c := 1; c < len(acks); c++ {
					if durable[c] != c {
						deferred++
					}
				}
				if deferEvery > 0 && deferred == 0 {
					t.Fatal("no commit deferred its sync")
				}
				images := 0
				for n := 0; n <= rec.Len(); n++ {
					// Commits acknowledged by then: a; the state must be
					// that of a commit from the last durable one to the
					// one in flight.
					a := sort.SearchInts(acks, n+1) - 1
					lo := a
					if a >= 0 {
						lo = durable[a]
					}
					for v := 0; v < variants; v++ {
						rng := rand.New(rand.NewPCG(uint64(n), uint64(v)))
						img := rec.Image(n, rng)
						checkImage(t, filepath.Join(dir, "img"), img, states, lo, a, n, v)
						images++
					}
				}
				t.Logf("%d crash images over %d recorded operations; %d of %d commits deferred their sync", images, rec.Len(), deferred, len(acks)-1)
			})
		}
	}
}

// checkImage opens a crash image and requires the state of a commit from
// durable to the one after acked.
func checkImage(t *testing.T, path string, img []byte, states []map[string]string, durable, acked, n, v int) {
	t.Helper()
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		if acked < 0 {
			return // nothing acknowledged yet: the database may not exist
		}
		t.Fatalf("crash at op %d (variant %d): open: %v", n, v, err)
	}
	defer db.Close()
	err = db.View(func(tx *quiver.Tx) error {
		for err := range tx.Check() {
			t.Errorf("crash at op %d (variant %d): check: %v", n, v, err)
		}
		got, err := state(tx)
		if err != nil {
			return err
		}
		lo := max(durable, 0)
		for j := lo; j <= acked+1 && j < len(states); j++ {
			if sameState(got, states[j]) {
				return nil
			}
		}
		return fmt.Errorf("state matches no commit in %d..%d (%d keys)", lo, acked+1, len(got))
	})
	if err != nil {
		t.Fatalf("crash at op %d (variant %d): %v", n, v, err)
	}
}
