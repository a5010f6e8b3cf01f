package fuzz_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/fuzz/crash"
)

// Crash tests of Tx.DeferSync beyond TestCrashImages: a process that dies
// after a deferred commit (its writes survive in the page cache, not on
// disk) and a successor that reopens the file, an explicit DB.Sync after a
// deferred commit, and long mixes of deferred and synced commits with
// reopens, growth, checkpoints and shrinking.
//
// The rule every crash image is held to is the physical one: a power cut
// keeps every write recorded before the last fdatasync, so the state of
// every commit acknowledged before that sync is on disk and must not be
// lost (nor may the file be damaged).

// deferHarness runs commits through one crash.Recorder that sees the file
// across process deaths and reopens (the file is copied to a new path for
// a "new process": the old one keeps its lock and dies without closing).
type deferHarness struct {
	t      *testing.T
	dir    string
	ft     quiver.FreelistType
	rec    *crash.Recorder
	db     *quiver.DB
	gen    int
	dead   []*quiver.DB // processes that died: never used or closed again
	states []map[string]string
	acks   []int // rec.Len() when states[i] became visible
	// failGrow, when set, makes the file refuse to grow (ENOSPC).
	failGrow bool
}

type growFailing struct {
	quiver.File
	h *deferHarness
}

func (f growFailing) SyncDir() error {
	if d, ok := f.File.(quiver.DirSyncer); ok {
		return d.SyncDir()
	}
	return nil
}

func (f growFailing) Truncate(size int64) error {
	if f.h.failGrow {
		if cur, err := f.File.Size(); err == nil && size > cur {
			return syscall.ENOSPC
		}
	}
	return f.File.Truncate(size)
}

func newDeferHarness(t *testing.T, ft quiver.FreelistType) *deferHarness {
	h := &deferHarness{t: t, dir: t.TempDir(), ft: ft, rec: &crash.Recorder{}}
	h.open()
	h.snap()
	return h
}

func (h *deferHarness) path() string { return filepath.Join(h.dir, fmt.Sprintf("db%d", h.gen)) }

func (h *deferHarness) open() {
	openFile := func(p string, flag int, mode os.FileMode) (quiver.File, error) {
		f, err := h.rec.OpenFile(p, flag, mode)
		if err != nil {
			return nil, err
		}
		return growFailing{f, h}, nil
	}
	db, err := quiver.Open(h.path(), 0o600, &quiver.Options{OpenFile: openFile, FreelistType: h.ft, PageSize: 1024, AllocSize: 64 << 10})
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
}

