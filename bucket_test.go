package quiver_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/quiverdb/quiver"
)

func TestBucketPutGetDelete(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("b"))
			if err != nil {
				return err
			}
			if !b.Writable() || b.Tx() != tx {
				t.Error("bucket not writable or wrong tx")
			}
			ok(t, b.Put([]byte("a"), []byte("1")))
			ok(t, b.Put([]byte("b"), []byte{}))
			ok(t, b.Put([]byte("a"), []byte("2"))) // overwrite
			if v := b.Get([]byte("a")); string(v) != "2" {
				t.Errorf("a = %q in the writing tx", v)
			}
			if v := b.Get([]byte("b")); v == nil || len(v) != 0 {
				t.Errorf("empty value read back as %v", v)
			}
			if v := b.Get([]byte("missing")); v != nil {
				t.Errorf("missing key = %q", v)
			}
			ok(t, b.Delete([]byte("missing"))) // not an error
			return nil
		}))
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			if b.Writable() {
				t.Error("bucket writable in a read tx")
			}
			if v := b.Get([]byte("a")); string(v) != "2" {
				t.Errorf("a = %q", v)
			}
			if v := b.Get([]byte("b")); v == nil || len(v) != 0 {
				t.Errorf("empty value read back as %v", v)
			}
			return nil
		}))
		ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Delete([]byte("a")) }))
		ok(t, db.View(func(tx *quiver.Tx) error {
			if v := tx.Bucket([]byte("b")).Get([]byte("a")); v != nil {
				t.Errorf("deleted key = %q", v)
			}
			return nil
		}))
	})
}

func TestBucketErrors(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		ok(t, err)
		_, err = b.CreateBucket([]byte("sub"))
		ok(t, err)
		ok(t, b.Put([]byte("key"), []byte("v")))
		cases := []struct {
			name string
			err  error
			want error
		}{
			{"put empty key", b.Put(nil, []byte("v")), quiver.ErrKeyRequired},
			{"put huge key", b.Put(make([]byte, quiver.MaxKeySize+1), nil), quiver.ErrKeyTooLarge},
			{"put on a bucket", b.Put([]byte("sub"), []byte("v")), quiver.ErrIncompatibleValue},
			{"delete a bucket", b.Delete([]byte("sub")), quiver.ErrIncompatibleValue},
			{"create existing", second(b.CreateBucket([]byte("sub"))), quiver.ErrBucketExists},
			{"create over key", second(b.CreateBucket([]byte("key"))), quiver.ErrIncompatibleValue},
			{"create empty name", second(b.CreateBucket(nil)), quiver.ErrBucketNameRequired},
			{"create-if empty name", second(b.CreateBucketIfNotExists(nil)), quiver.ErrBucketNameRequired},
			{"create-if over key", second(b.CreateBucketIfNotExists([]byte("key"))), quiver.ErrIncompatibleValue},
			{"delete missing bucket", b.DeleteBucket([]byte("nope")), quiver.ErrBucketNotFound},
			{"delete bucket over key", b.DeleteBucket([]byte("key")), quiver.ErrIncompatibleValue},
			{"delete bucket no name", b.DeleteBucket(nil), quiver.ErrBucketNotFound},
			{"tx create existing", second(tx.CreateBucket([]byte("b"))), quiver.ErrBucketExists},
			{"tx delete missing", tx.DeleteBucket([]byte("zz")), quiver.ErrBucketNotFound},
		}
		for _, c := range cases {
			if !errors.Is(c.err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
			}
		}
		if b.Get([]byte("sub")) != nil {
			t.Error("Get of a bucket name returned a value")
		}
		if b.Bucket([]byte("key")) != nil {
			t.Error("Bucket of a key name returned a bucket")
		}
		return nil
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		for name, err := range map[string]error{
			"put":           b.Put([]byte("k"), []byte("v")),
			"delete":        b.Delete([]byte("key")),
			"create":        second(b.CreateBucket([]byte("x"))),
			"create-if":     second(b.CreateBucketIfNotExists([]byte("x"))),
			"delete bucket": b.DeleteBucket([]byte("sub")),
			"next sequence": second(b.NextSequence()),
			"set sequence":  b.SetSequence(5),
			"tx create":     second(tx.CreateBucket([]byte("x"))),
			"cursor delete": func() error { c := b.Cursor(); c.First(); return c.Delete() }(),
		} {
			if !errors.Is(err, quiver.ErrTxNotWritable) {
				t.Errorf("read-only %s: %v", name, err)
			}
		}
		return nil
	}))
}

func TestValueTooLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 2 GiB of address space")
	}
	db := openDB(t, quiver.FreelistArray, nil)
	big := make([]byte, quiver.MaxValueSize+1)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		ok(t, err)
		if err := b.Put([]byte("k"), big); !errors.Is(err, quiver.ErrValueTooLarge) {
			t.Errorf("huge value: %v", err)
		}
		return nil
	}))
}

func second[T any](_ T, err error) error { return err }

func TestNestedBuckets(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		const depth = 20
		path := func(d int) []byte { return []byte(fmt.Sprintf("level-%02d", d)) }
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket(path(0))
			if err != nil {
				return err
			}
			for d := 1; d < depth; d++ {
				ok(t, b.Put([]byte("here"), path(d-1)))
				if b, err = b.CreateBucket(path(d)); err != nil {
					return err
				}
			}
			return b.Put([]byte("bottom"), []byte("yes"))
		}))
		db.reopen()
		walk := func(tx *quiver.Tx) *quiver.Bucket {
			b := tx.Bucket(path(0))
			for d := 1; d < depth && b != nil; d++ {
				if got := b.Get([]byte("here")); !bytes.Equal(got, path(d-1)) {
					t.Errorf("level %d here = %q", d-1, got)
				}
				b = b.Bucket(path(d))
			}
			return b
		}
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := walk(tx)
			if b == nil || string(b.Get([]byte("bottom"))) != "yes" {
				t.Fatal("bottom bucket lost")
			}
			return nil
		}))
		// Write deep down in a later transaction, then delete a middle
		// level with everything below it.
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := walk(tx)
			for i := 0; i < 2000; i++ {
				if err := b.Put(key(i), value(i, 64)); err != nil {
					return err
				}
			}
			return nil
		}))
		db.mustCheck()
		before := db.Stats().FreePageN + db.Stats().PendingPageN
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket(path(0))
			for d := 1; d < 5; d++ {
				b = b.Bucket(path(d))
			}
			return b.DeleteBucket(path(5))
		}))
		after := db.Stats().FreePageN + db.Stats().PendingPageN
		if after <= before {
			t.Errorf("deleting a deep bucket freed nothing (%d -> %d)", before, after)
		}
		db.reopen()
		ok(t, db.View(func(tx *quiver.Tx) error {
			b := tx.Bucket(path(0))
			for d := 1; d < 5; d++ {
				b = b.Bucket(path(d))
			}
			if b.Bucket(path(5)) != nil {
				t.Error("deleted bucket still there")
			}
			if !bytes.Equal(b.Get([]byte("here")), path(4)) {
				t.Error("sibling key of the deleted bucket lost")
			}
			return nil
		}))
	})
}

func TestBucketCreatedAndDeletedInOneTx(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	fill(t, db.DB, "keep", 100, 10)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("tmp"))
		ok(t, err)
		for i := 0; i < 3000; i++ {
			ok(t, b.Put(key(i), value(i, 50)))
		}
		sub, err := b.CreateBucket([]byte("sub"))
		ok(t, err)
		ok(t, sub.Put([]byte("x"), []byte("y")))
		return tx.DeleteBucket([]byte("tmp"))
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		if tx.Bucket([]byte("tmp")) != nil {
			t.Error("bucket deleted in its creating tx exists")
		}
		return nil
	}))
	// Recreate and delete the committed bucket in one tx.
	ok(t, db.Update(func(tx *quiver.Tx) error {
		ok(t, tx.DeleteBucket([]byte("keep")))
		b, err := tx.CreateBucket([]byte("keep"))
		ok(t, err)
		return b.Put([]byte("new"), []byte("1"))
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("keep"))
		if b.Get(key(1)) != nil || string(b.Get([]byte("new"))) != "1" {
			t.Error("recreated bucket holds old keys or lost the new one")
		}
		return nil
	}))
}

func TestSequence(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("b"))
			ok(t, err)
			for want := uint64(1); want <= 3; want++ {
				got, err := b.NextSequence()
				ok(t, err)
				if got != want {
					t.Errorf("NextSequence = %d, want %d", got, want)
				}
			}
			sub, err := b.CreateBucket([]byte("sub"))
			ok(t, err)
			return sub.SetSequence(1000)
		}))
		db.reopen()
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("b"))
			if b.Sequence() != 3 || b.Bucket([]byte("sub")).Sequence() != 1000 {
				t.Errorf("sequences %d %d after reopen", b.Sequence(), b.Bucket([]byte("sub")).Sequence())
			}
			ok(t, b.SetSequence(^uint64(0)))
			if _, err := b.NextSequence(); !errors.Is(err, quiver.ErrSequenceOverflow) {
				t.Errorf("NextSequence at max: %v", err)
			}
			return nil
		}))
		// A rolled back sequence change is not kept.
		tx, err := db.Begin(true)
		ok(t, err)
		_, _ = tx.Bucket([]byte("b")).NextSequence()
		ok(t, tx.Rollback())
		ok(t, db.View(func(tx *quiver.Tx) error {
			if s := tx.Bucket([]byte("b")).Sequence(); s != ^uint64(0) {
				t.Errorf("sequence %d after rollback", s)
			}
			return nil
		}))
	})
}

