//go:build unix && !linux && !darwin

package mmap

import "golang.org/x/sys/unix"

// Fdatasync makes the file's data durable with fsync(2), where the system
// has no fdatasync.
func Fdatasync(fd uintptr) error {
	return unix.Fsync(int(fd))
}

// Preallocate does nothing where fallocate(2) is missing: writes past the
// end grow the file as they go.
func Preallocate(fd uintptr, size int64) error { return nil }
