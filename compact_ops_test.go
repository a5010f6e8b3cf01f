package quiver_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testhook"
)

// fillBucket puts n keys in bucket name, creating it.
func fillBucket(t *testing.T, db *quiver.DB, name string, n int) {
	t.Helper()
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := b.Put([]byte(fmt.Sprintf("%s%06d", name, i)), []byte("value")); err != nil {
				return err
			}
		}
		return nil
	}))
}

// flat returns the database's contents, flattened.
func flat(t *testing.T, db *quiver.DB) string {
	t.Helper()
	var s string
	ok(t, db.View(func(tx *quiver.Tx) error {
		f, err := flattenDB(tx)
		s = fmt.Sprint(f)
		return err
	}))
	return s
}

// TestCompactOpenWaiting: a process waiting in Open for the lock while a
// compaction switches files must end up on the new file, not the old one
// the compaction unlocks (which is no longer at the path).
func TestCompactOpenWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	fillBucket(t, db, "b", 1000)
	type result struct {
		db  *quiver.DB
		err error
	}
	waiting := make(chan result)
	opened := make(chan struct{})
	attempts := 0
	setHooks(t, path, &testhook.Hooks{Open: func(p string, attempt int) {
		if p != path {
			return // the compaction's copy
		}
		attempts = attempt + 1
		if attempt == 0 {
			close(opened)
		}
	}})
	go func() {
		w, err := quiver.Open(path, 0o600, &quiver.Options{Timeout: 20 * time.Second})
		waiting <- result{w, err}
	}()
	// The second Open holds the old file open (and waits for its lock, or
	// is about to): whenever it gets the lock, the file is no longer the
	// one at the path.
	<-opened
	_, err = db.Compact(context.Background(), nil)
	ok(t, err)
	ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("after"), []byte("switch")) }))
	want := flat(t, db)
	ok(t, db.Close())
	res := <-waiting
	ok(t, res.err)
	defer res.db.Close()
	if attempts < 2 {
		t.Fatalf("Open made %d attempts; the first one's file was replaced", attempts)
	}
	if got := flat(t, res.db); got != want {
		t.Fatal("the waiting Open got a file without the commit made after the switch")
	}
	ok(t, res.db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k"), []byte("v")) }))
}

// TestCompactReplacedFile: when the file at the database's path is not the
// database's own any more, Compact refuses to rename over it.
func TestCompactReplacedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	db, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	defer db.Close()
	fillBucket(t, db, "b", 100)
	ok(t, os.Rename(path, filepath.Join(dir, "moved")))
	ok(t, os.WriteFile(path, []byte("someone else's file"), 0o600))
	if _, err := db.Compact(context.Background(), nil); !errors.Is(err, quiver.ErrReplaced) {
		t.Fatalf("Compact over a replaced file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "someone else's file" {
		t.Fatal("the file at the path was changed")
	}
	// Replaced while the compaction runs: refused before the rename.
	ok(t, os.Remove(path))
	ok(t, os.Rename(filepath.Join(dir, "moved"), path))
	setHooks(t, path, &testhook.Hooks{Compact: func(_, stage string) {
		if stage == "final" {
			ok(t, os.Rename(path, filepath.Join(dir, "moved")))
			ok(t, os.WriteFile(path, []byte("late"), 0o600))
		}
	}})
	if _, err := db.Compact(context.Background(), nil); !errors.Is(err, quiver.ErrReplaced) {
		t.Fatalf("Compact with the file replaced during it: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "late" {
		t.Fatal("the file at the path was changed")
	}
	ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k"), []byte("v")) }))
}

// TestCompactKeepsMode: the copy gets the file's permission bits, which the
// umask would cut at creation.
func TestCompactKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	defer db.Close()
	fillBucket(t, db, "b", 10)
	ok(t, os.Chmod(path, 0o666))
	_, err = db.Compact(context.Background(), nil)
	ok(t, err)
	fi, err := os.Stat(path)
	ok(t, err)
	if fi.Mode().Perm() != 0o666 {
		t.Fatalf("mode %v after the compaction, want 0666", fi.Mode().Perm())
	}
}

// TestCompactBusy: when the catch-up rounds stop converging with more
// changes than a final round may apply (lowered to 1500 here), Compact
// gives up with ErrCompactBusy rather than block the writers for a long
// last round, and leaves the database as it was.
func TestCompactBusy(t *testing.T) {
	db := openDB(t, defaultFreelist, &quiver.Options{NoSync: true})
	fillBucket(t, db.DB, "b", 100)
	rounds := 0
	unhook := setHooks(t, db.Path(), &testhook.Hooks{CompactQuietChanges: 1024, CompactMaxFinalChanges: 1500, Compact: func(_, stage string) {
		if stage == "round" {
			rounds++
			fillBucket(t, db.DB, fmt.Sprint("r", rounds), 2000)
		}
	}})
	_, err := db.Compact(context.Background(), nil)
	if !errors.Is(err, quiver.ErrCompactBusy) {
		t.Fatalf("Compact under writes it cannot follow: %v (rounds %d)", err, rounds)
	}
	unhook()
	if _, err := os.Stat(db.Path() + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary file is left: %v", err)
	}
	want := flat(t, db.DB)
	db.mustCheck()
	db.reopen()
	if flat(t, db.DB) != want {
		t.Fatal("the database changed")
	}
	_, err = db.Compact(context.Background(), nil)
	ok(t, err)
}

