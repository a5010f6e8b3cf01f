package quiver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testhook"
)

// commitRandom commits n random transactions of random operations to db
// and the model m.
func commitRandom(t *testing.T, r *rand.Rand, db *quiver.DB, m **mbucket, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		work := (*m).clone()
		ok(t, db.Update(func(tx *quiver.Tx) error {
			for k := r.IntN(60); k >= 0; k-- {
				randomOp(t, r, tx, work)
			}
			return nil
		}))
		*m = work
	}
}

// requireModel fails the test unless db holds exactly the model.
func requireModel(t *testing.T, db *quiver.DB, m *mbucket, what string) {
	t.Helper()
	ok(t, db.View(func(tx *quiver.Tx) error {
		got, err := flattenDB(tx)
		if err != nil {
			return err
		}
		if d := diffFlat(modelRoot(m), got); d != "" {
			t.Fatalf("%s: database differs from the model:\n%s", what, d)
		}
		return nil
	}))
}

// TestCompactCatchesUp compacts a database of random nested buckets while
// random transactions commit at every stage of the compaction (before each
// catch-up round and just before writers are blocked), then requires the
// database to equal the model, to check, to keep doing so after a reopen,
// and transaction ids to keep growing.
func TestCompactCatchesUp(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		seed := testSeed(t)
		r := newRand(seed)
		db := openDB(t, ft, &quiver.Options{PageSize: 1024, NoSync: true})
		model := newMBucket()
		commitRandom(t, r, db.DB, &model, 60)
		compactions := 12
		if testing.Short() {
			compactions = 4
		}
		for c := 0; c < compactions; c++ {
			var before int
			ok(t, db.View(func(tx *quiver.Tx) error { before = tx.ID(); return nil }))
			stages := map[string]int{}
			unhook := setHooks(t, db.Path(), &testhook.Hooks{Compact: func(_, stage string) {
				stages[stage]++
				switch stage {
				case "round", "final":
					commitRandom(t, r, db.DB, &model, r.IntN(8))
				}
			}})
			st, err := db.Compact(context.Background(), &quiver.CompactOptions{TxMaxSize: int64(1 + r.IntN(20000))})
			if err != nil {
				t.Fatalf("compaction %d (seed %d): %v", c, seed, err)
			}
			unhook()
			if stages["switched"] != 1 || st.Rounds < 2 {
				t.Fatalf("compaction %d: stages %v, stats %+v", c, stages, st)
			}
			requireModel(t, db.DB, model, fmt.Sprintf("after compaction %d (seed %d)", c, seed))
			db.mustCheck()
			ok(t, db.View(func(tx *quiver.Tx) error {
				if tx.ID() <= before {
					t.Fatalf("compaction %d: tx id %d after, %d before", c, tx.ID(), before)
				}
				return nil
			}))
			if _, err := os.Stat(db.Path() + ".compact"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the temporary file is left: %v", err)
			}
			commitRandom(t, r, db.DB, &model, 5)
			if c%3 == 2 {
				db.reopen()
				requireModel(t, db.DB, model, fmt.Sprintf("reopened after compaction %d (seed %d)", c, seed))
			}
		}
	})
}

// TestCompactShrinks: after deleting most of a database, compaction gives
// back the free pages inside the file, which the truncation of a free tail
// cannot.
func TestCompactShrinks(t *testing.T) {
	db := openDB(t, defaultFreelist, &quiver.Options{NoSync: true})
	val := bytes.Repeat([]byte("v"), 200)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 20000; i++ {
			if err := b.Put([]byte(fmt.Sprintf("%08d", i)), val); err != nil {
				return err
			}
		}
		return nil
	}))
	// Delete all but every 50th key: the survivors pin pages all over.
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i := 0; i < 20000; i++ {
			if i%50 != 0 {
				if err := b.Delete([]byte(fmt.Sprintf("%08d", i))); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	st, err := db.Compact(context.Background(), nil)
	ok(t, err)
	fi, err := os.Stat(db.Path())
	ok(t, err)
	t.Logf("%+v", st)
	if st.NewSize != fi.Size() || st.NewSize*3 > st.OldSize {
		t.Fatalf("compaction went from %d to %d bytes (file %d): want a third or less", st.OldSize, st.NewSize, fi.Size())
	}
	ok(t, db.View(func(tx *quiver.Tx) error {
		if n := tx.Bucket([]byte("b")).Stats().KeyN; n != 400 {
			t.Fatalf("%d keys after compaction, want 400", n)
		}
		return nil
	}))
}

// TestCompactOldReaders: a read transaction begun before the switch keeps
// reading its snapshot, from the old file, while new transactions see the
// new file; Close waits for the old reader.
func TestCompactOldReaders(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("old"))
	}))
	old, err := db.Begin(false)
	ok(t, err)
	setHooks(t, db.Path(), &testhook.Hooks{Compact: func(_, stage string) {
		if stage == "round" {
			ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k"), []byte("new")) }))
		}
	}})
	_, err = db.Compact(context.Background(), nil)
	ok(t, err)
	if v := old.Bucket([]byte("b")).Get([]byte("k")); string(v) != "old" {
		t.Fatalf("old reader sees %q", v)
	}
	ok(t, db.View(func(tx *quiver.Tx) error {
		if v := tx.Bucket([]byte("b")).Get([]byte("k")); string(v) != "new" {
			t.Fatalf("new reader sees %q", v)
		}
		return nil
	}))
	// Writers go on while the old reader is open.
	ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k2"), []byte("x")) }))
	closed := make(chan error)
	path := db.Path()
	go func() { closed <- db.DB.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while an old reader was open", err)
	default:
	}
	if v := old.Bucket([]byte("b")).Get([]byte("k")); string(v) != "old" {
		t.Fatalf("old reader sees %q while closing", v)
	}
	ok(t, old.Rollback())
	ok(t, <-closed)
	db.DB = nil
	d, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	defer d.Close()
	mustCheck(t, d)
	ok(t, d.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		if string(b.Get([]byte("k"))) != "new" || string(b.Get([]byte("k2"))) != "x" {
			t.Fatalf("after reopen: k=%q k2=%q", b.Get([]byte("k")), b.Get([]byte("k2")))
		}
		return nil
	}))
}

