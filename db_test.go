package quiver_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
)

func TestOpenCreatesAndReopens(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("widgets"))
			if err != nil {
				return err
			}
			return b.Put([]byte("foo"), []byte("bar"))
		}))
		db.reopen()
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("widgets"))
			if b == nil {
				return errors.New("bucket missing after reopen")
			}
			if v := b.Get([]byte("foo")); string(v) != "bar" {
				return fmt.Errorf("foo = %q after reopen", v)
			}
			return nil
		}))
		if db.Path() == "" || db.IsReadOnly() {
			t.Fatalf("Path %q IsReadOnly %v", db.Path(), db.IsReadOnly())
		}
	})
}

func TestOpenBadPageSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	for _, ps := range []int{100, 3000, 512, 1 << 25, 3 << 20} {
		if _, err := quiver.Open(path, 0o600, &quiver.Options{PageSize: ps}); err == nil {
			t.Errorf("page size %d accepted", ps)
		}
	}
	if _, err := quiver.Open(path, 0o600, &quiver.Options{FreelistType: "nope"}); err == nil {
		t.Error("unknown freelist type accepted")
	}
}

func TestOpenPageSizes(t *testing.T) {
	for _, ps := range []int{1024, 8192, 65536, 1 << 20, 1 << 24} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			db := openDB(t, defaultFreelist, &quiver.Options{PageSize: ps})
			fill(t, db.DB, "b", 3000, 50)
			db.reopen()
			expectFill(t, db.DB, "b", 3000, 50)
		})
	}
}

// TestPageCountLimit fills 1 MiB pages with more of the smallest elements
// than a page's 16-bit count can number: leaves are cut at the count
// limit, and every key reads back after a reopen and passes Check.
func TestPageCountLimit(t *testing.T) {
	const n = 150000
	db := openDB(t, defaultFreelist, &quiver.Options{PageSize: 1 << 20})
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		b.FillPercent = 1
		for i := 0; i < n; i++ {
			if err := b.Put([]byte{byte(i >> 16), byte(i >> 8), byte(i)}, nil); err != nil {
				return err
			}
		}
		return nil
	}))
	db.reopen()
	ok(t, db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		st := b.Stats()
		if st.KeyN != n || st.LeafPageN < 3 {
			t.Errorf("%d keys in %d leaves; want %d keys in at least 3 leaves of at most %d", st.KeyN, st.LeafPageN, n, page.MaxCount)
		}
		i, c := 0, b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if want := []byte{byte(i >> 16), byte(i >> 8), byte(i)}; !bytes.Equal(k, want) {
				t.Fatalf("key %d is %x, want %x", i, k, want)
			}
			i++
		}
		if i != n {
			t.Errorf("%d keys read back, want %d", i, n)
		}
		return nil
	}))
}

func TestClosedDatabase(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	ok(t, db.DB.Close())
	ok(t, db.DB.Close()) // closing twice is harmless
	if _, err := db.Begin(false); !errors.Is(err, quiver.ErrDatabaseNotOpen) {
		t.Errorf("Begin(false) after Close: %v", err)
	}
	if _, err := db.Begin(true); !errors.Is(err, quiver.ErrDatabaseNotOpen) {
		t.Errorf("Begin(true) after Close: %v", err)
	}
	if err := db.View(func(*quiver.Tx) error { return nil }); !errors.Is(err, quiver.ErrDatabaseNotOpen) {
		t.Errorf("View after Close: %v", err)
	}
	if err := db.Sync(); !errors.Is(err, quiver.ErrDatabaseNotOpen) {
		t.Errorf("Sync after Close: %v", err)
	}
	db.DB = nil
}

