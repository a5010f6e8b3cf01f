package quiver_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
	"golang.org/x/sys/unix"
)

// vmLck is this process's locked memory (VmLck of /proc/self/status).
func vmLck(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmLck:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}

// TestMlock checks that Mlock keeps the whole file locked as it grows:
// within the mapping it has and across new mappings, and that Close
// unlocks it.
func TestMlock(t *testing.T) {
	before := vmLck(t)
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, &quiver.Options{Mlock: true})
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOMEM) {
		t.Skipf("this process may not lock memory: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 1000)
	for round := 0; round < 40; round++ {
		if err := db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			for i := 0; i < 1000; i++ {
				if err := b.Put([]byte(fmt.Sprintf("%03d-%04d", round, i)), value); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if locked := vmLck(t) - before; locked < fi.Size() {
			t.Fatalf("round %d: %d bytes locked, the file has %d", round, locked, fi.Size())
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if after := vmLck(t); after != before {
		t.Errorf("%d bytes locked after Close, %d before Open", after, before)
	}
}

// mappedRss is the resident size of the mapping that starts at addr
// (Rss of its entry in /proc/self/smaps).
func mappedRss(t *testing.T, addr uintptr) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inside := false
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		// A mapping's first line starts with its range, lo-hi; the
		// lines of its figures with a name and a colon.
		if lo, _, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") {
			start, err := strconv.ParseUint(lo, 16, 64)
			inside = err == nil && uintptr(start) == addr
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && inside {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no mapping at %#x in /proc/self/smaps", addr)
	return 0
}

// TestMmapFlags checks that MmapFlags reach mmap: with MAP_POPULATE the
// whole file is resident in the mapping as soon as Open returns, without
// it only what Open read.
func TestMmapFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 4000)
	if err := db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 2000; i++ {
			if err := b.Put([]byte(fmt.Sprint(i)), value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, populate := range []bool{false, true} {
		opts := &quiver.Options{ReadOnly: true}
		if populate {
			opts.MmapFlags = unix.MAP_POPULATE
		}
		db, err := quiver.Open(path, 0o600, opts)
		if err != nil {
			t.Fatal(err)
		}
		rss := mappedRss(t, db.Info().Data)
		db.Close()
		if populate && rss < fi.Size() {
			t.Errorf("MAP_POPULATE: %d bytes resident in the mapping of a %d-byte file", rss, fi.Size())
		}
		if !populate && rss > fi.Size()/2 {
			t.Errorf("no flags: %d bytes resident in the mapping of a %d-byte file just opened", rss, fi.Size())
		}
	}
}
