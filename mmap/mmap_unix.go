//go:build unix

package mmap

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Map maps size bytes of the file fd read-only and shared, with flags
// (e.g. unix.MAP_POPULATE) added to MAP_SHARED.
func Map(fd uintptr, size, flags int) ([]byte, error) {
	b, err := unix.Mmap(int(fd), 0, size, unix.PROT_READ, unix.MAP_SHARED|flags)
	if err != nil {
		return nil, fmt.Errorf("quiver: mmap %d bytes: %w", size, err)
	}
	// Pages are visited in tree order, not sequentially.
	_ = unix.Madvise(b, unix.MADV_RANDOM)
	return b, nil
}

// Unmap releases a mapping returned by Map.
func Unmap(b []byte) error {
	if b == nil {
		return nil
	}
	return unix.Munmap(b)
}

// Mlock locks b's pages in memory (mlock(2)): they are read in now and
// stay resident until unlocked or unmapped.
func Mlock(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := unix.Mlock(b); err != nil {
		return fmt.Errorf("quiver: mlock %d bytes: %w (RLIMIT_MEMLOCK, ulimit -l, bounds it for a process without CAP_IPC_LOCK)", len(b), err)
	}
	return nil
}

// Munlock unlocks b's pages (munlock(2)); they stay mapped.
func Munlock(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return unix.Munlock(b)
}

// ErrTimeout is returned by Lock when the lock was not granted in time.
var ErrTimeout = errors.New("quiver: timeout waiting for the file lock")

// Lock takes an advisory lock on fd: exclusive for a read-write open, shared
// for a read-only one. It retries until timeout (0 waits forever).
func Lock(fd uintptr, exclusive bool, timeout time.Duration) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(fd), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return fmt.Errorf("quiver: flock: %w", err)
		}
		if timeout > 0 && time.Now().After(deadline) {
			return ErrTimeout
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Unlock releases the lock taken by Lock.
func Unlock(fd uintptr) error {
	return unix.Flock(int(fd), unix.LOCK_UN)
}

// IsPath reports whether the open file fd is the file now at path: false
// when path names another file (the file was replaced, as by a rename
// over it) or nothing.
func IsPath(fd uintptr, path string) (bool, error) {
	var open, named unix.Stat_t
	if err := unix.Fstat(int(fd), &open); err != nil {
		return false, fmt.Errorf("quiver: fstat: %w", err)
	}
	if err := unix.Stat(path, &named); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, fmt.Errorf("quiver: stat %s: %w", path, err)
	}
	return open.Dev == named.Dev && open.Ino == named.Ino, nil
}