func TestFileLock(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	start := time.Now()
	_, err := quiver.Open(db.Path(), 0o600, &quiver.Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, quiver.ErrTimeout) {
		t.Fatalf("second read-write open: %v, want ErrTimeout", err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Fatalf("gave up after %v, before the timeout", time.Since(start))
	}
	// A read-only open waits for the writer's exclusive lock too.
	if _, err := quiver.Open(db.Path(), 0o600, &quiver.Options{ReadOnly: true, Timeout: 50 * time.Millisecond}); !errors.Is(err, quiver.ErrTimeout) {
		t.Fatalf("read-only open beside a writer: %v, want ErrTimeout", err)
	}
}

func TestReadOnlyShareLock(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "b", 100, 10)
	path := db.Path()
	ok(t, db.DB.Close())
	db.DB = nil

	r1, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true, Timeout: time.Second})
	ok(t, err)
	defer r1.Close()
	r2, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true, Timeout: time.Second})
	ok(t, err)
	defer r2.Close()
	if !r1.IsReadOnly() {
		t.Fatal("IsReadOnly false")
	}
	expectFill(t, r2, "b", 100, 10)
	mustCheck(t, r1)
	if _, err := r1.Begin(true); !errors.Is(err, quiver.ErrDatabaseReadOnly) {
		t.Fatalf("Begin(true) read-only: %v", err)
	}
	if err := r1.Update(func(*quiver.Tx) error { return nil }); !errors.Is(err, quiver.ErrDatabaseReadOnly) {
		t.Fatalf("Update read-only: %v", err)
	}
	// The writer waits for the readers' shared locks.
	if _, err := quiver.Open(path, 0o600, &quiver.Options{Timeout: 50 * time.Millisecond}); !errors.Is(err, quiver.ErrTimeout) {
		t.Fatalf("writer beside readers: %v, want ErrTimeout", err)
	}
}

func TestOpenNotAQuiverFile(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"text":      bytes.Repeat([]byte("hello, world\n"), 1000),
		"short":     []byte("QVR1"),
		"zeros":     make([]byte, 16384),
		"one-page":  make([]byte, 4096),
		"ff":        bytes.Repeat([]byte{0xff}, 8192),
		"sqlite":    append([]byte("SQLite format 3\x00"), make([]byte, 8192)...),
		"truncated": nil, // filled below
	}
	// A real database cut short.
	src := openDB(t, defaultFreelist, nil)
	fill(t, src.DB, "b", 2000, 100)
	raw, err := os.ReadFile(src.Path())
	ok(t, err)
	cases["truncated"] = raw[:len(raw)/3]
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			ok(t, os.WriteFile(path, data, 0o600))
			db, err := quiver.Open(path, 0o600, nil)
			if err == nil {
				// The truncated copy may still hold a complete older state
				// if the cut fell in preallocated space; then it must check.
				mustCheck(t, db)
				db.Close()
				if name != "truncated" {
					t.Fatalf("opened a %s file", name)
				}
				return
			}
			if !errors.Is(err, quiver.ErrInvalid) && !quiver.IsCorruption(err) {
				t.Fatalf("error %v is neither ErrInvalid nor a corruption", err)
			}
		})
	}
}

func TestOpenEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	ok(t, os.WriteFile(path, nil, 0o600))
	if _, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true}); !errors.Is(err, quiver.ErrInvalid) {
		t.Fatalf("read-only open of an empty file: %v", err)
	}
	// A read-write open makes a zero-length file a new database, as bbolt.
	db, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	mustCheck(t, db)
	ok(t, db.Close())
}

func TestOpenVersionMismatch(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	path := db.Path()
	ok(t, db.DB.Close())
	db.DB = nil
	raw, err := os.ReadFile(path)
	ok(t, err)
	for _, off := range []int{36, 4096 + 36} {
		raw[off] = 99
	}
	ok(t, os.WriteFile(path, raw, 0o600))
	if _, err := quiver.Open(path, 0o600, nil); !errors.Is(err, quiver.ErrVersionMismatch) {
		t.Fatalf("open of version 99: %v", err)
	}
}

func TestOpenCorruptMeta(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "b", 500, 20)
	path := db.Path()
	ok(t, db.DB.Close())
	db.DB = nil
	raw, err := os.ReadFile(path)
	ok(t, err)

	// One damaged meta: the other one opens (an earlier, complete state).
	one := append([]byte(nil), raw...)
	one[60] ^= 0xff
	ok(t, os.WriteFile(path, one, 0o600))
	d, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	mustCheck(t, d)
	ok(t, d.Close())

	// Both damaged: an error naming the damage, no panic.
	both := append([]byte(nil), raw...)
	both[60] ^= 0xff
	both[4096+60] ^= 0xff
	ok(t, os.WriteFile(path, both, 0o600))
	if _, err := quiver.Open(path, 0o600, nil); !quiver.IsCorruption(err) {
		t.Fatalf("open with both metas damaged: %v, want a corruption error", err)
	}
}

