package quiver_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

func TestCloseWaitsForReaders(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	fill(t, db.DB, "b", 100, 10)
	r, err := db.Begin(false)
	ok(t, err)
	closed := make(chan error, 1)
	go func() { closed <- db.DB.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a read tx was open")
	case <-time.After(50 * time.Millisecond):
	}
	// The open reader still reads its snapshot.
	if v := r.Bucket([]byte("b")).Get(key(5)); v == nil {
		t.Fatal("reader lost its data while Close waited")
	}
	ok(t, r.Rollback())
	select {
	case err := <-closed:
		ok(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the reader ended")
	}
	db.DB = nil
}

func TestViewsRacingClose(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	fill(t, db.DB, "b", 100, 10)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := db.View(func(tx *quiver.Tx) error {
					if tx.Bucket([]byte("b")).Get(key(1)) == nil {
						return errors.New("key missing")
					}
					return nil
				})
				if errors.Is(err, quiver.ErrDatabaseNotOpen) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	ok(t, db.DB.Close())
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		close(stop)
		t.Fatal("readers hung after Close")
	}
	db.DB = nil
}

func TestCheckOutlivesTx(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	fill(t, db.DB, "b", 3000, 100)
	tx, err := db.Begin(false)
	ok(t, err)
	ch := tx.Check()
	ok(t, tx.Rollback())
	// Writes that reuse pages while the check still reads its snapshot.
	for i := 0; i < 5; i++ {
		ok(t, db.Update(func(tx *quiver.Tx) error { return tx.DeleteBucket([]byte("b")) }))
		fill(t, db.DB, "b", 3000, 100)
	}
	for err := range ch {
		t.Errorf("check of the ended tx's snapshot: %v", err)
	}
}
