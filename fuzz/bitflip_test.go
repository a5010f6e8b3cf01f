package fuzz_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

// TestBitFlips flips random bits in copies of a database file and requires,
// for each copy, no panic and no hang: either Open fails with an error, or
// the database opens and every read, a write and a Check end with results
// or errors (a flip in unused space may leave everything clean).
func TestBitFlips(t *testing.T) {
	copies := 10000
	if testing.Short() {
		copies = 1000
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	db, err := quiver.Open(src, 0o600, &quiver.Options{PageSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 12; c++ {
		err := db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("b%d", c%3)))
			if err != nil {
				return err
			}
			n, err := b.CreateBucketIfNotExists([]byte("nested"))
			if err != nil {
				return err
			}
			for i := 0; i < 40; i++ {
				v := fmt.Sprintf("value-%d-%d", c, i)
				if i == 7 {
					v = strings.Repeat("L", 3000)
				}
				if err := b.Put([]byte(fmt.Sprintf("k%04d", c*40+i)), []byte(v)); err != nil {
					return err
				}
				if err := n.Put([]byte(fmt.Sprintf("n%03d", i)), []byte(v)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	used := len(raw)
	r := rand.New(rand.NewPCG(11, 13))
	path := filepath.Join(dir, "copy")
	opened, reported := 0, 0
	for i := 0; i < copies; i++ {
		img := append([]byte(nil), raw...)
		for f := 0; f < 1+r.IntN(4); f++ {
			bit := r.IntN(used * 8)
			img[bit/8] ^= 1 << (bit % 8)
		}
		if err := os.WriteFile(path, img, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan string, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					done <- fmt.Sprintf("panic: %v\n%s", p, debug.Stack())
				}
			}()
			done <- exercise(path)
		}()
		select {
		case res := <-done:
			if strings.HasPrefix(res, "panic") || strings.HasPrefix(res, "not a corruption") {
				t.Fatalf("copy %d: %s", i, res)
			}
			if res != "open failed" {
				opened++
			}
			if res == "reported" || res == "open failed" {
				reported++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("copy %d: hang", i)
		}
	}
	t.Logf("%d copies: %d opened, %d with an error or a Check report", copies, opened, reported)
}

// exercise opens path and reads, writes and checks everything; it returns
// "open failed", "reported" (some error or Check problem) or "clean".
func exercise(path string) string {
	db, err := quiver.Open(path, 0o600, &quiver.Options{Timeout: time.Second})
	if err != nil {
		return "open failed"
	}
	defer db.Close()
	problems := 0
	var notCorrupt error // a Check problem that is not a CorruptionError
	err = db.View(func(tx *quiver.Tx) error {
		var walk func(b *quiver.Bucket, depth int)
		walk = func(b *quiver.Bucket, depth int) {
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v == nil && depth < 4 {
					if child := b.Bucket(k); child != nil {
						walk(child, depth+1)
					}
				}
				_ = b.Get(k)
			}
			for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			}
		}
		_ = tx.ForEach(func(name []byte, b *quiver.Bucket) error { walk(b, 0); return nil })
		for err := range tx.Check() {
			if !errors.Is(err, quiver.ErrCorrupt) && notCorrupt == nil {
				notCorrupt = err
			}
			problems++
		}
		return nil
	})
	if err != nil {
		problems++
	}
	err = db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b1"))
		if err != nil {
			return err
		}
		for i := 0; i < 30; i++ {
			if err := b.Put([]byte(fmt.Sprintf("k%04d", i*13)), []byte("new")); err != nil {
				return err
			}
		}
		return b.Delete([]byte("k0005"))
	})
	if err != nil {
		problems++
	}
	if notCorrupt != nil {
		return "not a corruption: " + notCorrupt.Error()
	}
	if problems > 0 {
		return "reported"
	}
	return "clean"
}
