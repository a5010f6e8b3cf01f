//go:build !linux

package bench

import (
	"errors"
	"os"
)

// writeCounter needs /proc/self/io; elsewhere CommitMeter reports no bytes.
type writeCounter struct{}

func newWriteCounter() (*writeCounter, error) { return nil, errors.ErrUnsupported }

func (c *writeCounter) written() (int64, error) { return 0, errors.ErrUnsupported }

func (c *writeCounter) close() error { return nil }

func dropFileCache(string) error { return errors.ErrUnsupported }

// majorFaults is not measured here.
func majorFaults() int64 { return -1 }

// fdatasync makes f's data durable (fsync where fdatasync is not had).
func fdatasync(f *os.File) error { return f.Sync() }
