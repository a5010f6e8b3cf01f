package quiver_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/quiverdb/quiver"
)

// Misuse of handles after their transaction ended (issue 15, cases 2, 3
// and 5): an error or nothing, never a panic, never another transaction's
// data, never a corruption report.

// handles are what a careless program keeps from a transaction.
type handles struct {
	tx     *quiver.Tx
	b      *quiver.Bucket
	nested *quiver.Bucket
	c      *quiver.Cursor
}

func seedMisuse(t *testing.T, db *testDB) {
	t.Helper()
	ok(t, db.Update(func(tx *quiver.Tx) error {
		for _, name := range []string{"A", "B"} {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), []byte("value of "+name)); err != nil {
				return err
			}
			if err := b.Put([]byte("l"), []byte("value of "+name)); err != nil {
				return err
			}
			n, err := b.CreateBucket([]byte("n"))
			if err != nil {
				return err
			}
			if err := n.Put([]byte("k"), []byte("nested of "+name)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// checkEnded calls every method of h and fails on a result other than
// ErrTxClosed, nil or an empty answer.
func checkEnded(t *testing.T, h handles) {
	t.Helper()
	closed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, quiver.ErrTxClosed) {
			t.Errorf("%s after the end: %v, want ErrTxClosed", what, err)
		}
	}
	for _, b := range []*quiver.Bucket{h.b, h.nested} {
		if v := b.Get([]byte("k")); v != nil {
			t.Errorf("Get after the end returned %q", v)
		}
		if nb := b.Bucket([]byte("n")); nb != nil {
			t.Errorf("Bucket after the end returned a bucket")
		}
		closed("Put", b.Put([]byte("k"), []byte("v")))
		closed("Delete", b.Delete([]byte("k")))
		_, err := b.CreateBucket([]byte("x"))
		closed("CreateBucket", err)
		_, err = b.CreateBucketIfNotExists([]byte("x"))
		closed("CreateBucketIfNotExists", err)
		closed("DeleteBucket", b.DeleteBucket([]byte("n")))
		_, err = b.NextSequence()
		closed("NextSequence", err)
		closed("SetSequence", b.SetSequence(7))
		closed("ForEach", b.ForEach(func(k, v []byte) error { return nil }))
		closed("ForEachBucket", b.ForEachBucket(func(k []byte) error { return nil }))
		if s := b.Stats(); s.KeyN != 0 {
			t.Errorf("Stats after the end counted %d keys", s.KeyN)
		}
		c := b.Cursor()
		for _, k := range [][]byte{first(c.First()), first(c.Last()), first(c.Seek([]byte("k"))), first(c.Next()), first(c.Prev())} {
			if k != nil {
				t.Errorf("a new cursor after the end returned key %q", k)
			}
		}
		closed("Cursor.Delete", c.Delete())
	}
	c := h.c
	for _, k := range [][]byte{first(c.Next()), first(c.Prev()), first(c.First()), first(c.Last()), first(c.Seek([]byte("k")))} {
		if k != nil {
			t.Errorf("a kept cursor after the end returned key %q", k)
		}
	}
	closed("Cursor.Delete", c.Delete())
	tx := h.tx
	if tx.Bucket([]byte("B")) != nil {
		t.Errorf("Tx.Bucket after the end returned a bucket")
	}
	closed("Tx.ForEach", tx.ForEach(func(name []byte, b *quiver.Bucket) error { return nil }))
	_, err := tx.CreateBucket([]byte("C"))
	closed("Tx.CreateBucket", err)
	closed("Tx.DeleteBucket", tx.DeleteBucket([]byte("A")))
	closed("Tx.Commit", tx.Commit())
	closed("Tx.Rollback", tx.Rollback())
	_, err = tx.WriteTo(&bytes.Buffer{})
	closed("Tx.WriteTo", err)
	if k, _ := tx.Cursor().First(); k != nil {
		t.Errorf("Tx.Cursor after the end returned key %q", k)
	}
	for err := range tx.Check() {
		closed("Tx.Check", err)
	}
}

func first(k, _ []byte) []byte { return k }

func TestUseAfterCommitOrRollback(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		seedMisuse(t, db)
		for _, end := range []string{"commit", "rollback", "read rollback"} {
			t.Run(end, func(t *testing.T) {
				tx, err := db.Begin(end != "read rollback")
				ok(t, err)
				b := tx.Bucket([]byte("A"))
				h := handles{tx: tx, b: b, nested: b.Bucket([]byte("n")), c: b.Cursor()}
				h.c.First()
				if end == "commit" {
					ok(t, b.Put([]byte("m"), []byte("v")))
					ok(t, tx.Commit())
				} else {
					ok(t, tx.Rollback())
				}
				checkEnded(t, h)
			})
		}
	})
}

