package quiver_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/quiverdb/quiver"
)

// fileWith builds a database of a few commits at a new path and closes it.
func fileWith(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0600, nil)
	ok(t, err)
	fill(t, db, "b", 200, 100)
	ok(t, db.Close())
	return path
}

// TestOpenSyncFailure: a writable open of an existing file syncs the file
// (beside the open's reads); when that sync fails, Open returns the
// failure, and a later open with a working disk finds every commit.
func TestOpenSyncFailure(t *testing.T) {
	path := fileWith(t)
	var fail atomic.Bool
	var syncs atomic.Int64
	opts := failingSyncs(&fail, &syncs)
	fail.Store(true)
	if db, err := quiver.Open(path, 0600, opts); !errors.Is(err, syscall.EIO) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("Open with a failing sync returned %v, want EIO", err)
	}
	if syncs.Load() == 0 {
		t.Fatal("a writable open of an existing file made no sync")
	}
	fail.Store(false)
	db, err := quiver.Open(path, 0600, opts)
	ok(t, err)
	defer db.Close()
	ok(t, db.View(func(tx *quiver.Tx) error {
		if n := tx.Bucket([]byte("b")).Stats().KeyN; n != 200 {
			t.Fatalf("%d keys after the failed open, want 200", n)
		}
		return nil
	}))
}

// endsEarly reads as if the file ended at end bytes, whatever its size.
type endsEarly struct {
	quiver.File
	end int64
}

func (f endsEarly) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.end {
		n, _ := f.File.ReadAt(p[:max(0, f.end-off)], off)
		return n, io.EOF
	}
	return f.File.ReadAt(p, off)
}

// TestOpenShortRead: pages that the metas reach but a read finds past the
// end of the file (a file truncated under the open) make Open fail with a
// corruption error that says so, not a bare EOF.
func TestOpenShortRead(t *testing.T) {
	path := fileWith(t)
	opts := &quiver.Options{OpenFile: func(path string, flag int, mode os.FileMode) (quiver.File, error) {
		f, err := quiver.OpenOSFile(path, flag, mode)
		if err != nil {
			return nil, err
		}
		return endsEarly{File: f, end: 2 * 4096}, nil
	}}
	db, err := quiver.Open(path, 0600, opts)
	if err == nil {
		db.Close()
		t.Fatal("Open read pages past the file's end without an error")
	}
	if !quiver.IsCorruption(err) || !strings.Contains(err.Error(), "beyond the end of the file") {
		t.Fatalf("Open returned %v, want corruption of a page beyond the end of the file", err)
	}
}
