package quiver_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver"
)

func TestTxLifecycle(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	tx, err := db.Begin(true)
	ok(t, err)
	if !tx.Writable() || tx.ID() != 2 || tx.DB() == nil || tx.DB().Path() != db.Path() {
		t.Fatalf("writable %v id %d", tx.Writable(), tx.ID())
	}
	_, err = tx.CreateBucket([]byte("b"))
	ok(t, err)
	committed := false
	tx.OnCommit(func() { committed = true })
	ok(t, tx.Commit())
	if !committed {
		t.Error("OnCommit handler did not run")
	}
	if err := tx.Commit(); !errors.Is(err, quiver.ErrTxClosed) {
		t.Errorf("second Commit: %v", err)
	}
	if err := tx.Rollback(); !errors.Is(err, quiver.ErrTxClosed) {
		t.Errorf("Rollback after Commit: %v", err)
	}
	if _, err := tx.CreateBucket([]byte("c")); !errors.Is(err, quiver.ErrTxClosed) {
		t.Errorf("CreateBucket on a closed tx: %v", err)
	}

	r, err := db.Begin(false)
	ok(t, err)
	if r.Writable() || r.ID() != 2 {
		t.Errorf("reader writable %v id %d", r.Writable(), r.ID())
	}
	if r.Size() <= 0 {
		t.Error("Size not positive")
	}
	if err := r.Commit(); !errors.Is(err, quiver.ErrTxNotWritable) {
		t.Errorf("Commit of a read tx: %v", err)
	}
	ok(t, r.Rollback())
	if err := r.Rollback(); !errors.Is(err, quiver.ErrTxClosed) {
		t.Errorf("second Rollback: %v", err)
	}

	// Rollback discards.
	w, err := db.Begin(true)
	ok(t, err)
	_, err = w.CreateBucket([]byte("gone"))
	ok(t, err)
	w.OnCommit(func() { t.Error("OnCommit ran on rollback") })
	ok(t, w.Rollback())
	ok(t, db.View(func(tx *quiver.Tx) error {
		if tx.Bucket([]byte("gone")) != nil {
			t.Error("rolled back bucket exists")
		}
		return nil
	}))
}

func TestManagedTx(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		if err := tx.Commit(); !errors.Is(err, quiver.ErrTxManaged) {
			t.Errorf("Commit inside Update: %v", err)
		}
		if err := tx.Rollback(); !errors.Is(err, quiver.ErrTxManaged) {
			t.Errorf("Rollback inside Update: %v", err)
		}
		_, err := tx.CreateBucket([]byte("b"))
		return err
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		if err := tx.Rollback(); !errors.Is(err, quiver.ErrTxManaged) {
			t.Errorf("Rollback inside View: %v", err)
		}
		if _, err := tx.CreateBucket([]byte("x")); !errors.Is(err, quiver.ErrTxNotWritable) {
			t.Errorf("CreateBucket inside View: %v", err)
		}
		return nil
	}))
	// An error from fn rolls back and is returned.
	boom := errors.New("boom")
	if err := db.Update(func(tx *quiver.Tx) error {
		_, _ = tx.CreateBucket([]byte("rolled"))
		return boom
	}); err != boom {
		t.Fatalf("Update returned %v", err)
	}
	ok(t, db.View(func(tx *quiver.Tx) error {
		if tx.Bucket([]byte("rolled")) != nil {
			t.Error("bucket of a failed Update exists")
		}
		return nil
	}))
	// A panic in fn releases the writer lock.
	func() {
		defer func() { _ = recover() }()
		_ = db.Update(func(tx *quiver.Tx) error { panic("in update") })
	}()
	ok(t, db.Update(func(tx *quiver.Tx) error { return nil }))
}

func TestWriteToAndCopyFile(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		fill(t, db.DB, "b", 5000, 100)
		dir := t.TempDir()
		// A hot copy from a read tx while a writer changes the database.
		r, err := db.Begin(false)
		ok(t, err)
		ok(t, db.Update(func(tx *quiver.Tx) error { return tx.DeleteBucket([]byte("b")) }))
		fill(t, db.DB, "c", 3000, 100)
		var buf bytes.Buffer
		n, err := r.WriteTo(&buf)
		ok(t, err)
		if n != int64(buf.Len()) || n != r.Size() {
			t.Fatalf("WriteTo wrote %d, buffer %d, size %d", n, buf.Len(), r.Size())
		}
		copyPath := filepath.Join(dir, "copy")
		ok(t, r.CopyFile(copyPath, 0o600))
		ok(t, r.Rollback())
		ok(t, os.WriteFile(filepath.Join(dir, "buf"), buf.Bytes(), 0o600))
		for _, p := range []string{copyPath, filepath.Join(dir, "buf")} {
			c, err := quiver.Open(p, 0o600, &quiver.Options{FreelistType: ft})
			ok(t, err)
			mustCheck(t, c)
			expectFill(t, c, "b", 5000, 100)
			ok(t, c.View(func(tx *quiver.Tx) error {
				if tx.Bucket([]byte("c")) != nil {
					t.Error("copy holds a bucket made after its snapshot")
				}
				return nil
			}))
			// The copy is a working database.
			fill(t, c, "d", 100, 10)
			mustCheck(t, c)
			ok(t, c.Close())
		}
	})
}

