package quiver_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/quiverdb/quiver"
)

// TestLargeNodeTakesFreeRun: in a file whose free space is one run of
// several pages and many single pages, a commit that writes a large value
// and many small leaves puts the value in the run and the leaves in the
// single pages; the file does not grow. (Allocating the small leaves in
// groups first would take the run, and send the value to the end of the
// file.)
func TestLargeNodeTakesFreeRun(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, &quiver.Options{NoSync: true})
		key := func(i int) []byte { return []byte(fmt.Sprintf("k%05d", i)) }
		small := bytes.Repeat([]byte("s"), 1200) // three a leaf
		big := bytes.Repeat([]byte("B"), 10*4096)
		const n = 3000
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("b"))
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				if err := b.Put(key(i), small); err != nil {
					return err
				}
			}
			return b.Put([]byte("k01500x"), big)
		}))
		// Update keys of every tenth leaf: their old pages become free
		// single pages. Deleting the large value frees its run.
		update := func(tx *quiver.Tx, from int) error {
			b := tx.Bucket([]byte("b"))
			for i := from; i < n; i += 30 {
				if err := b.Put(key(i), small); err != nil {
					return err
				}
			}
			return nil
		}
		ok(t, db.Update(func(tx *quiver.Tx) error { return update(tx, 0) }))
		ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Delete([]byte("k01500x")) }))
		ok(t, db.Update(func(tx *quiver.Tx) error { return update(tx, 10) })) // releases the frees before
		ok(t, db.Update(func(tx *quiver.Tx) error { return nil }))
		size := func() (n int64) {
			ok(t, db.View(func(tx *quiver.Tx) error { n = tx.Size(); return nil }))
			return n
		}
		before := size()
		free := db.Stats().FreePageN
		ok(t, db.Update(func(tx *quiver.Tx) error {
			if err := update(tx, 20); err != nil {
				return err
			}
			return tx.Bucket([]byte("b")).Put([]byte("k02500x"), big)
		}))
		if after := size(); after != before {
			t.Fatalf("the file's data grew from %d to %d bytes with %d pages free", before, after, free)
		}
	})
}
