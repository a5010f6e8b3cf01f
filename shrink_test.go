package quiver_test

import (
	"os"
	"testing"

	"github.com/quiverdb/quiver"
)

func fileSize(t *testing.T, db *testDB) int64 {
	t.Helper()
	st, err := os.Stat(db.Path())
	ok(t, err)
	return st.Size()
}

// TestFreeTailShrinksFile: after most data is deleted, the free pages at
// the end of the file are given back and the file is truncated, but not
// while a reader can still see them; the result passes Check, survives a
// reopen and keeps growing normally.
func TestFreeTailShrinksFile(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, &quiver.Options{AllocSize: 1 << 20})
		// Values too large for two to share a page: a leaf each.
		const keys, size = 6000, 2100
		for i := 0; i < keys; i += 500 {
			ok(t, db.Update(func(tx *quiver.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				for j := i; j < i+500; j++ {
					if err := b.Put(key(j), value(j, size)); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		peak := fileSize(t, db)
		reader, err := db.Begin(false)
		ok(t, err)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			for j := 100; j < keys; j++ {
				if err := b.Delete(key(j)); err != nil {
					return err
				}
			}
			return nil
		}))
		for i := 0; i < 3; i++ {
			ok(t, db.Update(func(*quiver.Tx) error { return nil }))
		}
		if size := fileSize(t, db); size < peak {
			t.Fatalf("the file shrank from %d to %d bytes while a reader could see the freed pages", peak, size)
		}
		// The reader still sees every value.
		b := reader.Bucket([]byte("b"))
		for j := 0; j < keys; j += 37 {
			if string(b.Get(key(j))) != string(value(j, size)) {
				t.Fatalf("reader lost key %d", j)
			}
		}
		ok(t, reader.Rollback())
		// The pages the delete wrote (the new root and branches) went to
		// the end of the file, and so did the freelist's records until a
		// checkpoint frees them; the next writes move the nodes to low free
		// pages and bring a checkpoint, and then the tail is free.
		for i := 0; i < 12; i++ {
			ok(t, db.Update(func(tx *quiver.Tx) error {
				return tx.Bucket([]byte("b")).Put(key(i), value(i, size))
			}))
		}
		small := fileSize(t, db)
		if small > peak/4 {
			t.Fatalf("file %d bytes after deleting 98%% of %d bytes; want it shrunk", small, peak)
		}
		t.Logf("file %d -> %d bytes", peak, small)
		db.mustCheck()
		db.reopen()
		if fileSize(t, db) != small {
			t.Fatalf("reopen changed the file size")
		}
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			for j := 0; j < 100; j++ {
				if string(b.Get(key(j))) != string(value(j, size)) {
					t.Fatalf("key %d lost", j)
				}
			}
			// Grows again.
			for j := keys; j < keys+2000; j++ {
				if err := b.Put(key(j), value(j, size)); err != nil {
					return err
				}
			}
			return nil
		}))
		if fileSize(t, db) <= small {
			t.Fatal("the file did not grow again")
		}
	})
}

// TestBigFirstCommitLeavesRoom: one commit that grows a new file to many
// megabytes grows it in the step for its new size, so that the next
// commits, a reopen's included, find room and do not grow it again (bbolt's
// TestOpen_Size). The step used to be the old size's, which left a new
// file's first big commit no room at all.
func TestBigFirstCommitLeavesRoom(t *testing.T) {
	db := openDB(t, quiver.FreelistHashmap, &quiver.Options{AllocSize: 4 << 20})
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 6000; i++ {
			if err := b.Put(key(i), value(i, 1000)); err != nil {
				return err
			}
		}
		return nil
	}))
	size := fileSize(t, db)
	db.reopen()
	for i := 0; i < 3; i++ {
		ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte{byte(i)}, []byte("x")) }))
	}
	if grown := fileSize(t, db); grown != size {
		t.Fatalf("file grew from %d to %d bytes for three small commits after a big one", size, grown)
	}
}
