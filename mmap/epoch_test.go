package mmap_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quiverdb/quiver/mmap"
)

func TestEpochReleaseUnmapsOnLast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("hello, mapping"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Map far more than the file: a reservation.
	data, err := mmap.Map(f.Fd(), 1<<30, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := mmap.NewEpoch(data)
	if !e.Acquire() {
		t.Fatal("Acquire of a live epoch failed")
	}
	if string(e.Data()[:5]) != "hello" {
		t.Fatalf("mapped %q", e.Data()[:5])
	}
	if err := e.Release(); err != nil || e.Data() == nil {
		t.Fatalf("first release: %v, data %v", err, e.Data() == nil)
	}
	if err := e.Release(); err != nil || e.Data() != nil {
		t.Fatalf("last release: %v, data still mapped: %v", err, e.Data() != nil)
	}
	if e.Acquire() {
		t.Fatal("Acquire of a released epoch succeeded")
	}
}

func TestLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	a, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := mmap.Lock(a.Fd(), true, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := mmap.Lock(b.Fd(), false, 30*time.Millisecond); err != mmap.ErrTimeout {
		t.Fatalf("shared lock beside an exclusive one: %v", err)
	}
	if err := mmap.Unlock(a.Fd()); err != nil {
		t.Fatal(err)
	}
	if err := mmap.Lock(b.Fd(), false, time.Second); err != nil {
		t.Fatalf("shared lock after unlock: %v", err)
	}
}
