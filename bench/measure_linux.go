package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// writeCounter reads the bytes this process has passed to write system
// calls (write, pwrite, writev: the wchar line of /proc/self/io, summed over
// all threads). It counts what was asked to be written, whether or not it
// has reached the device yet, which is what a commit's cost in bytes is.
type writeCounter struct {
	f   *os.File
	buf [512]byte
}

func newWriteCounter() (*writeCounter, error) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return nil, err
	}
	return &writeCounter{f: f}, nil
}

var wcharField = []byte("wchar: ")

// written returns the current wchar. Re-reading the open file from offset 0
// gives fresh values, so a read costs one system call.
func (c *writeCounter) written() (int64, error) {
	n, err := c.f.ReadAt(c.buf[:], 0)
	if err != nil && err != io.EOF {
		return 0, err
	}
	text := c.buf[:n]
	i := bytes.Index(text, wcharField)
	if i < 0 {
		return 0, fmt.Errorf("bench: no wchar in /proc/self/io: %q", text)
	}
	text = text[i+len(wcharField):]
	if j := bytes.IndexByte(text, '\n'); j >= 0 {
		text = text[:j]
	}
	return strconv.ParseInt(string(text), 10, 64)
}

func (c *writeCounter) close() error { return c.f.Close() }

func dropFileCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("bench: fadvise %s: %w", path, err)
	}
	return nil
}

// majorFaults returns the page faults of this process so far that had to
// read from the device (ru_majflt), or -1.
func majorFaults() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Majflt
}

// fdatasync makes f's data durable, as the engines' commits do.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