func TestForEach(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		ok(t, err)
		ok(t, b.Put([]byte("c"), []byte("3")))
		ok(t, b.Put([]byte("a"), []byte("1")))
		_, err = b.CreateBucket([]byte("b"))
		ok(t, err)
		_, err = tx.CreateBucket([]byte("a-bucket"))
		return err
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		var got []string
		ok(t, tx.Bucket([]byte("b")).ForEach(func(k, v []byte) error {
			got = append(got, fmt.Sprintf("%s=%v", k, v))
			return nil
		}))
		if fmt.Sprint(got) != "[a=[49] b=[] c=[51]]" {
			t.Errorf("ForEach saw %v", got)
		}
		var buckets []string
		ok(t, tx.Bucket([]byte("b")).ForEachBucket(func(k []byte) error { buckets = append(buckets, string(k)); return nil }))
		if fmt.Sprint(buckets) != "[b]" {
			t.Errorf("ForEachBucket saw %v", buckets)
		}
		var top []string
		ok(t, tx.ForEach(func(name []byte, b *quiver.Bucket) error { top = append(top, string(name)); return nil }))
		if fmt.Sprint(top) != "[a-bucket b]" {
			t.Errorf("tx.ForEach saw %v", top)
		}
		stop := errors.New("stop")
		n := 0
		if err := tx.Bucket([]byte("b")).ForEach(func(k, v []byte) error { n++; return stop }); err != stop || n != 1 {
			t.Errorf("ForEach did not stop on error: %v after %d", err, n)
		}
		return nil
	}))
}

func TestBucketStats(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	fill(t, db.DB, "b", 10000, 100)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		_, err := tx.Bucket([]byte("b")).CreateBucket([]byte("empty"))
		return err
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		s := tx.Bucket([]byte("b")).Stats()
		if s.KeyN != 10001 || s.BucketN != 2 || s.EmptyBucketN != 1 || s.Depth < 2 || s.LeafPageN < 100 || s.BranchPageN < 1 {
			t.Errorf("stats %+v", s)
		}
		if s.LeafInuse > s.LeafAlloc || s.LeafInuse < 10000*100 {
			t.Errorf("leaf in use %d of %d", s.LeafInuse, s.LeafAlloc)
		}
		return nil
	}))
}

func TestFillPercent(t *testing.T) {
	// Sequential keys at FillPercent 1 pack pages nearly full; at the
	// default 0.5 they are about half full.
	leaves := map[float64]int{}
	for _, fp := range []float64{0.5, 1.0} {
		db := openDB(t, quiver.FreelistArray, nil)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("b"))
			ok(t, err)
			b.FillPercent = fp
			for i := 0; i < 20000; i++ {
				ok(t, b.Put(key(i), value(i, 100)))
			}
			return nil
		}))
		ok(t, db.View(func(tx *quiver.Tx) error { leaves[fp] = tx.Bucket([]byte("b")).Stats().LeafPageN; return nil }))
	}
	if float64(leaves[0.5]) < 1.7*float64(leaves[1.0]) {
		t.Errorf("leaves at fill 0.5: %d, at 1.0: %d", leaves[0.5], leaves[1.0])
	}
}

// TestLargeElementsPairUp checks that leaves of elements too large for
// two to stay under FillPercent still take two when two fit a page (as
// bbolt's do), and take one when two do not: 1000 keys of 1000- and
// 1900-byte values need about 500 leaves, of 2100-byte values 1000,
// never an overflow page.
func TestLargeElementsPairUp(t *testing.T) {
	for _, tc := range []struct{ size, maxLeaves int }{{1000, 510}, {1900, 510}, {2100, 1000}} {
		db := openDB(t, quiver.FreelistArray, nil)
		ok(t, db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("b"))
			ok(t, err)
			for i := 0; i < 1000; i++ {
				ok(t, b.Put(key(i), value(i, tc.size)))
			}
			return nil
		}))
		ok(t, db.View(func(tx *quiver.Tx) error {
			s := tx.Bucket([]byte("b")).Stats()
			if s.LeafPageN > tc.maxLeaves || s.LeafPageN < tc.maxLeaves/2 || s.LeafOverflowN != 0 {
				t.Errorf("%d-byte values: %d leaves, %d overflow pages; want at most %d leaves and no overflow",
					tc.size, s.LeafPageN, s.LeafOverflowN, tc.maxLeaves)
			}
			return nil
		}))
	}
}
