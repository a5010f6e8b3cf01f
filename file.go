package quiver

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/quiverdb/quiver/mmap"
)

// File is the seam through which quiver does all its file I/O, so that
// tests can inject faults and simulate power loss (Options.OpenFile). The
// database uses a File from one goroutine at a time for writes; ReadAt may
// be called concurrently.
type File interface {
	// ReadAt and WriteAt behave as os.File's.
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Truncate sets the file size.
	Truncate(size int64) error
	// Sync makes everything written so far durable (fdatasync). After a
	// failed Sync the database writes nothing more.
	Sync() error
	// Size returns the file size.
	Size() (int64, error)
	// Fd returns the descriptor that is mapped and locked.
	Fd() uintptr
	Close() error
}

// Mapper may be implemented by a File to control how the database maps it
// into memory (tests use it to make a mapping fail). Map returns a
// read-only shared mapping of size bytes of the file, which the database
// releases with munmap(2); without Mapper, the descriptor from Fd is mapped
// with mmap(2).
type Mapper interface {
	Map(size int) ([]byte, error)
}

// DirSyncer may be implemented by a File to make its entry in its
// directory durable (fsync of the directory). The database calls SyncDir
// when Open has created the file, before any commit can be acknowledged,
// and when Compact has renamed a new file into place, so that a power cut
// cannot take away a file, or bring back an old one, under commits made
// durable in it. A File without it gets its directory synced through the
// path it was opened with. Files from OpenOSFile implement it; so does the
// crash simulator's, which records it.
type DirSyncer interface {
	SyncDir() error
}

// OpenOSFile is the default Options.OpenFile: an *os.File whose Sync is
// fdatasync.
func OpenOSFile(path string, flag int, mode os.FileMode) (File, error) {
	f, err := os.OpenFile(path, flag, mode)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// WrapOSFile makes an open *os.File a File, as OpenOSFile does: so that
// an OpenFile written for bbolt's Options (returning *os.File) serves
// quiver's.
func WrapOSFile(f *os.File) File { return osFile{f} }

type osFile struct{ *os.File }

func (f osFile) Sync() error { return mmap.Fdatasync(f.File.Fd()) }

func (f osFile) Size() (int64, error) {
	st, err := f.File.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// SyncDir implements DirSyncer: it syncs the directory of the path the
// file was opened with.
func (f osFile) SyncDir() error { return syncDir(filepath.Dir(f.Name())) }

// syncDirOf makes f's directory entry durable, through the File when it
// can (see DirSyncer), else through path's directory.
func syncDirOf(f File, path string) error {
	if d, ok := f.(DirSyncer); ok {
		return d.SyncDir()
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
