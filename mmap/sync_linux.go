package mmap

import "golang.org/x/sys/unix"

// Fdatasync flushes the file's data and the metadata needed to read it
// (fdatasync(2)).
func Fdatasync(fd uintptr) error {
	return unix.Fdatasync(int(fd))
}

// Preallocate reserves the file's blocks up to size (fallocate(2)), so
// that writes there later change no size: their fdatasync has no
// metadata to write.
func Preallocate(fd uintptr, size int64) error {
	return unix.Fallocate(int(fd), 0, 0, size)
}
