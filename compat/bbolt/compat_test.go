package bbolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// TestWrappers checks what the wrappers add to quiver: the types bbolt's
// API returns (Tx.DB is the *DB, Bucket.Tx the *Tx, Cursor.Bucket the
// *Bucket), nil for missing buckets, the OpenFile hook with *os.File,
// the errors package's values, and the settings kept as DB fields.
func TestWrappers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	opened := 0
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		FreelistType: bolt.FreelistArrayType,
		OpenFile: func(p string, flag int, mode os.FileMode) (*os.File, error) {
			opened++
			return os.OpenFile(p, flag, mode)
		},
		NoFreelistSync: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if opened != 1 || db.FreelistType != bolt.FreelistArrayType || !db.NoFreelistSync || db.Path() != path {
		t.Errorf("opened %d, freelist %q, NoFreelistSync %v, path %q", opened, db.FreelistType, db.NoFreelistSync, db.Path())
	}
	db.StrictMode = true
	err = db.Update(func(tx *bolt.Tx) error {
		if tx.DB() != db {
			t.Error("Tx.DB is not the DB")
		}
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		if b.Tx() != tx || b.Cursor().Bucket() != b {
			t.Error("Bucket.Tx or Cursor.Bucket is not its parent")
		}
		b.FillPercent = 1.0
		for i := range 1000 {
			if err := b.Put([]byte{byte(i >> 8), byte(i)}, make([]byte, 50)); err != nil {
				return err
			}
		}
		if tx.Bucket([]byte("missing")) != nil || b.Bucket([]byte("missing")) != nil {
			t.Error("a missing bucket is not nil")
		}
		if _, err := tx.CreateBucket([]byte("b")); !errors.Is(err, berrors.ErrBucketExists) || err != bolt.ErrBucketExists {
			t.Errorf("CreateBucket twice: %v", err)
		}
		k, _ := tx.Cursor().First()
		if string(k) != "b" || tx.Cursor().Bucket().Tx() != tx {
			t.Errorf("the root cursor: %q", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket([]byte("b")).Stats()
		// Filled to 100%, 1,000 values of 50 bytes take fewer leaves than
		// at bbolt's default half fill.
		if st.KeyN != 1000 || st.LeafPageN > 16 {
			t.Errorf("%d keys in %d leaves", st.KeyN, st.LeafPageN)
		}
		if tx.Inspect().Children[0].KeyN != 1000 {
			t.Errorf("Inspect: %+v", tx.Inspect())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if info := db.Info(); info == nil || info.PageSize != 4096 || info.Data == 0 {
		t.Errorf("Info: %+v", info)
	}
	if s := db.GoString(); s != `bolt.DB{path:"`+path+`"}` {
		t.Errorf("GoString: %s", s)
	}
	var zero bolt.DB
	if _, err := zero.Begin(false); err != bolt.ErrDatabaseNotOpen {
		t.Errorf("Begin on DB{}: %v", err)
	}
}

// TestBboltFileRefused writes a file with bbolt's meta magic and checks
// that Open names the converter instead of misreading it.
func TestBboltFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bolt.db")
	b := make([]byte, 8192)
	b[16], b[17], b[18], b[19] = 0xED, 0xDA, 0x0C, 0xED // 0xED0CDAED, little endian
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bolt.Open(path, 0o600, nil)
	if !errors.Is(err, berrors.ErrInvalid) || !strings.Contains(err.Error(), "quiver import --from-bbolt") {
		t.Fatalf("Open of a bbolt file: %v", err)
	}
}

// TestBboltBehaviours checks what the wrappers do as bbolt does where
// quiver differs: Open's bare ErrInvalid for a file that is no database and
// ErrChecksum for one whose metas are both damaged,
// a panic for Commit or Rollback inside Update or View, "meta N copy" for
// a copy that fails in its first pages, and bbolt's BucketStats.
func TestBboltBehaviours(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("this is not a bolt database\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(junk, 0o600, nil); err != bolt.ErrInvalid {
		t.Errorf("Open of a text file: %v, want ErrInvalid itself", err)
	}

	damaged := filepath.Join(dir, "damaged")
	d, err := bolt.Open(damaged, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps := d.Info().PageSize
	d.Close()
	raw, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	raw[50] ^= 1
	raw[ps+50] ^= 1
	if err := os.WriteFile(damaged, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(damaged, 0o600, nil); err != bolt.ErrChecksum {
		t.Errorf("Open with both metas damaged: %v, want ErrChecksum itself", err)
	}

	db, err := bolt.Open(filepath.Join(dir, "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	panics := func(f func() error) (p bool) {
		defer func() { p = recover() != nil }()
		_ = f()
		return false
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if !panics(tx.Commit) || !panics(tx.Rollback) {
			t.Error("Commit or Rollback in Update did not panic")
		}
		_, err := tx.CreateBucket([]byte("empty"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if !panics(tx.Commit) || !panics(tx.Rollback) {
			t.Error("Commit or Rollback in View did not panic")
		}
		for _, c := range []struct {
			after int
			want  string
		}{{0, "meta 0 copy: injected"}, {ps + 10, "meta 1 copy: injected"}, {2 * ps, "injected"}} {
			after := c.after
			if err := tx.Copy(failAfter{&after}); err == nil || err.Error() != c.want {
				t.Errorf("copy failing after %d bytes: %v, want %q", c.after, err, c.want)
			}
		}
		b := tx.Bucket([]byte("empty"))
		if st := b.Stats(); st.BucketN != 1 || st.InlineBucketN != 1 || b.RootPage() != 0 {
			t.Errorf("an empty bucket: %+v, root %d", st, b.RootPage())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Errorf("Rollback of a transaction of Begin: %v", err)
	}
}

// failAfter is a writer that fails once *n bytes were written.
type failAfter struct{ n *int }

func (f failAfter) Write(p []byte) (int, error) {
	if len(p) > *f.n {
		n := *f.n
		*f.n = 0
		return n, errors.New("injected")
	}
	*f.n -= len(p)
	return len(p), nil
}
