package mmap

import "golang.org/x/sys/unix"

// Fdatasync makes the file's data durable. On macOS fsync(2) only hands
// the data to the drive, which may keep it in its cache; F_FULLFSYNC asks
// the drive to flush as well.
func Fdatasync(fd uintptr) error {
	_, err := unix.FcntlInt(fd, unix.F_FULLFSYNC, 0)
	return err
}