func TestCorruptPageReported(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "b", 5000, 100)
	path := db.Path()
	var leaf quiver.BucketStats
	ok(t, db.View(func(tx *quiver.Tx) error { leaf = tx.Bucket([]byte("b")).Stats(); return nil }))
	if leaf.LeafPageN < 10 {
		t.Fatalf("only %d leaves", leaf.LeafPageN)
	}
	ok(t, db.DB.Close())
	db.DB = nil
	raw, err := os.ReadFile(path)
	ok(t, err)
	// Damage the body of every leaf page: a flip in a key or value.
	damaged := 0
	for off := 2 * 4096; off+4096 <= len(raw); off += 4096 {
		if page.Flags(raw[off:]) == page.FlagLeaf {
			raw[off+2000] ^= 0x5a
			damaged++
		}
	}
	if damaged < 10 {
		t.Fatalf("only %d leaf pages found to damage", damaged)
	}
	ok(t, os.WriteFile(path, raw, 0o600))
	d, err := quiver.Open(path, 0o600, nil)
	ok(t, err) // metas and the freelist are intact
	defer d.Close()
	n := 0
	ok(t, d.View(func(tx *quiver.Tx) error {
		for err := range tx.Check() {
			n++
			var ce *quiver.CorruptionError
			if !errors.As(err, &ce) || !errors.Is(err, quiver.ErrCorrupt) || ce.Pgid < 2 {
				t.Errorf("check error %v is not a CorruptionError naming a page", err)
			}
		}
		return nil
	}))
	if n < damaged {
		t.Fatalf("check found %d problems for %d damaged leaves", n, damaged)
	}
}

func TestCorruptHeaderIsAnError(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "b", 5000, 100)
	path := db.Path()
	ok(t, db.DB.Close())
	db.DB = nil
	raw, err := os.ReadFile(path)
	ok(t, err)
	// Make every branch and leaf page claim another id.
	for off := 2 * 4096; off+4096 <= len(raw); off += 4096 {
		if f := raw[off+24]; f == 0x01 || f == 0x02 {
			raw[off+8] ^= 0x01
		}
	}
	ok(t, os.WriteFile(path, raw, 0o600))
	d, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	defer d.Close()
	err = d.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		if b != nil {
			_ = b.Get([]byte("k000001"))
		}
		return nil
	})
	var ce *quiver.CorruptionError
	if !errors.As(err, &ce) || !quiver.IsCorruption(err) {
		t.Fatalf("View over damaged pages returned %v, want a *CorruptionError", err)
	}
	if err := d.Update(func(tx *quiver.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("b"))
		return err
	}); !quiver.IsCorruption(err) {
		t.Fatalf("Update over damaged pages returned %v", err)
	}
}

// failingFile fails Sync when armed.
type failingFile struct {
	quiver.File
	failSync *atomic.Bool
	syncs    *atomic.Int64
}

func (f failingFile) Sync() error {
	f.syncs.Add(1)
	if f.failSync.Load() {
		return fmt.Errorf("injected fdatasync failure: %w", syscall.EIO)
	}
	return f.File.Sync()
}

// failingSyncs returns options whose files fail Sync while fail is set and
// count every Sync in syncs.
func failingSyncs(fail *atomic.Bool, syncs *atomic.Int64) *quiver.Options {
	return &quiver.Options{OpenFile: func(path string, flag int, mode os.FileMode) (quiver.File, error) {
		f, err := quiver.OpenOSFile(path, flag, mode)
		if err != nil {
			return nil, err
		}
		return failingFile{File: f, failSync: fail, syncs: syncs}, nil
	}}
}

