package quiver_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/fuzz/crash"
)

// TestNewFileDirectorySynced (issue 15, case 7): Open syncs the directory
// of a file it creates before it returns, through the file seam, so that
// a power cut after the first acknowledged commit cannot take the file
// away: no crash image at or after that commit is missing the file.
func TestNewFileDirectorySynced(t *testing.T) {
	rec := &crash.Recorder{}
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, &quiver.Options{OpenFile: rec.OpenFile})
	ok(t, err)
	opened := rec.Len()
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}))
	acked := rec.Len()
	ok(t, db.Close())
	dirSynced := -1
	for i, op := range rec.Ops()[:opened] {
		if op.Kind == crash.SyncDir {
			dirSynced = i
		}
	}
	if dirSynced < 0 {
		t.Fatalf("Open created the file and returned without syncing its directory")
	}
	for v := 0; v < 30; v++ {
		img := rec.Image(acked, rand.New(rand.NewPCG(uint64(v), 7)))
		if img == nil {
			t.Fatalf("variant %d: a power cut after the first acknowledged commit lost the file", v)
		}
	}
	// Before the directory sync the file may be lost (the simulator
	// models it), and nothing was acknowledged then.
	lost := 0
	for v := 0; v < 30; v++ {
		if rec.Image(dirSynced, rand.New(rand.NewPCG(uint64(v), 7))) == nil {
			lost++
		}
	}
	if lost == 0 {
		t.Fatalf("the simulator never lost a file whose directory entry was not synced")
	}
}

// dirSyncCounter counts SyncDir calls per path, through the file seam.
type dirSyncCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

type countedFile struct {
	quiver.File
	path string
	c    *dirSyncCounter
}

func (f countedFile) SyncDir() error {
	f.c.mu.Lock()
	f.c.calls[f.path]++
	f.c.mu.Unlock()
	return f.File.(quiver.DirSyncer).SyncDir()
}

func (c *dirSyncCounter) open(path string, flag int, mode os.FileMode) (quiver.File, error) {
	f, err := quiver.OpenOSFile(path, flag, mode)
	if err != nil {
		return nil, err
	}
	return countedFile{File: f, path: path, c: c}, nil
}

// TestCompactSyncsDirectory: online compaction syncs the directory through
// the new file's seam twice: when the copy is created and after it is
// renamed over the database.
func TestCompactSyncsDirectory(t *testing.T) {
	c := &dirSyncCounter{calls: map[string]int{}}
	db := openDB(t, defaultFreelist, &quiver.Options{OpenFile: c.open})
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}))
	if n := c.calls[db.Path()]; n != 1 {
		t.Fatalf("creating the database synced its directory %d times, want 1", n)
	}
	_, err := db.Compact(context.Background(), nil)
	ok(t, err)
	if n := c.calls[db.Path()+".compact"]; n != 2 {
		t.Fatalf("Compact synced the directory %d times through the copy's file, want 2 (created, renamed)", n)
	}
}