// TestCompactSteadyWriters: writers that change keys at a steady pace,
// more than a quiet round's worth in each round, do not keep Compact from
// finishing: the rounds stop converging, and the final round applies what
// the writers changed during the last one (here, written just before
// writers are blocked). Nothing is lost.
func TestCompactSteadyWriters(t *testing.T) {
	db := openDB(t, defaultFreelist, &quiver.Options{NoSync: true})
	fillBucket(t, db.DB, "b", 100)
	rounds := 0
	unhook := setHooks(t, db.Path(), &testhook.Hooks{Compact: func(_, stage string) {
		switch stage {
		case "round":
			rounds++
			fillBucket(t, db.DB, fmt.Sprint("r", rounds), 2000)
		case "final":
			fillBucket(t, db.DB, "final", 2000)
		}
	}})
	st, err := db.Compact(context.Background(), nil)
	ok(t, err)
	unhook()
	if st.Rounds > 5 {
		t.Fatalf("%d rounds for writers at a steady pace", st.Rounds)
	}
	want := flat(t, db.DB)
	db.mustCheck()
	db.reopen()
	if flat(t, db.DB) != want {
		t.Fatal("the database changed across the reopen")
	}
	ok(t, db.View(func(tx *quiver.Tx) error {
		for i := 1; i <= rounds; i++ {
			if b := tx.Bucket([]byte(fmt.Sprint("r", i))); b == nil || b.Stats().KeyN != 2000 {
				t.Fatalf("bucket r%d, filled during round %d, is not whole", i, i)
			}
		}
		if b := tx.Bucket([]byte("final")); b == nil || b.Stats().KeyN != 2000 {
			t.Fatal("the bucket filled before the final round is not whole")
		}
		return nil
	}))
}

// TestCompactSwaps: between the copy and the switch, a nested bucket
// becomes a key of the same name and a key becomes a bucket, and the
// copy follows.
func TestCompactSwaps(t *testing.T) {
	db := openDB(t, defaultFreelist, &quiver.Options{NoSync: true})
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 500; i++ {
			if err := b.Put([]byte(fmt.Sprintf("k%04d", i)), []byte("v")); err != nil {
				return err
			}
		}
		n, err := b.CreateBucket([]byte("k0100x"))
		if err != nil {
			return err
		}
		return n.Put([]byte("inner"), []byte("1"))
	}))
	swaps := 0
	unhook := setHooks(t, db.Path(), &testhook.Hooks{Compact: func(_, stage string) {
		if stage != "round" && stage != "final" {
			return
		}
		swaps++
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			name := []byte(fmt.Sprintf("k%04d", 100+swaps))
			// The key name becomes a bucket; the bucket of the last swap
			// becomes a key.
			if err := b.Delete(name); err != nil {
				return err
			}
			n, err := b.CreateBucket(name)
			if err != nil {
				return err
			}
			if err := n.Put([]byte("inner"), []byte(fmt.Sprint(swaps))); err != nil {
				return err
			}
			prev := []byte(fmt.Sprintf("k%04d", 99+swaps))
			if swaps == 1 {
				prev = []byte("k0100x")
			}
			if err := b.DeleteBucket(prev); err != nil {
				return err
			}
			return b.Put(prev, []byte("was a bucket"))
		}))
	}})
	_, err := db.Compact(context.Background(), nil)
	ok(t, err)
	unhook()
	if swaps < 2 {
		t.Fatalf("%d swaps", swaps)
	}
	want := flat(t, db.DB)
	db.mustCheck()
	db.reopen()
	if got := flat(t, db.DB); got != want {
		t.Fatalf("after the swaps and a reopen:\n%s\nwant\n%s", got, want)
	}
	ok(t, db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		if v := b.Get([]byte("k0100x")); string(v) != "was a bucket" {
			t.Fatalf("k0100x = %q", v)
		}
		if n := b.Bucket([]byte(fmt.Sprintf("k%04d", 100+swaps))); n == nil || string(n.Get([]byte("inner"))) != fmt.Sprint(swaps) {
			t.Fatal("the last key made a bucket is not one")
		}
		return nil
	}))
}

// TestCompactWithSyncAndClose: Sync called throughout a compaction works
// on whichever file is current, and Close during a compaction stops it
// cleanly: the database reopens whole, the temporary file is gone.
func TestCompactWithSyncAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, &quiver.Options{NoSync: true})
	ok(t, err)
	fillBucket(t, db, "b", 20000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var syncs int
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.Sync(); err != nil {
				t.Errorf("Sync during a compaction: %v", err)
				return
			}
			syncs++
		}
	}()
	for i := 0; i < 3; i++ {
		_, err := db.Compact(context.Background(), nil)
		ok(t, err)
	}
	close(stop)
	wg.Wait()
	if syncs == 0 {
		t.Fatal("no Sync ran")
	}
	want := flat(t, db)

	closed := make(chan error, 1)
	var once sync.Once
	unhook := setHooks(t, db.Path(), &testhook.Hooks{Compact: func(_, stage string) {
		if stage != "round" {
			return
		}
		once.Do(func() {
			go func() { closed <- db.Close() }()
			// Sync fails once Close has begun.
			for db.Sync() == nil {
				time.Sleep(time.Millisecond)
			}
		})
	}})
	if _, err := db.Compact(context.Background(), nil); !errors.Is(err, quiver.ErrDatabaseNotOpen) {
		t.Fatalf("Compact with Close during it: %v", err)
	}
	unhook()
	ok(t, <-closed)
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary file is left: %v", err)
	}
	if err := db.Sync(); !errors.Is(err, quiver.ErrDatabaseNotOpen) {
		t.Fatalf("Sync after Close: %v", err)
	}
	d, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	defer d.Close()
	if flat(t, d) != want {
		t.Fatal("the database reopened after a Close during a compaction differs")
	}
	mustCheck(t, d)
}