func TestLargeValues(t *testing.T) {
	sizes := []int{1 << 20, 16 << 20}
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		for _, size := range sizes {
			v := value(size, size)
			for i := range v {
				v[i] = byte(i * 7)
			}
			ok(t, db.Update(func(tx *quiver.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("big"))
				if err != nil {
					return err
				}
				ok(t, b.Put([]byte("small-before"), []byte("x")))
				ok(t, b.Put([]byte("small-after"), []byte("y")))
				return b.Put(key(size), v)
			}))
			db.reopen()
			ok(t, db.View(func(tx *quiver.Tx) error {
				if got := tx.Bucket([]byte("big")).Get(key(size)); !bytes.Equal(got, v) {
					t.Errorf("%d-byte value read back as %d bytes", size, len(got))
				}
				return nil
			}))
		}
		db.mustCheck()
		// Shrinking and deleting large values frees their pages, or gives
		// them back to the file system when they end the file.
		before := fileSize(t, db)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("big"))
			ok(t, b.Put(key(sizes[0]), []byte("tiny")))
			return b.Delete(key(sizes[1]))
		}))
		// Release happens at the next write.
		ok(t, db.Update(func(tx *quiver.Tx) error { return nil }))
		free := int64(db.Stats().FreePageN)*4096 + before - fileSize(t, db)
		if free < 17<<20 {
			t.Errorf("only %d bytes free or given back after dropping 17 MiB of values", free)
		}
		db.reopen()
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("big"))
			if string(b.Get(key(sizes[0]))) != "tiny" || b.Get(key(sizes[1])) != nil {
				t.Error("large values not replaced/deleted")
			}
			return nil
		}))
	})
}

func TestManyKeysSplitsAndMerges(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, &quiver.Options{NoSync: true})
		const batch = 50_000
		for start := 0; start < n; start += batch {
			ok(t, db.Update(func(tx *quiver.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				for i := start; i < start+batch; i++ {
					// Interleave to split pages in the middle, not only at the end.
					j := (i*7919 + 13) % n
					if err := b.Put(key(j), value(j, 20)); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		var full quiver.BucketStats
		ok(t, db.View(func(tx *quiver.Tx) error { full = tx.Bucket([]byte("b")).Stats(); return nil }))
		if full.KeyN != n || full.Depth < 3 {
			t.Fatalf("after load: %+v", full)
		}
		db.mustCheck()
		// Delete 99% of the keys: leaves merge, the tree gets shallower.
		for start := 0; start < n; start += batch {
			ok(t, db.Update(func(tx *quiver.Tx) error {
				b := tx.Bucket([]byte("b"))
				for i := start; i < start+batch; i++ {
					if i%100 != 0 {
						if err := b.Delete(key(i)); err != nil {
							return err
						}
					}
				}
				return nil
			}))
		}
		var small quiver.BucketStats
		ok(t, db.View(func(tx *quiver.Tx) error { small = tx.Bucket([]byte("b")).Stats(); return nil }))
		if small.KeyN != n/100 || small.LeafPageN > full.LeafPageN/20 {
			t.Fatalf("after deletes: %+v (full: %d leaves)", small, full.LeafPageN)
		}
		db.reopen()
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			for i := 0; i < n; i += 100 {
				if !bytes.Equal(b.Get(key(i)), value(i, 20)) {
					t.Fatalf("key %d lost", i)
				}
			}
			return nil
		}))
	})
}

// TestLargeTransaction puts 300k keys in one transaction: splitting the one
// huge leaf this makes must take one pass (it once copied the remainder at
// every split, quadratic in the keys of the transaction).
func TestLargeTransaction(t *testing.T) {
	n := 300_000
	if testing.Short() {
		n = 50_000
	}
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, &quiver.Options{NoSync: true})
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("b"))
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				if err := b.Put(key(i), value(i, 50)); err != nil {
					return err
				}
			}
			return nil
		}))
		expectFill(t, db.DB, "b", n, 50)
	})
}
