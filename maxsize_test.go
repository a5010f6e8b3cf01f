package quiver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestMaxSize fills a database capped by Options.MaxSize: the commit that
// needs more fails with ErrMaxSizeReached and changes nothing, the file
// never passes the cap, what was committed before stays, and the database
// goes on taking commits that fit.
func TestMaxSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	const limit = 1 << 20
	db, err := Open(path, 0o600, &Options{MaxSize: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(i int) error {
		return db.Update(func(tx *Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte{byte(i >> 8), byte(i)}, make([]byte, 10000))
		})
	}
	n := 0
	for ; n < 1000; n++ {
		if err = put(n); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrMaxSizeReached) {
		t.Fatalf("after %d puts: %v, want ErrMaxSizeReached", n, err)
	}
	if n < 50 {
		t.Fatalf("only %d puts of 10 KB fit in 1 MiB", n)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() > limit {
		t.Fatalf("file size %d, cap %d (%v)", fi.Size(), limit, err)
	}
	check := func(want int) {
		t.Helper()
		if err := db.View(func(tx *Tx) error {
			if got := tx.Bucket([]byte("b")).Stats().KeyN; got != want {
				t.Errorf("%d keys, want %d", got, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	check(n)
	// Room made by a delete is used again; the file does not pass the cap.
	if err := db.Update(func(tx *Tx) error { return tx.Bucket([]byte("b")).Delete([]byte{0, 0}) }); err != nil {
		t.Fatal(err)
	}
	if err := put(0); err != nil {
		t.Fatalf("a put into freed room: %v", err)
	}
	check(n)
	// Lifting the cap lets the file grow.
	db.MaxSize = 0
	if err := put(n); err != nil {
		t.Fatal(err)
	}
	check(n + 1)
}
