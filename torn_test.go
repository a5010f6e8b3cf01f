package quiver_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
)

// tornFixture commits a state with "before", then a last commit adding
// "after", closes the database and returns its bytes and the newest meta.
func tornFixture(t *testing.T) (string, []byte, *page.Meta) {
	db := openDB(t, quiver.FreelistArray, nil)
	fill(t, db.DB, "b", 3000, 50)
	ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("before"), []byte("1")) }))
	ok(t, db.Update(func(tx *quiver.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("after"), []byte("2")) }))
	path := db.Path()
	ok(t, db.DB.Close())
	db.DB = nil
	raw, err := os.ReadFile(path)
	ok(t, err)
	var newest *page.Meta
	for slot := 0; slot < 2; slot++ {
		m, err := page.DecodeMeta(raw[slot*4096:], page.Pgid(slot))
		ok(t, err)
		if newest == nil || m.Txid > newest.Txid {
			newest = m
		}
	}
	return path, raw, newest
}

func openAndGet(t *testing.T, path string) (before, after bool) {
	t.Helper()
	db, err := quiver.Open(path, 0o600, nil)
	ok(t, err)
	defer db.Close()
	mustCheck(t, db)
	ok(t, db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		before, after = b.Get([]byte("before")) != nil, b.Get([]byte("after")) != nil
		return nil
	}))
	return
}

// TestTornCommitFallsBack damages each page the last commit wrote, as a
// power cut before its sync could: open must fall back to the previous
// commit, complete and consistent.
func TestTornCommitFallsBack(t *testing.T) {
	path, raw, m := tornFixture(t)
	if before, after := openAndGet(t, path); !before || !after {
		t.Fatal("intact file lost a commit")
	}
	rec, err := page.DecodeRecord(raw[int(m.Record)*4096:], m.Record)
	ok(t, err)
	if len(rec.Written) < 2 {
		t.Fatalf("record lists %d spans", len(rec.Written))
	}
	for i, w := range append(rec.Written, page.Written{ID: m.Record}) {
		damaged := append([]byte(nil), raw...)
		damaged[int(w.ID)*4096+100] ^= 0xff
		ok(t, os.WriteFile(path, damaged, 0o600))
		before, after := openAndGet(t, path)
		if !before || after {
			t.Fatalf("damaged span %d (page %d): before=%v after=%v, want the previous commit", i, w.ID, before, after)
		}
	}
	// A torn meta of the last commit: the previous one wins.
	damaged := append([]byte(nil), raw...)
	damaged[int(m.Txid%2)*4096+50] ^= 0xff
	ok(t, os.WriteFile(path, damaged, 0o600))
	if before, after := openAndGet(t, path); !before || after {
		t.Fatalf("torn meta: before=%v after=%v", before, after)
	}
}

// TestTornCommitWithoutFallback: when the previous meta is damaged too,
// a newest meta whose commit record fails is an error, not a silent open.
func TestTornCommitWithoutFallback(t *testing.T) {
	path, raw, m := tornFixture(t)
	rec, err := page.DecodeRecord(raw[int(m.Record)*4096:], m.Record)
	ok(t, err)
	raw[int(rec.Written[0].ID)*4096+100] ^= 0xff
	raw[int(1-m.Txid%2)*4096+50] ^= 0xff
	ok(t, os.WriteFile(path, raw, 0o600))
	_, err = quiver.Open(path, 0o600, nil)
	var ce *quiver.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("open: %v, want a *CorruptionError", err)
	}
}

// TestTruncatedBelowMetas cuts a database short of its second meta page:
// open reports corruption of page 1, saying the file is too small (bbolt's
// words, which bbolt's programs look for), rather than a foreign file.
func TestTruncatedBelowMetas(t *testing.T) {
	path, raw, _ := tornFixture(t)
	for _, size := range []int{4096, 4096 + 2000} {
		ok(t, os.WriteFile(path, raw[:size], 0o600))
		_, err := quiver.Open(path, 0o600, nil)
		var ce *quiver.CorruptionError
		if !errors.As(err, &ce) || ce.Pgid != 1 || !strings.Contains(err.Error(), "file size too small") {
			t.Errorf("%d bytes: open: %v, want corruption of page 1, file size too small", size, err)
		}
	}
}