// TestCompactConcurrent runs writers and readers flat out while the
// database is compacted several times. Every writer's commit adds one key
// to its own bucket and bumps a counter in the same transaction; readers
// require the counter to equal the keys in every snapshot. At the end
// every acknowledged key must be there, also after a reopen.
func TestCompactConcurrent(t *testing.T) {
	db := openDB(t, defaultFreelist, &quiver.Options{NoSync: true})
	const writers = 3
	ok(t, db.Update(func(tx *quiver.Tx) error {
		for w := 0; w < writers; w++ {
			if _, err := tx.CreateBucket([]byte(fmt.Sprintf("w%d", w))); err != nil {
				return err
			}
		}
		// Bulk, and holes, so that the copy takes a while.
		b, err := tx.CreateBucket([]byte("bulk"))
		if err != nil {
			return err
		}
		for i := 0; i < 30000; i++ {
			if err := b.Put([]byte(fmt.Sprintf("%08d", i)), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		return nil
	}))
	var stop atomic.Bool
	var wg sync.WaitGroup
	acked := make([]int, writers)
	errs := make(chan error, writers+2)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			name := []byte(fmt.Sprintf("w%d", w))
			for i := 0; !stop.Load(); i++ {
				err := db.Update(func(tx *quiver.Tx) error {
					b := tx.Bucket(name)
					if err := b.Put([]byte(fmt.Sprintf("%08d", i)), []byte("v")); err != nil {
						return err
					}
					_, err := b.NextSequence()
					if i%7 == 0 {
						// Churn the bulk bucket too.
						bulk := tx.Bucket([]byte("bulk"))
						k := []byte(fmt.Sprintf("%08d", (i*7919+w)%30000))
						if err := bulk.Delete(k); err != nil {
							return err
						}
					}
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				acked[w] = i + 1
			}
		}(w)
	}
	for rd := 0; rd < 2; rd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				err := db.View(func(tx *quiver.Tx) error {
					for w := 0; w < writers; w++ {
						b := tx.Bucket([]byte(fmt.Sprintf("w%d", w)))
						if n := b.Stats().KeyN; uint64(n) != b.Sequence() {
							return fmt.Errorf("bucket w%d: %d keys, sequence %d", w, n, b.Sequence())
						}
					}
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
			}
		}()
	}
	rounds := 0
	for c := 0; c < 3; c++ {
		st, err := db.Compact(context.Background(), &quiver.CompactOptions{TxMaxSize: 1 << 16})
		if err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("compaction %d: %v", c, err)
		}
		rounds += st.Rounds
		t.Logf("compaction %d: %+v", c, st)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	check := func(what string) {
		ok(t, db.View(func(tx *quiver.Tx) error {
			for w := 0; w < writers; w++ {
				b := tx.Bucket([]byte(fmt.Sprintf("w%d", w)))
				if n := b.Stats().KeyN; n != acked[w] || b.Sequence() != uint64(acked[w]) {
					t.Errorf("%s: writer %d acknowledged %d commits; bucket has %d keys, sequence %d", what, w, acked[w], n, b.Sequence())
				}
			}
			return nil
		}))
	}
	check("after compaction")
	db.mustCheck()
	db.reopen()
	check("after reopen")
	t.Logf("acknowledged %v commits across 3 compactions (%d rounds)", acked, rounds)
}

// TestCompactErrors: a read-only or closed database refuses, a done
// context stops the compaction with the database unchanged, and a copy
// whose writes fail leaves the database working and no temporary file.
func TestCompactErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 2000; i++ {
			if err := b.Put([]byte(fmt.Sprint(i)), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Compact(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Compact with a done context: %v", err)
	}
	if _, err := db.Compact(context.Background(), &quiver.CompactOptions{TxMaxSize: -1}); err == nil {
		t.Fatal("Compact accepted a negative TxMaxSize")
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary file is left: %v", err)
	}
	ok(t, db.Close())
	if _, err := db.Compact(context.Background(), nil); !errors.Is(err, quiver.ErrDatabaseNotOpen) {
		t.Fatalf("Compact on a closed database: %v", err)
	}
	ro, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
	ok(t, err)
	if _, err := ro.Compact(context.Background(), nil); !errors.Is(err, quiver.ErrDatabaseReadOnly) {
		t.Fatalf("Compact on a read-only database: %v", err)
	}
	ok(t, ro.Close())

	// Fail the temporary file's Nth write, for growing N, until a
	// compaction gets through.
	for n := 1; ; n++ {
		var writes atomic.Int64
		failing := func(p string, flag int, mode os.FileMode) (quiver.File, error) {
			f, err := quiver.OpenOSFile(p, flag, mode)
			if err != nil || filepath.Ext(p) != ".compact" {
				return f, err
			}
			return &failWrites{File: f, n: int64(n), writes: &writes}, nil
		}
		db, err := quiver.Open(path, 0o600, &quiver.Options{OpenFile: failing})
		ok(t, err)
		_, cerr := db.Compact(context.Background(), &quiver.CompactOptions{TxMaxSize: 4096})
		if cerr == nil {
			ok(t, db.Close())
			if n < 3 {
				t.Fatalf("compaction passed with write %d failing", n)
			}
			break
		}
		if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("write %d failing: the temporary file is left: %v", n, err)
		}
		ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(fmt.Sprint("x", n)), []byte("v")) }))
		mustCheck(t, db)
		ok(t, db.Close())
	}
}

