package tx_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver"
)

// TestMoveBucket moves a bucket holding keys and a nested bucket between
// parents, the root included, in the transaction that changed it and in
// later ones, then checks the moved contents after a reopen and the file's
// consistency; and the refusals.
func TestMoveBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill := func(b *quiver.Bucket, n int) error {
		for i := range n {
			if err := b.Put(fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		return nil
	}
	err = db.Update(func(tx *quiver.Tx) error {
		a, _ := tx.CreateBucket([]byte("a"))
		b, _ := tx.CreateBucket([]byte("b"))
		c, err := a.CreateBucket([]byte("c"))
		if err != nil {
			return err
		}
		if err := fill(c, 3000); err != nil {
			return err
		}
		d, _ := c.CreateBucket([]byte("d"))
		if err := fill(d, 10); err != nil {
			return err
		}
		// Moved in the transaction that created it, changed after.
		if err := a.MoveBucket([]byte("c"), b); err != nil {
			return err
		}
		return c.Put([]byte("after"), []byte("move"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Moved in a later transaction, unchanged, to the root.
	if err := db.Update(func(tx *quiver.Tx) error {
		return tx.MoveBucket([]byte("c"), tx.Bucket([]byte("b")), nil)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = quiver.Open(path, 0o600, nil); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *quiver.Tx) error {
		if tx.Bucket([]byte("a")).Bucket([]byte("c")) != nil || tx.Bucket([]byte("b")).Bucket([]byte("c")) != nil {
			t.Error("c still in a or b")
		}
		c := tx.Bucket([]byte("c"))
		if c == nil {
			return errors.New("c not at the root")
		}
		if st := c.Stats(); st.KeyN != 3000+2+10 || st.BucketN != 2 {
			t.Errorf("c: %d keys, %d buckets", st.KeyN, st.BucketN)
		}
		if string(c.Get([]byte("after"))) != "move" || string(c.Bucket([]byte("d")).Get([]byte("k00009"))) != "v9" {
			t.Error("c's contents are wrong")
		}
		for err := range tx.Check() {
			t.Errorf("check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Refusals.
	err = db.Update(func(tx *quiver.Tx) error {
		a, b, c := tx.Bucket([]byte("a")), tx.Bucket([]byte("b")), tx.Bucket([]byte("c"))
		if err := a.Put([]byte("key"), []byte("v")); err != nil {
			return err
		}
		if _, err := b.CreateBucket([]byte("x")); err != nil {
			return err
		}
		if _, err := a.CreateBucket([]byte("x")); err != nil {
			return err
		}
		for _, tc := range []struct {
			name     string
			src, dst *quiver.Bucket
			want     error
		}{
			{"missing", a, b, quiver.ErrBucketNotFound},
			{"key", a, b, quiver.ErrIncompatibleValue},
			{"x", a, b, quiver.ErrBucketExists},
			{"x", a, a, quiver.ErrSameBuckets},
			{"c", nil, c.Bucket([]byte("d")), quiver.ErrIncompatibleValue},
			{"c", nil, c, quiver.ErrIncompatibleValue},
		} {
			if err := tx.MoveBucket([]byte(tc.name), tc.src, tc.dst); !errors.Is(err, tc.want) {
				t.Errorf("move %q: %v, want %v", tc.name, err, tc.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	// Into another database's write transaction; into a read transaction,
	// which is refused as such first (bbolt's order).
	db2, err := quiver.Open(filepath.Join(t.TempDir(), "db2"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	tx2, err := db2.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback()
	into, err := tx2.CreateBucket([]byte("into"))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *quiver.Tx) error {
		if err := tx.MoveBucket([]byte("c"), nil, into); !errors.Is(err, quiver.ErrDifferentDB) {
			t.Errorf("into another database: %v", err)
		}
		if err := tx.MoveBucket([]byte("c"), nil, other.Bucket([]byte("a"))); !errors.Is(err, quiver.ErrTxNotWritable) {
			t.Errorf("into a read transaction: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Bucket([]byte("a")).MoveBucket([]byte("x"), other.Bucket([]byte("b"))); !errors.Is(err, quiver.ErrTxNotWritable) {
		t.Errorf("in a read transaction: %v", err)
	}
}

// TestInspect checks the structure Inspect reports: keys counted without
// nested buckets, children in key order, the root named "root".
func TestInspect(t *testing.T) {
	db, err := quiver.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *quiver.Tx) error {
		a, _ := tx.CreateBucket([]byte("a"))
		for i := range 500 {
			a.Put(fmt.Appendf(nil, "%04d", i), []byte("v"))
		}
		b, _ := a.CreateBucket([]byte("b"))
		b.Put([]byte("x"), []byte("y"))
		a.CreateBucket([]byte("c"))
		tx.CreateBucket([]byte("z"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *quiver.Tx) error {
		got := fmt.Sprint(tx.Inspect())
		want := "{root 0 [{a 500 [{b 1 []} {c 0 []}]} {z 0 []}]}"
		if got != want {
			t.Errorf("Inspect: %s, want %s", got, want)
		}
		if got := fmt.Sprint(tx.Bucket([]byte("a")).Bucket([]byte("b")).Inspect()); got != "{root 1 []}" {
			t.Errorf("bucket b: %s", got)
		}
		return nil
	})
}

// TestPage checks Tx.Page's kinds: the two metas, a bucket's leaf, the
// pages freed by deleting a large bucket, nothing past the end, an error
// for a negative id.
func TestPage(t *testing.T) {
	db, err := quiver.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *quiver.Tx) error {
		b, _ := tx.CreateBucket([]byte("b"))
		big, _ := tx.CreateBucket([]byte("big"))
		for i := range 2000 {
			big.Put(fmt.Appendf(nil, "%05d", i), make([]byte, 100))
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	db.Update(func(tx *quiver.Tx) error { return tx.DeleteBucket([]byte("big")) })
	db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k2"), []byte("v")) })
	db.View(func(tx *quiver.Tx) error {
		root := int(tx.Bucket([]byte("b")).Root())
		for id, want := range map[int]string{0: "meta", 1: "meta", root: "leaf"} {
			p, err := tx.Page(id)
			if err != nil || p == nil || p.Type != want || p.ID != id {
				t.Errorf("page %d: %+v, %v; want %s", id, p, err, want)
			}
		}
		if p, _ := tx.Page(root); p.Count != 2 {
			t.Errorf("leaf count %d", p.Count)
		}
		free := 0
		for id := 0; id < int(tx.Size()/4096); id++ {
			if p, err := tx.Page(id); err == nil && p.Type == "free" {
				free++
			}
		}
		if free < 50 {
			t.Errorf("%d free pages after deleting a bucket of 2,000 values of 100 bytes", free)
		}
		if p, err := tx.Page(int(tx.Size() / 4096)); p != nil || err != nil {
			t.Errorf("past the end: %+v, %v", p, err)
		}
		if _, err := tx.Page(-1); err == nil {
			t.Error("negative id accepted")
		}
		return nil
	})
}
