package quiver_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

func TestBatch(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, &quiver.Options{MaxBatchDelay: 20 * time.Millisecond})
		ok(t, db.Update(func(tx *quiver.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }))
		before := db.Stats().TxStats.Write
		const n = 200
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = db.Batch(func(tx *quiver.Tx) error {
					return tx.Bucket([]byte("b")).Put(key(i), []byte(fmt.Sprint(i)))
				})
			}(i)
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("batch call %d: %v", i, err)
			}
		}
		ok(t, db.View(func(tx *quiver.Tx) error {
			for i := 0; i < n; i++ {
				if string(tx.Bucket([]byte("b")).Get(key(i))) != fmt.Sprint(i) {
					t.Errorf("key %d missing", i)
				}
			}
			return nil
		}))
		// 200 calls grouped into far fewer commits (each commit makes at
		// least two writes).
		if commits := (db.Stats().TxStats.Write - before) / 2; commits > n/4 {
			t.Errorf("200 batch calls made about %d commits", commits)
		}
	})
}

func TestBatchErrorsAreIndividual(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, &quiver.Options{MaxBatchDelay: 20 * time.Millisecond})
	ok(t, db.Update(func(tx *quiver.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }))
	bad := errors.New("bad call")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = db.Batch(func(tx *quiver.Tx) error {
				if i%5 == 0 {
					return bad
				}
				return tx.Bucket([]byte("b")).Put(key(i), []byte("v"))
			})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if (i%5 == 0) != errors.Is(err, bad) {
			t.Errorf("call %d: %v", i, err)
		}
	}
	ok(t, db.View(func(tx *quiver.Tx) error {
		for i := 0; i < 20; i++ {
			if got := tx.Bucket([]byte("b")).Get(key(i)); (got != nil) == (i%5 == 0) {
				t.Errorf("key %d: %q", i, got)
			}
		}
		return nil
	}))
}

func TestBatchMaxSize(t *testing.T) {
	// With MaxBatchSize 1 and a long delay, each call still commits at once.
	db := openDB(t, quiver.FreelistArray, &quiver.Options{MaxBatchSize: 1, MaxBatchDelay: time.Hour})
	done := make(chan error, 1)
	go func() {
		done <- db.Batch(func(tx *quiver.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
	}()
	select {
	case err := <-done:
		ok(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("a full batch waited for its delay")
	}
}
