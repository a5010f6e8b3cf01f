package quiver_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testhook"
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

// canLock skips the test unless this process may lock n bytes.
func canLock(t *testing.T, n int) {
	t.Helper()
	b := make([]byte, n)
	if err := unix.Mlock(b); err != nil {
		t.Skipf("this process may not lock %d bytes (RLIMIT_MEMLOCK, CAP_IPC_LOCK): %v", n, err)
	}
	_ = unix.Munlock(b)
}

// TestMlock checks that Mlock keeps the whole file locked as it grows:
// within the mapping it has and across new mappings (a 64 KiB least
// mapping makes commits map the file anew), and that Close unlocks it.
func TestMlock(t *testing.T) {
	canLock(t, 128<<20)
	for _, reservation := range []int{0, 64 << 10} {
		t.Run(fmt.Sprint("reservation=", reservation), func(t *testing.T) { testMlock(t, reservation) })
	}
}

func testMlock(t *testing.T, reservation int) {
	before := vmLck(t)
	path := filepath.Join(t.TempDir(), "db")
	if reservation > 0 {
		setHooks(t, path, &testhook.Hooks{MinReservation: reservation})
	}
	db, err := quiver.Open(path, 0o600, &quiver.Options{Mlock: true})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 40; round++ {
		if err := putRound(db, round, 1000); err != nil {
			t.Fatal(err)
		}
		// The used part of the file (its high-water mark) is mapped and
		// must be locked; the file may have grown ahead of it, past the
		// mapping.
		if locked, used := vmLck(t)-before, usedBytes(t, db); locked < used {
			t.Fatalf("round %d: %d bytes locked, %d of the file used", round, locked, used)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if after := vmLck(t); after != before {
		t.Errorf("%d bytes locked after Close, %d before Open", after, before)
	}
}

// TestMlockRemapLocksOnce checks that a commit that maps the file anew
// does not hold the file locked twice (the old mapping and the new) on the
// way: with a locked-memory limit of 8 MiB and no CAP_IPC_LOCK, a file
// whose used part grows to 5.5 MiB through many new mappings stays
// lockable (locking it twice would need about 10 MiB).
func TestMlockRemapLocksOnce(t *testing.T) {
	canLock(t, 64<<20)
	// Capabilities are per thread: this goroutine keeps its thread, and
	// the thread drops CAP_IPC_LOCK from its effective set for the test.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		t.Skipf("capget: %v", err)
	}
	saved := caps
	caps[0].Effective &^= 1 << unix.CAP_IPC_LOCK
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		t.Skipf("capset: %v", err)
	}
	defer func() {
		if err := unix.Capset(&hdr, &saved[0]); err != nil {
			t.Errorf("restoring the capabilities: %v", err)
		}
	}()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		t.Fatal(err)
	}
	newLim := lim
	newLim.Cur = 8 << 20
	if newLim.Max < newLim.Cur {
		t.Skipf("RLIMIT_MEMLOCK's hard limit is %d", lim.Max)
	}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &newLim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	defer func() { _ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim) }()

	path := filepath.Join(t.TempDir(), "db")
	setHooks(t, path, &testhook.Hooks{MinReservation: 64 << 10})
	db, err := quiver.Open(path, 0o600, &quiver.Options{Mlock: true, AllocSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for round := 0; ; round++ {
		used := usedBytes(t, db)
		if used >= 11<<19 {
			break
		}
		if err := putRound(db, round, 200); err != nil {
			t.Fatalf("round %d, %d bytes of the file used: %v", round, used, err)
		}
	}
}

// putRound puts n values of 1000 bytes, under keys of the round, in one
// write transaction.
func putRound(db *quiver.DB, round, n int) error {
	value := make([]byte, 1000)
	return db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := b.Put([]byte(fmt.Sprintf("%05d-%04d", round, i)), value); err != nil {
				return err
			}
		}
		return nil
	})
}

// usedBytes is the used part of the file: its high-water mark.
func usedBytes(t *testing.T, db *quiver.DB) int64 {
	t.Helper()
	var used int64
	if err := db.View(func(tx *quiver.Tx) error { used = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return used
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
