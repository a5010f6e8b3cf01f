package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Skipf("ptsname: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Skipf("open the pseudo-terminal: %v", err)
	}
	return master, slave
}

// TestMigrateProgress runs import and export on a terminal, where the
// progress line shows on stderr, and with stdout redirected, where nothing
// but the summary line is printed.
func TestMigrateProgress(t *testing.T) {
	src := newBoltDB(t, 0)
	buckets, keys := 0, 0
	for _, e := range boltContents(t, src) {
		if e.bucket {
			buckets++
		} else {
			keys++
		}
	}
	dir := t.TempDir()
	mid, back := filepath.Join(dir, "mid.db"), filepath.Join(dir, "back.bolt")

	master, slave := openPTY(t)
	defer master.Close()
	output := make(chan string)
	go func() {
		b, _ := io.ReadAll(master) // until the slave is closed (EIO)
		output <- string(b)
	}()
	status := run([]string{"import", "--from-bbolt", src, mid}, slave, slave)
	slave.Close()
	got := <-output
	if status != 0 {
		t.Fatalf("import on a terminal: status %d: %q", status, got)
	}
	// The terminal turns \n into \r\n.
	n := buckets + keys
	want := regexp.MustCompile(fmt.Sprintf(`^(\rcopied [0-9]+ of %d keys and buckets \([0-9]+%%\))*\rcopied %d of %d keys and buckets \(100%%\)\r\n`, n, n, n) +
		regexp.QuoteMeta(src) + ` \(bbolt\) -> ` + regexp.QuoteMeta(mid) + fmt.Sprintf(` \(quiver\): %d buckets, %d keys, xxhash [0-9a-f]{16} OK\r\n$`, buckets, keys))
	if !want.MatchString(got) {
		t.Errorf("import on a terminal printed %q", got)
	}

	// stderr a terminal, stdout not: nothing on the terminal.
	master2, slave2 := openPTY(t)
	defer master2.Close()
	output2 := make(chan string)
	go func() {
		b, _ := io.ReadAll(master2)
		output2 <- string(b)
	}()
	var stdout bytes.Buffer
	status = run([]string{"export", "--to-bbolt", mid, back}, &stdout, slave2)
	slave2.Close()
	if got := <-output2; status != 0 || got != "" || !migrateLine.MatchString(stdout.String()) {
		t.Errorf("export with stdout redirected: status %d, stdout %q, terminal %q", status, stdout.String(), got)
	}
}
