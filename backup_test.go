package quiver_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

// TestBackupAfterFileShrinks is issue 15's first case: a reader begun
// before the file's free tail is truncated backs the snapshot up. Its
// high-water mark still covers the truncated pages, which were free in its
// snapshot; copying them from the mapping faulted (SIGBUS). The copy must
// read only what the snapshot can reach, and open and check clean.
func TestBackupAfterFileShrinks(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		big := bytes.Repeat([]byte{0xab}, 1<<20)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("big"))
			if err != nil {
				return err
			}
			for i := 0; i < 40; i++ {
				if err := b.Put([]byte(fmt.Sprintf("k%02d", i)), big); err != nil {
					return err
				}
			}
			_, err = tx.CreateBucket([]byte("small"))
			return err
		}))
		ok(t, db.Update(func(tx *quiver.Tx) error { return tx.DeleteBucket([]byte("big")) }))
		before := fileSize(t, db)
		small := 0
		put := func() {
			small++
			ok(t, db.Update(func(tx *quiver.Tx) error {
				return tx.Bucket([]byte("small")).Put([]byte(fmt.Sprintf("s%03d", small)), []byte("v"))
			}))
		}
		// A reader begun just before the commit that shrinks the file (an
		// early checkpoint frees the freelist records that end it, a few
		// small commits after the delete).
		var r *quiver.Tx
		inSnapshot := 0
		for i := 0; i < 32 && r == nil; i++ {
			tx, err := db.Begin(false)
			ok(t, err)
			inSnapshot = small
			put()
			if fileSize(t, db)*4 < before {
				r = tx
			} else {
				ok(t, tx.Rollback())
			}
		}
		if r == nil {
			t.Fatalf("the file did not shrink in 32 small commits after the delete: the test no longer covers the case")
		}
		defer r.Rollback()
		after := fileSize(t, db)
		if r.Size() <= after {
			t.Fatalf("the reader's size %d is within the file (%d): the test no longer covers the case", r.Size(), after)
		}
		h := sha256.New()
		if _, err := r.WriteTo(h); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		var buf bytes.Buffer
		if _, err := r.WriteTo(&buf); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		checkBackup(t, buf.Bytes(), map[string]int{"small": inSnapshot})
		path := filepath.Join(t.TempDir(), "copy")
		ok(t, r.CopyFile(path, 0o600))
		data, err := os.ReadFile(path)
		ok(t, err)
		if !bytes.Equal(data, buf.Bytes()) {
			t.Fatalf("CopyFile and WriteTo differ")
		}
		var copied bytes.Buffer
		//lint:ignore SA1019 the deprecated name must still work
		ok(t, r.Copy(&copied))
		if !bytes.Equal(copied.Bytes(), buf.Bytes()) {
			t.Fatalf("Copy and WriteTo differ")
		}
	})
}

// checkBackup opens a backup image as a database, checks it, and compares
// the key count of each bucket in want (nil: no comparison).
func checkBackup(t testing.TB, image []byte, want map[string]int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup")
	ok(t, os.WriteFile(path, image, 0o600))
	db, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer db.Close()
	mustCheck(t, db)
	ok(t, db.View(func(tx *quiver.Tx) error {
		for name, n := range want {
			b := tx.Bucket([]byte(name))
			if b == nil {
				return fmt.Errorf("backup lacks bucket %q", name)
			}
			got := 0
			if err := b.ForEach(func(k, v []byte) error { got++; return nil }); err != nil {
				return err
			}
			if n > 0 && got != n {
				return fmt.Errorf("backup's bucket %q has %d keys, want %d", name, got, n)
			}
		}
		return nil
	}))
}

// TestHotBackupUnderChurn backs up from readers while a writer grows and
// shrinks the file (a bucket of large values filled and dropped, over
// and over); every backup opens, checks clean and holds the counter the
// snapshot held.
func TestHotBackupUnderChurn(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			_, err := tx.CreateBucket([]byte("meta"))
			return err
		}))
		var stop atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		wg.Add(1)
		go func() { // the writer
			defer wg.Done()
			defer stop.Store(true)
			big := bytes.Repeat([]byte{0x5a}, 256<<10)
			for round := 0; round < rounds; round++ {
				err := db.Update(func(tx *quiver.Tx) error {
					b, err := tx.CreateBucket([]byte("big"))
					if err != nil {
						return err
					}
					for i := 0; i < 48; i++ {
						if err := b.Put([]byte(fmt.Sprintf("k%03d", i)), big); err != nil {
							return err
						}
					}
					return nil
				})
				if err == nil {
					err = db.Update(func(tx *quiver.Tx) error { return tx.DeleteBucket([]byte("big")) })
				}
				for i := 0; err == nil && i < 12; i++ {
					err = db.Update(func(tx *quiver.Tx) error {
						m := tx.Bucket([]byte("meta"))
						_, err := m.NextSequence()
						if err != nil {
							return err
						}
						return m.Put([]byte(fmt.Sprintf("r%03d-%02d", round, i)), []byte("x"))
					})
				}
				if err != nil {
					errs <- fmt.Errorf("writer: %w", err)
					return
				}
			}
		}()
		var backups atomic.Int64
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() { // readers that back up
				defer wg.Done()
				deadline := time.Now().Add(2 * time.Minute)
				for !stop.Load() && time.Now().Before(deadline) {
					var buf bytes.Buffer
					var seq uint64
					var keys int
					err := db.View(func(tx *quiver.Tx) error {
						m := tx.Bucket([]byte("meta"))
						seq = m.Sequence()
						keys = m.Stats().KeyN
						// Let the writer move on under the open reader.
						time.Sleep(time.Millisecond)
						_, err := tx.WriteTo(&buf)
						return err
					})
					if err != nil {
						errs <- fmt.Errorf("backup: %w", err)
						return
					}
					checkBackupSeq(t, buf.Bytes(), seq, keys)
					backups.Add(1)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		t.Logf("%d backups checked", backups.Load())
	})
}

// checkBackupSeq opens a backup, checks it, and compares the meta bucket's
// sequence and key count with what the snapshot held.
func checkBackupSeq(t testing.TB, image []byte, seq uint64, keys int) {
	t.Helper()
	checkBackup(t, image, nil)
	path := filepath.Join(t.TempDir(), "seq")
	ok(t, os.WriteFile(path, image, 0o600))
	db, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
	ok(t, err)
	defer db.Close()
	ok(t, db.View(func(tx *quiver.Tx) error {
		m := tx.Bucket([]byte("meta"))
		if m == nil {
			return fmt.Errorf("backup lacks the meta bucket")
		}
		if m.Sequence() != seq || m.Stats().KeyN != keys {
			return fmt.Errorf("backup holds sequence %d and %d keys, the snapshot %d and %d", m.Sequence(), m.Stats().KeyN, seq, keys)
		}
		return nil
	}))
}