func TestFailedSyncRefusesWrites(t *testing.T) {
	var fail atomic.Bool
	var syncs atomic.Int64
	opts := failingSyncs(&fail, &syncs)
	db := openDB(t, defaultFreelist, opts)
	fill(t, db.DB, "b", 100, 10)
	before := syncs.Load()
	ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("x"), []byte("1")) }))
	if n := syncs.Load() - before; n != 1 {
		t.Fatalf("a commit made %d syncs, want 1", n)
	}
	fail.Store(true)
	err := db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("y"), []byte("2")) })
	if err == nil {
		t.Fatal("commit with a failing sync succeeded")
	}
	fail.Store(false)
	err = db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("z"), []byte("3")) })
	if !errors.Is(err, quiver.ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("commit after a failed sync: %v, want ErrFailed with the cause (EIO) in the chain", err)
	}
	// Reads still work; reopening clears the failure and keeps what was
	// acknowledged.
	ok(t, db.View(func(tx *quiver.Tx) error {
		if string(tx.Bucket([]byte("b")).Get([]byte("x"))) != "1" {
			return errors.New("acknowledged key x missing")
		}
		return nil
	}))
	db.reopen()
	ok(t, db.View(func(tx *quiver.Tx) error {
		if string(tx.Bucket([]byte("b")).Get([]byte("x"))) != "1" {
			return errors.New("acknowledged key x missing after reopen")
		}
		return nil
	}))
	ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("z"), []byte("3")) }))
}

func TestNoSync(t *testing.T) {
	var syncs atomic.Int64
	var never atomic.Bool
	opts := &quiver.Options{NoSync: true, OpenFile: func(path string, flag int, mode os.FileMode) (quiver.File, error) {
		f, err := quiver.OpenOSFile(path, flag, mode)
		if err != nil {
			return nil, err
		}
		return failingFile{File: f, failSync: &never, syncs: &syncs}, nil
	}}
	db := openDB(t, defaultFreelist, opts)
	before := syncs.Load()
	fill(t, db.DB, "b", 1000, 10)
	if n := syncs.Load() - before; n != 0 {
		t.Fatalf("NoSync commits made %d syncs", n)
	}
	ok(t, db.Sync())
	db.reopen()
	expectFill(t, db.DB, "b", 1000, 10)
}

func TestStats(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "b", 3000, 100)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i := 0; i < 3000; i += 2 {
			if err := b.Delete(key(i)); err != nil {
				return err
			}
		}
		return nil
	}))
	ok(t, db.View(func(*quiver.Tx) error { return nil }))
	st := db.Stats()
	if st.TxN < 1 || st.OpenTxN != 0 {
		t.Fatalf("TxN %d OpenTxN %d", st.TxN, st.OpenTxN)
	}
	if st.FreePageN+st.PendingPageN == 0 {
		t.Fatal("no free pages after deleting half the keys")
	}
	if st.TxStats.PageCount == 0 || st.TxStats.Write == 0 || st.TxStats.AllocTime <= 0 || st.TxStats.WriteTime <= 0 {
		t.Fatalf("tx stats %+v", st.TxStats)
	}
}

// key returns the i-th test key.
func key(i int) []byte { return []byte(fmt.Sprintf("k%06d", i)) }

// value returns the i-th test value of n bytes.
func value(i, n int) []byte {
	v := bytes.Repeat([]byte{byte('a' + i%26)}, n)
	copy(v, fmt.Sprint(i))
	return v
}

// fill creates bucket name and puts n keys with values of size vs.
func fill(t testing.TB, db *quiver.DB, name string, n, vs int) {
	t.Helper()
	for start := 0; start < n; start += 1000 {
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return err
			}
			for i := start; i < n && i < start+1000; i++ {
				if err := b.Put(key(i), value(i, vs)); err != nil {
					return err
				}
			}
			return nil
		}))
	}
}

// expectFill checks what fill put.
func expectFill(t testing.TB, db *quiver.DB, name string, n, vs int) {
	t.Helper()
	ok(t, db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("bucket %s missing", name)
		}
		i := 0
		err := b.ForEach(func(k, v []byte) error {
			if !bytes.Equal(k, key(i)) || !bytes.Equal(v, value(i, vs)) {
				return fmt.Errorf("entry %d is %q=%.20q", i, k, v)
			}
			i++
			return nil
		})
		if err == nil && i != n {
			err = fmt.Errorf("%d keys, want %d", i, n)
		}
		return err
	}))
}