type failWrites struct {
	quiver.File
	n      int64
	writes *atomic.Int64
}

func (f *failWrites) WriteAt(p []byte, off int64) (int, error) {
	if f.writes.Add(1) == f.n {
		return 0, errors.New("injected write failure")
	}
	return f.File.WriteAt(p, off)
}

// TestCompactLibrary copies a database with nested buckets, sequences and
// large values with Compact, in small transactions, and requires the copy
// to hold the same.
func TestCompactLibrary(t *testing.T) {
	seed := testSeed(t)
	r := newRand(seed)
	src := openDB(t, defaultFreelist, &quiver.Options{PageSize: 1024, NoSync: true})
	model := newMBucket()
	commitRandom(t, r, src.DB, &model, 80)
	for _, max := range []int64{0, 1, 5000} {
		dst := openDB(t, defaultFreelist, &quiver.Options{NoSync: true})
		copied := 0
		ok(t, quiver.CompactContext(context.Background(), dst.DB, src.DB, &quiver.CompactOptions{TxMaxSize: max, Progress: func(n int) { copied = n }}))
		requireModel(t, dst.DB, model, fmt.Sprintf("copy with txMaxSize %d (seed %d)", max, seed))
		if copied == 0 {
			t.Fatal("no progress reported")
		}
	}
	dst := openDB(t, defaultFreelist, nil)
	ok(t, quiver.Compact(dst.DB, src.DB, 0))
	requireModel(t, dst.DB, model, "Compact")
}

// TestCompactSymlink: a database opened through a symbolic link is
// compacted where the link points; the link stays a link.
func TestCompactSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.db")
	link := filepath.Join(dir, "link.db")
	db, err := quiver.Open(real, 0o600, nil)
	ok(t, err)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}))
	ok(t, db.Close())
	ok(t, os.Symlink("real.db", link))
	db, err = quiver.Open(link, 0o600, nil)
	ok(t, err)
	defer db.Close()
	_, err = db.Compact(context.Background(), nil)
	ok(t, err)
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link is no longer a link: %v %v", fi, err)
	}
	if _, err := os.Stat(real + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k2"), []byte("v2")) }))
	ok(t, db.Close())
	d, err := quiver.Open(real, 0o600, nil)
	ok(t, err)
	defer d.Close()
	ok(t, d.View(func(tx *quiver.Tx) error {
		if v := tx.Bucket([]byte("b")).Get([]byte("k2")); string(v) != "v2" {
			t.Fatalf("k2 = %q in the link's target", v)
		}
		return nil
	}))
}
