package quiver_test

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testhook"
	"github.com/quiverdb/quiver/mmap"
)

// mapFailFile fails every Map while fail is set.
type mapFailFile struct {
	quiver.File
	fail  *atomic.Bool
	calls *atomic.Int64
}

func (f mapFailFile) Map(size int) ([]byte, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, syscall.ENOMEM
	}
	return mmap.Map(f.Fd(), size, 0)
}

// TestRemapFailure: a commit that grows the file past the mapping must map
// it again before writing anything. When that mapping fails, the commit
// fails with the error, the database stays usable (a failed map is not a
// failed write), readers keep their snapshot, and nothing acknowledged is
// lost.
func TestRemapFailure(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		var fail atomic.Bool
		var calls atomic.Int64
		db := openDBWith(t, ft, &quiver.Options{PageSize: 1024, AllocSize: 16 << 10, OpenFile: func(p string, flag int, mode os.FileMode) (quiver.File, error) {
			f, err := quiver.OpenOSFile(p, flag, mode)
			if err != nil {
				return nil, err
			}
			return mapFailFile{File: f, fail: &fail, calls: &calls}, nil
		}}, &testhook.Hooks{MinReservation: 64 << 10})
		if calls.Load() == 0 {
			t.Fatal("open did not map through the Mapper")
		}
		reader, err := db.Begin(false)
		ok(t, err)
		fail.Store(true)
		acked := 0
		var failure error
		for i := 0; i < 400 && failure == nil; i++ {
			failure = db.Update(func(tx *quiver.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				return b.Put(key(i), value(i, 500))
			})
			if failure == nil {
				acked = i + 1
			}
		}
		if !errors.Is(failure, syscall.ENOMEM) {
			t.Fatalf("after %d commits: %v, want the map error", acked, failure)
		}
		if n := reader.Bucket([]byte("b")); n != nil {
			t.Fatal("the old reader sees a bucket created after it began")
		}
		ok(t, reader.Rollback())
		t.Logf("the map failed at commit %d", acked)
		fail.Store(false)
		// The database was not failed: the same commit now succeeds.
		ok(t, db.Update(func(tx *quiver.Tx) error {
			return tx.Bucket([]byte("b")).Put(key(acked), value(acked, 500))
		}))
		db.reopen()
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			for i := 0; i <= acked; i++ {
				if string(b.Get(key(i))) != string(value(i, 500)) {
					t.Fatalf("key %d lost", i)
				}
			}
			if n := b.Stats().KeyN; n != acked+1 {
				t.Fatalf("%d keys, want %d", n, acked+1)
			}
			return nil
		}))
	})
}
