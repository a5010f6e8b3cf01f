package quiver_test

// Regression tests for problems found in review of the engine core.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
)

// Keys inserted below a first leaf's smallest key, in numbers that make the
// leaf share its elements with its right sibling, must all stay reachable.
func TestInsertBelowMinimumWithRedistribution(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		fill(t, db.DB, "b", 1000, 50)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			for i := 0; i < 400; i++ {
				if err := b.Put([]byte(fmt.Sprintf("a%06d", i)), []byte("low")); err != nil {
					return err
				}
			}
			return nil
		}))
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			for i := 0; i < 400; i++ {
				if b.Get([]byte(fmt.Sprintf("a%06d", i))) == nil {
					t.Fatalf("key a%06d lost", i)
				}
			}
			n := 0
			_ = b.ForEach(func(k, v []byte) error { n++; return nil })
			if n != 1400 {
				t.Fatalf("ForEach saw %d keys, want 1400", n)
			}
			return nil
		}))
	})
}

// A torn commit at txid T+1, then a second attempt at T+1 of which only the
// meta reached the disk: the first attempt's record at the same page must
// not be accepted for the second attempt's meta.
func TestStaleRecordOfTornAttemptRejected(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "b", 500, 20)
	path := db.Path()
	put := func(k string) {
		ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(k), []byte(k)) }))
	}
	ok(t, db.DB.Close())
	base, err := os.ReadFile(path)
	ok(t, err)
	db.reopenAt(path)
	put("x") // attempt A at T+1
	ok(t, db.DB.Close())
	db.DB = nil
	imageA, err := os.ReadFile(path)
	ok(t, err)
	// Crash 1: attempt A's pages are on disk, its meta is not.
	crash1 := append([]byte(nil), imageA...)
	metaA := newestMetaSlot(t, imageA)
	copy(crash1[metaA*4096:(metaA+1)*4096], base[metaA*4096:(metaA+1)*4096])
	ok(t, os.WriteFile(path, crash1, 0o600))
	db.reopenAt(path)
	put("y") // attempt B, at T+1 again
	ok(t, db.DB.Close())
	db.DB = nil
	imageB, err := os.ReadFile(path)
	ok(t, err)
	// Crash 2: only attempt B's meta reached the disk.
	metaB := newestMetaSlot(t, imageB)
	crash2 := append([]byte(nil), crash1...)
	copy(crash2[metaB*4096:(metaB+1)*4096], imageB[metaB*4096:(metaB+1)*4096])
	ok(t, os.WriteFile(path, crash2, 0o600))
	d, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	defer d.Close()
	mustCheck(t, d)
	ok(t, d.View(func(tx *quiver.Tx) error {
		if tx.Bucket([]byte("b")).Get([]byte("x")) != nil {
			t.Error("the failed first attempt's write came back")
		}
		return nil
	}))
}

func (db *testDB) reopenAt(path string) {
	db.t.Helper()
	d, err := quiver.Open(path, 0o600, &db.opts)
	if err != nil {
		db.t.Fatal(err)
	}
	db.DB = d
}

func newestMetaSlot(t *testing.T, raw []byte) int {
	var best *page.Meta
	slot := 0
	for s := 0; s < 2; s++ {
		m, err := page.DecodeMeta(raw[s*4096:], page.Pgid(s))
		if err == nil && (best == nil || m.Txid > best.Txid) {
			best, slot = m, s
		}
	}
	return slot
}

// eioFile fails reads of anything but the meta pages while armed.
type eioFile struct {
	quiver.File
	armed *atomic.Bool
}

func (f eioFile) ReadAt(p []byte, off int64) (int, error) {
	if f.armed.Load() && off >= 2*4096 {
		return 0, errors.New("injected EIO")
	}
	return f.File.ReadAt(p, off)
}

func TestOpenReadErrorIsNotAFallback(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "b", 100, 10)
	path := db.Path()
	ok(t, db.DB.Close())
	db.DB = nil
	var armed atomic.Bool
	armed.Store(true)
	opts := &quiver.Options{OpenFile: func(p string, flag int, mode os.FileMode) (quiver.File, error) {
		f, err := quiver.OpenOSFile(p, flag, mode)
		if err != nil {
			return nil, err
		}
		return eioFile{f, &armed}, nil
	}}
	if d, err := quiver.Open(path, 0o600, opts); err == nil {
		d.Close()
		t.Fatal("Open succeeded although it could not read the commit record")
	}
	db.reopenAt(path)
	expectFill(t, db.DB, "b", 100, 10)
}

func TestCursorDeleteBackwards(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "b", 3000, 20)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		c := tx.Bucket([]byte("b")).Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		if k, _ := tx.Bucket([]byte("b")).Cursor().First(); k != nil {
			t.Errorf("key %q survived deleting backwards", k)
		}
		return nil
	}))
	// Mixed: delete, then Prev, then Next.
	fill(t, db.DB, "c", 10, 5)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		c := tx.Bucket([]byte("c")).Cursor()
		c.Seek(key(5))
		ok(t, c.Delete())
		if k, _ := c.Prev(); !bytes.Equal(k, key(4)) {
			t.Errorf("Prev after deleting k5 = %q", k)
		}
		c.Seek(key(7))
		ok(t, c.Delete())
		if k, _ := c.Next(); !bytes.Equal(k, key(8)) {
			t.Errorf("Next after deleting k7 = %q", k)
		}
		return nil
	}))
}

// Damaged pages under a write are errors, never panics.
func TestDamagedPagesUnderWrites(t *testing.T) {
	for _, damage := range []struct {
		name string
		fn   func(p []byte)
	}{
		{"future txid", func(p []byte) { p[16+5] = 0x01 }},
		{"bad element offset", func(p []byte) { p[32] ^= 0xff; p[33] ^= 0xff }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			db := openDB(t, defaultFreelist, nil)
			fill(t, db.DB, "b", 2000, 20)
			fill(t, db.DB, "other", 10, 5)
			path := db.Path()
			ok(t, db.DB.Close())
			db.DB = nil
			raw, err := os.ReadFile(path)
			ok(t, err)
			// Damage every branch page (the bucket's root among them).
			damaged := 0
			for off := 2 * 4096; off+4096 <= len(raw); off += 4096 {
				if page.Flags(raw[off:]) == page.FlagBranch {
					damage.fn(raw[off : off+4096])
					damaged++
				}
			}
			if damaged == 0 {
				t.Fatal("no branch page found to damage")
			}
			ok(t, os.WriteFile(path, raw, 0o600))
			d, err := quiver.Open(path, 0o600, nil)
			ok(t, err)
			defer d.Close()
			err = d.Update(func(tx *quiver.Tx) error {
				b := tx.Bucket([]byte("b"))
				if b == nil {
					return tx.Err()
				}
				for i := 0; i < 100; i++ {
					if err := b.Put(key(i*17), []byte("v")); err != nil {
						return err
					}
				}
				return b.Delete(key(3))
			})
			if !quiver.IsCorruption(err) {
				t.Fatalf("write over a damaged page: %v, want a corruption error", err)
			}
		})
	}
}

func TestZeroAllocSizeDoesNotHang(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	db.AllocSize = 0
	done := make(chan error, 1)
	go func() {
		done <- db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte("big"), make([]byte, 1<<20))
		})
	}()
	select {
	case err := <-done:
		ok(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("commit hung with AllocSize 0")
	}
}
