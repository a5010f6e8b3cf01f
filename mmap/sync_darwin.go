package mmap

import "golang.org/x/sys/unix"

// Fdatasync makes the file's data durable. On macOS fsync(2) only hands
// the data to the drive, which may keep it in its cache; F_FULLFSYNC asks
// the drive to flush as well.
func Fdatasync(fd uintptr) error {
	_, err := unix.FcntlInt(fd, unix.F_FULLFSYNC, 0)
	return err
}

// Preallocate does nothing on macOS: writes past the end grow the file as
// they go.
func Preallocate(fd uintptr, size int64) error { return nil }