func (h *deferHarness) snap() {
	err := h.db.View(func(tx *quiver.Tx) error {
		s, err := state(tx)
		h.states = append(h.states, s)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.acks = append(h.acks, h.rec.Len())
}

func (h *deferHarness) commit(deferSync bool, fn func(tx *quiver.Tx) error) {
	h.t.Helper()
	err := h.db.Update(func(tx *quiver.Tx) error {
		if deferSync {
			tx.DeferSync()
		}
		return fn(tx)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.snap()
}

// kill: the process dies (no Close, no sync); a new one opens the file as
// the page cache holds it.
func (h *deferHarness) kill() {
	data, err := os.ReadFile(h.path())
	if err != nil {
		h.t.Fatal(err)
	}
	h.dead = append(h.dead, h.db)
	h.gen++
	if err := os.WriteFile(h.path(), data, 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

func (h *deferHarness) reopen() {
	if err := h.db.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

// checkFrom checks the crash images at every recorded operation from
// op from on, variants times each.
func (h *deferHarness) checkFrom(from, variants int) (images int) {
	ops := h.rec.Ops()
	lastSync := make([]int, len(ops)+1) // ops before the last Sync in ops[:n]
	for i, op := range ops {
		lastSync[i+1] = lastSync[i]
		if op.Kind == crash.Sync {
			lastSync[i+1] = i + 1
		}
	}
	img := filepath.Join(h.dir, "img")
	for n := from; n <= len(ops); n++ {
		acked, floor := -1, 0
		for s, a := range h.acks {
			if a <= n {
				acked = s
			}
			if a <= lastSync[n] {
				floor = s
			}
		}
		for v := 0; v < variants; v++ {
			rng := rand.New(rand.NewPCG(uint64(n), uint64(v)+1000))
			checkImage(h.t, img, h.rec.Image(n, rng), h.states, floor, acked, n, v)
			images++
		}
	}
	return images
}

func rewriteAll(c int, n int, size int) func(tx *quiver.Tx) error {
	return func(tx *quiver.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := b.Put([]byte(fmt.Sprintf("k%04d", i)), []byte(fmt.Sprintf("%d-%s", c, strings.Repeat("x", size)))); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestDeferSyncKilledThenReopened: commit N-1 synced, commit N deferred,
// the process dies (kill -9: N's writes are in the page cache, not on
// disk), a new process opens the file. It sees N, believes it durable
// (nothing tells it otherwise: open does not sync), writes its next meta
// over N-1's, the only durable one, and reuses N-1's pages (freed by N).
// A power cut before its sync must still leave N-1 or newer.
func TestDeferSyncKilledThenReopened(t *testing.T) {
	for _, ft := range quiver.FreelistTypes() {
		for _, nextDefers := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/nextDefers=%v", ft, nextDefers), func(t *testing.T) {
				h := newDeferHarness(t, ft)
				for c := 1; c <= 3; c++ {
					h.commit(false, rewriteAll(c, 200, 60))
				}
				h.commit(true, rewriteAll(4, 200, 60)) // N: deferred
				h.kill()
				from := h.rec.Len()
				h.commit(nextDefers, rewriteAll(5, 200, 60))
				h.commit(false, rewriteAll(6, 200, 60))
				t.Logf("%d images", h.checkFrom(from, 40))
			})
		}
	}
}

// TestDeferSyncThenDBSync: a deferred commit, then DB.Sync ("forces an
// fdatasync of the file"): the deferred commit is on disk. The next commit
// writes its meta over the deferred one's (the engine still counts it as
// unsynced); a power cut in that commit must not lose the synced state.
func TestDeferSyncThenDBSync(t *testing.T) {
	for _, ft := range quiver.FreelistTypes() {
		t.Run(string(ft), func(t *testing.T) {
			h := newDeferHarness(t, ft)
			for c := 1; c <= 3; c++ {
				h.commit(false, rewriteAll(c, 200, 60))
			}
			h.commit(true, rewriteAll(4, 200, 60))
			if err := h.db.Sync(); err != nil {
				t.Fatal(err)
			}
			from := h.rec.Len()
			h.commit(false, rewriteAll(5, 200, 60))
			t.Logf("%d images", h.checkFrom(from, 40))
		})
	}
}

// TestDeferSyncMixedCrashImages: a long random mix of deferred and synced
// commits (runs of deferred requests, so that the one after an unsynced
// commit often asks too), large values that grow the file, deletes that
// lead to checkpoints and a shrinking file, Close and reopen in the middle
// (once right after a deferred commit), every crash image checked.
func TestDeferSyncMixedCrashImages(t *testing.T) {
	variants := 4
	switch {
	case os.Getenv("QUIVER_CRASH_LONG") != "":
		variants = 100
	case testing.Short():
		variants = 1
	}
	for _, ft := range quiver.FreelistTypes() {
		seeds := []uint64{1}
		if os.Getenv("QUIVER_CRASH_LONG") != "" {
			seeds = append(seeds, 2, 3, 4)
		}
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed%d", ft, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 77))
				h := newDeferHarness(t, ft)
				for c := 1; c <= 120; c++ {
					deferSync := r.IntN(3) != 0
					if c == 60 || c == 61 {
						deferSync = true
					}
					h.commit(deferSync, func(tx *quiver.Tx) error {
						b, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("b%d", r.IntN(2))))
						if err != nil {
							return err
						}
						phase := (c / 20) % 3 // grow, churn, shrink
						for i := 0; i < 1+r.IntN(40); i++ {
							k := []byte(fmt.Sprintf("k%04d", r.IntN(300)))
							switch x := r.IntN(10); {
							case phase == 2 && x < 8, phase == 1 && x < 4, x == 0:
								if err := b.Delete(k); err != nil {
									return err
								}
							case phase == 0 && x < 5:
								if err := b.Put(k, []byte(strings.Repeat(string(rune('a'+c%26)), 3000+r.IntN(20000)))); err != nil {
									return err
								}
							default:
								if err := b.Put(k, []byte(fmt.Sprintf("v%d-%d", c, i))); err != nil {
									return err
								}
							}
						}
						if name := []byte(fmt.Sprintf("b%d", r.IntN(2))); phase == 2 && r.IntN(8) == 0 && tx.Bucket(name) != nil {
							return tx.DeleteBucket(name)
						}
						return nil
					})
					if c == 61 { // after a deferred commit: Close syncs
						h.reopen()
					}
					if c == 95 && !deferSync {
						h.reopen()
					}
				}
				// Drop everything and write a little, deferred and synced in
				// turn: the file's free end is given back whatever the
				// random phases did.
				for c := 0; c < 14; c++ {
					h.commit(c%2 == 1, func(tx *quiver.Tx) error {
						for _, name := range []string{"b0", "b1"} {
							if c == 0 && tx.Bucket([]byte(name)) != nil {
								if err := tx.DeleteBucket([]byte(name)); err != nil {
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
				}
				if err := h.db.Close(); err != nil {
					t.Fatal(err)
				}
				size, shrinks, deferred := int64(0), 0, 0
				ops := h.rec.Ops()
				for _, op := range ops {
					if op.Kind == crash.Truncate {
						if op.Off < size {
							shrinks++
						}
						size = op.Off
					}
				}
				for c := 1; c < len(h.acks); c++ {
					synced := false
					for _, op := range ops[h.acks[c-1]:h.acks[c]] {
						synced = synced || op.Kind == crash.Sync
					}
					if !synced {
						deferred++
					}
				}
				if shrinks == 0 || deferred == 0 {
					t.Fatalf("the workload did not shrink the file (%d) or defer a sync (%d)", shrinks, deferred)
				}
				t.Logf("%d images over %d ops; %d commits deferred, %d shrinks", h.checkFrom(0, variants), h.rec.Len(), deferred, shrinks)
			})
		}
	}
}

// TestDeferSyncCompactCrashImages: DB.Compact right after a deferred
// commit (the old file's last commit unsynced: the copy takes it and is
// synced before the switch), then deferred and synced commits on the new
// file; every crash image of the new file from the switch on must hold the
// state at the switch or newer. Then a reopen holds the last state.
func TestDeferSyncCompactCrashImages(t *testing.T) {
	for _, ft := range quiver.FreelistTypes() {
		t.Run(string(ft), func(t *testing.T) {
			dir := t.TempDir()
			recs := map[string]*crash.Recorder{}
			openFile := func(p string, flag int, mode os.FileMode) (quiver.File, error) {
				r := recs[filepath.Base(p)]
				if r == nil {
					r = &crash.Recorder{}
					recs[filepath.Base(p)] = r
				}
				return r.OpenFile(p, flag, mode)
			}
			path := filepath.Join(dir, "db")
			opts := &quiver.Options{OpenFile: openFile, FreelistType: ft, PageSize: 1024, AllocSize: 64 << 10}
			db, err := quiver.Open(path, 0o600, opts)
			if err != nil {
				t.Fatal(err)
			}
			h := &deferHarness{t: t, dir: dir, ft: ft, db: db, rec: recs["db"]}
			for c := 1; c <= 10; c++ {
				h.commit(c%2 == 0, rewriteAll(c, 150+c*10, 200))
			}
			h.commit(false, func(tx *quiver.Tx) error { // free most of the file
				b := tx.Bucket([]byte("b"))
				for i := 0; i < 250; i += 1 + i%3 {
					if err := b.Delete([]byte(fmt.Sprintf("k%04d", i))); err != nil {
						return err
					}
				}
				return nil
			})
			h.commit(true, rewriteAll(12, 20, 100)) // deferred, the last before Compact
			if _, err := db.Compact(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			// The file at path is now the copy's: its recorder's history.
			h.rec = recs["db.compact"]
			if h.rec == nil {
				t.Fatal("the copy was not opened through Options.OpenFile")
			}
			h.states, h.acks = nil, nil
			h.snap()
			from := h.rec.Len()
			for c := 13; c <= 24; c++ {
				h.commit(c%3 != 0, rewriteAll(c, 30+c*5, 150))
			}
			want := h.states[len(h.states)-1]
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d images of the new file", h.checkFrom(from, 20))
			db, err = quiver.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.View(func(tx *quiver.Tx) error {
				got, err := state(tx)
				if err != nil {
					return err
				}
				if !sameState(got, want) {
					return fmt.Errorf("reopened after Compact: %d keys, want %d", len(got), len(want))
				}
				for err := range tx.Check() {
					return err
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDeferSyncFailedCommitAfter: the commit after a deferred one fails
// (the file cannot grow; the database goes on) or is rolled back; the
// commits after it must still carry the deferred commit's pages and sync,
// and every crash image hold a durable state.
func TestDeferSyncFailedCommitAfter(t *testing.T) {
	for _, ft := range quiver.FreelistTypes() {
		t.Run(string(ft), func(t *testing.T) {
			h := newDeferHarness(t, ft)
			for c := 1; c <= 3; c++ {
				h.commit(false, rewriteAll(c, 200, 60))
			}
			from := h.rec.Len()
			for round := 0; round < 3; round++ {
				h.commit(true, rewriteAll(10*round+4, 200, 60)) // deferred
				h.failGrow = true
				err := h.db.Update(func(tx *quiver.Tx) error {
					tx.DeferSync()
					if err := rewriteAll(10*round+5, 200, 60)(tx); err != nil {
						return err
					}
					b := tx.Bucket([]byte("b"))
					return b.Put([]byte("big"), []byte(strings.Repeat("B", 1<<20)))
				})
				h.failGrow = false
				if err == nil {
					t.Fatal("the commit that grows the file did not fail")
				}
				_ = h.db.Update(func(tx *quiver.Tx) error {
					_ = rewriteAll(10*round+6, 200, 60)(tx)
					return fmt.Errorf("rolled back")
				})
				h.commit(true, rewriteAll(10*round+7, 200, 60)) // asks to defer; must sync
				h.commit(false, rewriteAll(10*round+8, 200, 60))
			}
			t.Logf("%d images", h.checkFrom(from, 20))
		})
	}
}
