package quiver_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/quiverdb/quiver"
)

// image returns a hot backup of a new database holding n keys in bucket
// name, after txs extra empty commits (to give it other txids).
func image(t *testing.T, name string, n, txs int) []byte {
	t.Helper()
	src := openDB(t, defaultFreelist, nil)
	fill(t, src.DB, name, n, 50)
	for i := 0; i < txs; i++ {
		ok(t, src.Update(func(tx *quiver.Tx) error { return nil }))
	}
	var buf bytes.Buffer
	ok(t, src.View(func(tx *quiver.Tx) error { _, err := tx.WriteTo(&buf); return err }))
	return buf.Bytes()
}

func keysOf(t *testing.T, db *quiver.DB, name string) int {
	t.Helper()
	n := -1
	ok(t, db.View(func(tx *quiver.Tx) error {
		if b := tx.Bucket([]byte(name)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	}))
	return n
}

// TestRestore: a database takes the contents of another's backup
// atomically: a reader begun before keeps the old state, transactions
// after see the new one, ids keep growing, writes go on, and a reopen
// holds the new contents; prepare changes the new file before the switch.
func TestRestore(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		for _, extra := range []int{0, 200} { // image txids below and above the database's
			db := openDB(t, ft, nil)
			fill(t, db.DB, "old", 100, 50)
			for i := 0; i < 50; i++ {
				ok(t, db.Update(func(tx *quiver.Tx) error { return nil }))
			}
			img := image(t, "new", 300, extra)
			old, err := db.Begin(false)
			ok(t, err)
			before := old.ID()
			ok(t, db.Restore(bytes.NewReader(img), func(n *quiver.DB) error {
				return n.Update(func(tx *quiver.Tx) error {
					b, err := tx.CreateBucket([]byte("prepared"))
					if err != nil {
						return err
					}
					return b.Put([]byte("k"), []byte("v"))
				})
			}))
			if old.Bucket([]byte("old")) == nil || old.Bucket([]byte("new")) != nil {
				t.Fatal("a reader begun before the restore does not see the old state")
			}
			ok(t, old.Rollback())
			if keysOf(t, db.DB, "old") != -1 || keysOf(t, db.DB, "new") != 300 || keysOf(t, db.DB, "prepared") != 1 {
				t.Fatalf("after the restore: old %d, new %d, prepared %d keys", keysOf(t, db.DB, "old"), keysOf(t, db.DB, "new"), keysOf(t, db.DB, "prepared"))
			}
			ok(t, db.View(func(tx *quiver.Tx) error {
				if tx.ID() <= before {
					return fmt.Errorf("txid %d after the restore, %d before", tx.ID(), before)
				}
				return nil
			}))
			fill(t, db.DB, "after", 10, 10)
			db.mustCheck()
			db.reopen()
			if keysOf(t, db.DB, "new") != 300 || keysOf(t, db.DB, "after") != 10 {
				t.Fatal("the restored contents did not survive a reopen")
			}
			if _, err := os.Stat(db.Path() + ".restore"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the temporary file is left: %v", err)
			}
		}
	})
}

// TestRestoreRefusesBadImages: a damaged, truncated or foreign image, or
// a prepare that fails, leaves the database as it was, with no temporary
// file; damage is reported as corruption.
func TestRestoreRefusesBadImages(t *testing.T) {
	db := openDB(t, defaultFreelist, nil)
	fill(t, db.DB, "old", 100, 50)
	img := image(t, "new", 2000, 0)
	flipped := bytes.Clone(img)
	flipped[len(flipped)/2+100] ^= 0x10 // inside a page of the tree
	cases := []struct {
		name    string
		data    []byte
		prepare func(*quiver.DB) error
		corrupt bool
	}{
		{"bit flip", flipped, nil, true},
		{"truncated", img[:len(img)/2], nil, false},
		{"not a database", bytes.Repeat([]byte("x"), 64<<10), nil, false},
		{"empty", nil, nil, false},
		{"prepare fails", img, func(*quiver.DB) error { return errors.New("no") }, false},
	}
	for _, tc := range cases {
		err := db.Restore(bytes.NewReader(tc.data), tc.prepare)
		if err == nil {
			t.Fatalf("%s: restored", tc.name)
		}
		if tc.corrupt && !quiver.IsCorruption(err) {
			t.Fatalf("%s: %v, want a corruption error", tc.name, err)
		}
		if keysOf(t, db.DB, "old") != 100 || keysOf(t, db.DB, "new") != -1 {
			t.Fatalf("%s: the database changed", tc.name)
		}
		if _, err := os.Stat(db.Path() + ".restore"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the temporary file is left: %v", tc.name, err)
		}
	}
	// An image of another page size is refused (the database keeps its
	// own).
	other := openDB(t, defaultFreelist, &quiver.Options{PageSize: 16384})
	fill(t, other.DB, "new", 10, 10)
	var buf bytes.Buffer
	ok(t, other.View(func(tx *quiver.Tx) error { _, err := tx.WriteTo(&buf); return err }))
	if err := db.Restore(&buf, nil); err == nil {
		t.Fatal("an image of another page size was restored")
	}
	if keysOf(t, db.DB, "old") != 100 {
		t.Fatal("the database changed")
	}
	fill(t, db.DB, "old", 101, 50) // still writable
}
