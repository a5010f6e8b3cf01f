package quiver_test

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/quiverdb/quiver"
)

// churn loads keys, deletes a random half, then keeps writing (puts of new
// keys, overwrites with values of varied sizes, deletes), and returns the
// file size. The database is checked when the test ends.
func churn(t *testing.T, ft quiver.FreelistType, seed uint64, keys int) int64 {
	r := newRand(seed)
	db := openDB(t, ft, &quiver.Options{NoSync: true})
	k := make([]byte, 8)
	put := func(b *quiver.Bucket, i int, size int) {
		binary.BigEndian.PutUint64(k, uint64(i)*0x9e3779b97f4a7c15)
		ok(t, b.Put(k, make([]byte, size)))
	}
	for start := 0; start < keys; start += 1000 {
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			ok(t, err)
			for i := start; i < start+1000; i++ {
				put(b, i, 100)
			}
			return nil
		}))
	}
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i := 0; i < keys; i++ {
			if r.IntN(2) == 0 {
				binary.BigEndian.PutUint64(k, uint64(i)*0x9e3779b97f4a7c15)
				ok(t, b.Delete(k))
			}
		}
		return nil
	}))
	for round := 0; round < 200; round++ {
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			for j := 0; j < 200; j++ {
				i := r.IntN(keys * 2)
				switch r.IntN(4) {
				case 0:
					binary.BigEndian.PutUint64(k, uint64(i)*0x9e3779b97f4a7c15)
					ok(t, b.Delete(k))
				case 1:
					put(b, i, 2000+r.IntN(20000)) // overflow pages
				default:
					put(b, i, r.IntN(300))
				}
			}
			return nil
		}))
	}
	// The high-water mark: the file size less the preallocated tail.
	var size int64
	ok(t, db.View(func(tx *quiver.Tx) error { size = tx.Size(); return nil }))
	st, err := os.Stat(db.Path())
	ok(t, err)
	if st.Size() < size {
		t.Fatalf("file %d bytes, shorter than its %d bytes of pages", st.Size(), size)
	}
	return size
}

// TestChurnFileSize runs the same churn with each freelist: the hashmap's
// preference for low page ids must keep the file within 5% of the array's
// first fit.
func TestChurnFileSize(t *testing.T) {
	keys := 50000
	if testing.Short() {
		keys = 10000
	}
	seed := testSeed(t)
	sizes := map[quiver.FreelistType]int64{}
	for _, ft := range quiver.FreelistTypes() {
		t.Run(string(ft), func(t *testing.T) { sizes[ft] = churn(t, ft, seed, keys) })
	}
	t.Logf("file sizes: %v", sizes)
	a, h := sizes[quiver.FreelistArray], sizes[quiver.FreelistHashmap]
	if float64(h) > 1.05*float64(a) {
		t.Errorf("hashmap file %d bytes, array %d: more than 5%% larger", h, a)
	}
}
