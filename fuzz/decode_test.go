package fuzz_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
)

// FuzzPageDecode feeds arbitrary bytes to every page decoder: they return
// errors or values, never panic, and whatever verifies re-encodes the same.
func FuzzPageDecode(f *testing.F) {
	leaf := make([]byte, 1024)
	page.PutHeader(leaf, 5, 3, page.FlagLeaf, 2, 0)
	off := page.ElemsStart(2)
	off = page.PutLeafElem(leaf, 0, off, 0, []byte("a"), []byte("1"))
	page.PutLeafElem(leaf, 1, off, page.LeafBucket, []byte("b"), make([]byte, 16))
	page.Seal(leaf)
	f.Add(leaf, uint64(5))
	meta := make([]byte, 1024)
	page.PutMeta(meta, 0, &page.Meta{PageSize: 1024, Freelist: 2, HighWater: 3, Txid: 4})
	f.Add(meta, uint64(0))
	rec := make([]byte, 1024)
	page.PutRecord(rec, 7, 1024, &page.Record{Txid: 4, Freed: []page.Span{{ID: 3, N: 1}}})
	f.Add(rec, uint64(7))
	fl := make([]byte, 1024)
	page.PutFreelist(fl, 2, 4, 1024, func(y func(page.Pgid, uint64)) { y(3, 2); y(9, 1) })
	f.Add(fl, uint64(2))
	f.Fuzz(func(t *testing.T, b []byte, id uint64) {
		pid := page.Pgid(id % 64)
		if m, err := page.DecodeMeta(b, pid); err == nil {
			again := make([]byte, page.MetaEnd)
			page.PutMeta(again, pid, m)
			if !bytes.Equal(again[:page.MetaEnd], b[:page.MetaEnd]) {
				t.Fatalf("meta %+v does not re-encode to its bytes", m)
			}
		}
		_ = page.Verify(b, pid, 1024)
		_, _ = page.DecodeRecord(b, pid)
		_ = page.DecodeFreelist(b, pid, page.Pgid(1<<20), func(page.Pgid, uint64) {})
		if len(b) >= page.HeaderSize {
			for i := 0; i < page.Count(b) && i < 64; i++ {
				page.LeafElem(b, i)
				page.BranchElem(b, i)
			}
			_ = page.Used(b)
		}
	})
}

// FuzzOpenMutated overwrites bytes of a small database file with the fuzz
// input at a chosen offset, then opens it, reads everything, writes and
// checks: an error or a result, never a panic or a hang.
func FuzzOpenMutated(f *testing.F) {
	src := filepath.Join(f.TempDir(), "src")
	db, err := quiver.Open(src, 0o600, &quiver.Options{PageSize: 1024})
	if err != nil {
		f.Fatal(err)
	}
	for c := 0; c < 5; c++ {
		err := db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("b%d", c%2)))
			if err != nil {
				return err
			}
			for i := 0; i < 30; i++ {
				if err := b.Put([]byte(fmt.Sprintf("k%03d", c*30+i)), bytes.Repeat([]byte{byte(i)}, 40)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), []byte{0xff})
	f.Add(uint32(1024+60), []byte{1, 2, 3})
	f.Add(uint32(2048+40), []byte("garbage in the freelist"))
	f.Add(uint32(5*1024+32), []byte{0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, at uint32, patch []byte) {
		img := append([]byte(nil), raw...)
		copy(img[int(at)%len(img):], patch)
		path := filepath.Join(t.TempDir(), "db")
		if err := os.WriteFile(path, img, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan string, 1)
		go func() { done <- exercise(path) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("hang")
		}
	})
}
