package quiver_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
)

// testdata/format1.db.gz is a database written by a build of format 1
// (before the slots of format 2), 1 KB pages: bucket "keys" holds
// key-000000 … key-002999, each with value-N; its bucket "nested" holds
// keys 0 … 49, key i with 100·i zero bytes (the larger on overflow pages).

// openFormat1 writes the format 1 file to a new path and returns it.
func openFormat1(t *testing.T) string {
	t.Helper()
	f, err := os.Open("testdata/format1.db.gz")
	ok(t, err)
	defer f.Close()
	z, err := gzip.NewReader(f)
	ok(t, err)
	raw, err := io.ReadAll(z)
	ok(t, err)
	path := filepath.Join(t.TempDir(), "format1.db")
	ok(t, os.WriteFile(path, raw, 0o600))
	return path
}

// checkFormat1 reads every key of the format 1 data set (with changes:
// key-000000 … key-000099 deleted, added-N for N < n) and runs Check.
func checkFormat1(t *testing.T, db *quiver.DB, added int) {
	t.Helper()
	ok(t, db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("keys"))
		for i := 0; i < 3000; i++ {
			v := b.Get([]byte(fmt.Sprintf("key-%06d", i)))
			if deleted := i < 100 && added > 0; deleted != (v == nil) || (v != nil && string(v) != fmt.Sprintf("value-%d", i)) {
				t.Fatalf("key-%06d: %q", i, v)
			}
		}
		for i := 0; i < added; i++ {
			if v := b.Get([]byte(fmt.Sprintf("added-%d", i))); string(v) != "new" {
				t.Fatalf("added-%d: %q", i, v)
			}
		}
		n := b.Bucket([]byte("nested"))
		for i := 0; i < 50; i++ {
			if v := n.Get([]byte{byte(i)}); len(v) != 100*i || !bytes.Equal(v, make([]byte, 100*i)) {
				t.Fatalf("nested key %d: %d bytes", i, len(v))
			}
		}
		if k, _ := b.Cursor().Seek([]byte("key-0010")); !bytes.Equal(k, []byte("key-001000")) {
			t.Fatalf("Seek(key-0010) = %q", k)
		}
		for err := range tx.Check() {
			t.Errorf("check: %v", err)
		}
		return nil
	}))
}

// pageKinds counts the file's pages by their header's flags.
func pageKinds(t *testing.T, path string) map[uint16]int {
	raw, err := os.ReadFile(path)
	ok(t, err)
	kinds := map[uint16]int{}
	for off := 2 * 1024; off+1024 <= len(raw); off += 1024 {
		kinds[page.Flags(raw[off:])]++
	}
	return kinds
}

// A file of format 1 reads as it is, and commits upgrade it: new pages get
// slots, the old pages that no commit rewrote stay and still read.
func TestOpenFormat1(t *testing.T) {
	path := openFormat1(t)
	before := pageKinds(t, path)
	if before[page.FlagLeaf] == 0 || before[page.FlagBranch] == 0 || before[page.FlagLeafPrefixed] != 0 {
		t.Fatalf("the format 1 file has pages %v", before)
	}
	db, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
	ok(t, err)
	checkFormat1(t, db, 0)
	ok(t, db.Close())

	db, err = quiver.Open(path, 0o600, nil)
	ok(t, err)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("keys"))
		for i := 0; i < 100; i++ {
			if err := b.Delete([]byte(fmt.Sprintf("key-%06d", i))); err != nil {
				return err
			}
		}
		for i := 0; i < 20; i++ {
			if err := b.Put([]byte(fmt.Sprintf("added-%d", i)), []byte("new")); err != nil {
				return err
			}
		}
		return nil
	}))
	checkFormat1(t, db, 20)
	ok(t, db.Close())

	after := pageKinds(t, path)
	if after[page.FlagLeaf] == 0 || after[page.FlagLeafPrefixed] == 0 || after[page.FlagBranchPrefixed] == 0 {
		t.Fatalf("after a commit the file has pages %v: want format 1 leaves beside new ones", after)
	}
	raw, err := os.ReadFile(path)
	ok(t, err)
	versions := []uint32{binary.LittleEndian.Uint32(raw[36:]), binary.LittleEndian.Uint32(raw[1024+36:])}
	if versions[0] != page.Version && versions[1] != page.Version {
		t.Fatalf("meta versions %v after a commit, want one of %d", versions, page.Version)
	}
	db, err = quiver.Open(path, 0o600, nil)
	ok(t, err)
	defer db.Close()
	checkFormat1(t, db, 20)
}
