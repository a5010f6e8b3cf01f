package quiver_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/quiverdb/quiver"
)

// TestLargeCommitReleasesBuffer (issue 15, case 6): one commit of a huge
// value must not pin a buffer of its size (or twice it) for the life of
// the database: after a few small commits the heap is back near where it
// was.
func TestLargeCommitReleasesBuffer(t *testing.T) {
	size := 256 << 20
	if testing.Short() {
		size = 64 << 20
	}
	db := openDB(t, defaultFreelist, &quiver.Options{NoSync: true})
	small := func(i int) {
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(fmt.Sprintf("small%d", i)), make([]byte, 100))
		}))
	}
	small(0)
	before := heapInuse()
	func() {
		big := make([]byte, size)
		big[0], big[len(big)-1] = 1, 2
		ok(t, db.Update(func(tx *quiver.Tx) error {
			return tx.Bucket([]byte("b")).Put([]byte("big"), big)
		}))
	}()
	for i := 1; i <= 4; i++ {
		small(i)
	}
	after := heapInuse()
	t.Logf("heap in use: %d MiB before, %d MiB after a %d MiB commit and 4 small ones", before>>20, after>>20, size>>20)
	if after > before+uint64(size)/4 {
		t.Fatalf("the heap grew by %d MiB after a %d MiB commit: its buffers are kept", (after-before)>>20, size>>20)
	}
	ok(t, db.View(func(tx *quiver.Tx) error {
		v := tx.Bucket([]byte("b")).Get([]byte("big"))
		if len(v) != size || v[0] != 1 || v[len(v)-1] != 2 {
			return fmt.Errorf("the big value reads back wrong (%d bytes)", len(v))
		}
		return nil
	}))
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