// TestStaleHandleAfterView: handles kept from one View must not read the
// transaction of a later View (pooled transactions once handed the stale
// bucket the later one's memory), even from another goroutine.
func TestStaleHandleAfterView(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		seedMisuse(t, db)
		var h handles
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("A"))
			h = handles{tx: tx, b: b, nested: b.Bucket([]byte("n")), c: b.Cursor()}
			h.c.First()
			return nil
		}))
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("B"))
			if got := string(b.Get([]byte("k"))); got != "value of B" {
				t.Errorf("B's k = %q", got)
			}
			b.Bucket([]byte("n"))
			checkEnded(t, h)
			return nil
		}))
		checkEnded(t, h)
		// Other goroutines' transactions, while the stale handles are
		// used (run with -race).
		var wg sync.WaitGroup
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					_ = db.View(func(tx *quiver.Tx) error {
						if v := tx.Bucket([]byte("B")).Bucket([]byte("n")).Get([]byte("k")); string(v) != "nested of B" {
							t.Errorf("nested k = %q", v)
						}
						return nil
					})
				}
			}()
		}
		for i := 0; i < 200; i++ {
			if v := h.b.Get([]byte("k")); v != nil {
				t.Fatalf("a stale bucket read %q", v)
			}
			if v := h.nested.Get([]byte("k")); v != nil {
				t.Fatalf("a stale nested bucket read %q", v)
			}
		}
		wg.Wait()
	})
}

// TestCursorInDeletedBucket: a bucket deleted under its own handles and
// cursors is a misuse, reported as ErrBucketNotFound, not as corruption;
// the transaction goes on and commits.
func TestCursorInDeletedBucket(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		seedMisuse(t, db)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("A"))
			nested := b.Bucket([]byte("n"))
			c := b.Cursor()
			if k, _ := c.First(); string(k) != "k" {
				t.Fatalf("first key %q", k)
			}
			nc := nested.Cursor()
			nc.First()
			ok(t, tx.DeleteBucket([]byte("A")))
			for what, err := range map[string]error{
				"Cursor.Delete":        c.Delete(),
				"nested Cursor.Delete": nc.Delete(),
				"Put":                  b.Put([]byte("z"), []byte("v")),
				"nested Put":           nested.Put([]byte("z"), []byte("v")),
				"Delete":               b.Delete([]byte("k")),
				"DeleteBucket":         b.DeleteBucket([]byte("n")),
				"SetSequence":          b.SetSequence(3),
			} {
				if !errors.Is(err, quiver.ErrBucketNotFound) || quiver.IsCorruption(err) {
					t.Errorf("%s in a deleted bucket: %v, want ErrBucketNotFound", what, err)
				}
			}
			if _, err := b.CreateBucket([]byte("x")); !errors.Is(err, quiver.ErrBucketNotFound) {
				t.Errorf("CreateBucket in a deleted bucket: %v", err)
			}
			if _, err := b.NextSequence(); !errors.Is(err, quiver.ErrBucketNotFound) {
				t.Errorf("NextSequence in a deleted bucket: %v", err)
			}
			if k, _ := c.Next(); k != nil {
				t.Errorf("a cursor in a deleted bucket moved to %q", k)
			}
			if v := b.Get([]byte("l")); v != nil {
				t.Errorf("Get in a deleted bucket: %q", v)
			}
			if err := tx.Err(); err != nil {
				t.Errorf("the transaction recorded %v", err)
			}
			// The transaction is not poisoned: it goes on.
			nb, err := tx.CreateBucket([]byte("A"))
			if err != nil {
				return err
			}
			if v := b.Get([]byte("k")); v != nil {
				t.Errorf("the old handle reads the new bucket: %q", v)
			}
			return nb.Put([]byte("new"), []byte("v"))
		}))
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("A"))
			n := 0
			err := b.ForEach(func(k, v []byte) error { n++; return nil })
			if n != 1 || b.Get([]byte("new")) == nil {
				t.Errorf("the new bucket A has %d keys", n)
			}
			return err
		}))
	})
}

// TestCursorInDeletedLargeBucket: the same misuse in a bucket of several
// levels, where the cursor's path once failed to match the emptied
// bucket's nodes and was reported as a corrupt page.
func TestCursorInDeletedLargeBucket(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("C"))
			if err != nil {
				return err
			}
			for i := 0; i < 3000; i++ {
				if err := b.Put(key(i), value(i, 100)); err != nil {
					return err
				}
			}
			return nil
		}))
		ok(t, db.Update(func(tx *quiver.Tx) error {
			c := tx.Bucket([]byte("C")).Cursor()
			c.Seek(key(1500))
			ok(t, tx.DeleteBucket([]byte("C")))
			err := c.Delete()
			if !errors.Is(err, quiver.ErrBucketNotFound) || quiver.IsCorruption(err) {
				t.Errorf("Cursor.Delete in a deleted bucket: %v, want ErrBucketNotFound", err)
			}
			return tx.Err()
		}))
	})
}
