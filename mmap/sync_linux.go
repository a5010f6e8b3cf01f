package mmap

import "golang.org/x/sys/unix"

// Fdatasync flushes the file's data and the metadata needed to read it
// (fdatasync(2)).
func Fdatasync(fd uintptr) error {
	return unix.Fdatasync(int(fd))
}
