//go:build unix && !linux && !darwin

package mmap

import "golang.org/x/sys/unix"

// Fdatasync makes the file's data durable with fsync(2), where the system
// has no fdatasync.
func Fdatasync(fd uintptr) error {
	return unix.Fsync(int(fd))
}
