package quiver_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/quiverdb/quiver"
)

// syncCounting counts a file's Syncs.
type syncCounting struct {
	quiver.File
	n *atomic.Int64
}

func (f syncCounting) Sync() error { f.n.Add(1); return f.File.Sync() }

// syncCountingOptions opens files whose Syncs add to n.
func syncCountingOptions(n *atomic.Int64) *quiver.Options {
	return &quiver.Options{OpenFile: func(p string, flag int, mode os.FileMode) (quiver.File, error) {
		f, err := quiver.OpenOSFile(p, flag, mode)
		if err != nil {
			return nil, err
		}
		return syncCounting{f, n}, nil
	}}
}

// TestDeferSync: a commit that asks to defer its sync skips it, after a
// synced commit or after other deferred ones; every commit is visible at
// once (the crash tests of fuzz/ show what a power cut leaves); Close
// makes a deferred commit durable, and the file reopens at it with its
// meta where the next commit expects it.
func TestDeferSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	var syncs atomic.Int64
	opts := syncCountingOptions(&syncs)
	db, err := quiver.Open(path, 0o600, opts)
	if err != nil {
		t.Fatal(err)
	}
	put := func(k string, deferSync bool) int64 {
		t.Helper()
		before := syncs.Load()
		err := db.Update(func(tx *quiver.Tx) error {
			if deferSync {
				tx.DeferSync()
			}
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte("v-"+k))
		})
		if err != nil {
			t.Fatal(err)
		}
		return syncs.Load() - before
	}
	get := func(k string) string {
		var v string
		_ = db.View(func(tx *quiver.Tx) error {
			if b := tx.Bucket([]byte("b")); b != nil {
				v = string(b.Get([]byte(k)))
			}
			return nil
		})
		return v
	}
	for i, c := range []struct {
		deferSync bool
		syncs     int64
	}{
		{false, 1}, // synced
		{true, 0},  // deferred
		{true, 0},  // a chain of deferred commits
		{true, 0},
		{false, 1},
		{true, 0},
	} {
		k := fmt.Sprintf("k%d", i)
		if got := put(k, c.deferSync); got != c.syncs {
			t.Fatalf("commit %d (defer %v): %d syncs, want %d", i, c.deferSync, got, c.syncs)
		}
		if get(k) != "v-"+k {
			t.Fatalf("commit %d is not visible", i)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = quiver.Open(path, 0o600, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if get("k5") != "v-k5" {
		t.Fatal("the deferred commit before Close was lost")
	}
	// Commits go on after the reopen, their metas alternating again.
	for i := 6; i < 10; i++ {
		put(fmt.Sprintf("k%d", i), i%2 == 0)
	}
	for i := 0; i < 10; i++ {
		if k := fmt.Sprintf("k%d", i); get(k) != "v-"+k {
			t.Fatalf("%s lost", k)
		}
	}
	var problems []error
	_ = db.View(func(tx *quiver.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, err)
		}
		return nil
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
}

// TestRestorePrepareDeferSync: Restore's prepare may commit to the new
// database with Tx.DeferSync (it is an ordinary *DB). Restore then raises
// the new file's txid above the database's (continueTxids) and commits
// once more, synced. That commit's record carries the deferred commit's
// pages (written under a txid far below its own), and the durable commit
// the engine holds as a reader is "current txid - 1", which after the raise
// is no commit of that file. The restored database must reopen with
// prepare's change, and pass Check.
func TestRestorePrepareDeferSync(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		fill(t, db.DB, "old", 100, 50)
		for i := 0; i < 50; i++ { // txids well above the image's
			ok(t, db.Update(func(tx *quiver.Tx) error { return nil }))
		}
		img := image(t, "new", 300, 0)
		ok(t, db.Restore(bytes.NewReader(img), func(n *quiver.DB) error {
			return n.Update(func(tx *quiver.Tx) error {
				tx.DeferSync()
				b, err := tx.CreateBucket([]byte("prepared"))
				if err != nil {
					return err
				}
				// Rewrite the image's keys: its pages are freed.
				nb := tx.Bucket([]byte("new"))
				if err := nb.ForEach(func(k, v []byte) error { return nil }); err != nil {
					return err
				}
				for i := 0; i < 300; i += 3 {
					if err := nb.Delete([]byte(fmt.Sprintf("%08d", i))); err != nil {
						return err
					}
				}
				return b.Put([]byte("k"), []byte("v"))
			})
		}))
		if keysOf(t, db.DB, "prepared") != 1 {
			t.Fatal("prepare's change is not visible after the restore")
		}
		newKeys := keysOf(t, db.DB, "new")
		db.reopen()
		if got := keysOf(t, db.DB, "prepared"); got != 1 {
			t.Errorf("after a reopen: prepare's change is gone (bucket prepared: %d keys; bucket new: %d keys, %d before)", got, keysOf(t, db.DB, "new"), newKeys)
		}
		db.mustCheck()
	})
}

// TestDeferSyncChainBounded: a chain of deferred commits that each leave
// many new pages in use (values on overflow pages under new keys) carries
// their list from commit to commit; once it is long, a commit syncs even
// though it asked not to, and the chain starts again. Everything stays
// visible, and the file reopens whole.
func TestDeferSyncChainBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	var syncs atomic.Int64
	opts := syncCountingOptions(&syncs)
	db, err := quiver.Open(path, 0o600, opts)
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 3*os.Getpagesize())
	var synced []int
	for c := 0; c < 40; c++ {
		before := syncs.Load()
		err := db.Update(func(tx *quiver.Tx) error {
			tx.DeferSync()
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			for i := 0; i < 100; i++ {
				if err := b.Put([]byte(fmt.Sprintf("k%03d-%03d", c, i)), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if syncs.Load() != before {
			synced = append(synced, c)
		}
	}
	// 100 spans a commit: the bound (1024) is passed every ~10 commits.
	if len(synced) < 2 || len(synced) > 6 || synced[0] < 5 {
		t.Fatalf("commits that synced: %v", synced)
	}
	t.Logf("commits that synced: %v", synced)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = quiver.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *quiver.Tx) error {
		if n := tx.Bucket([]byte("b")).Stats().KeyN; n != 4000 {
			t.Fatalf("%d keys after the reopen, want 4000", n)
		}
		for err := range tx.Check() {
			t.Error(err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
