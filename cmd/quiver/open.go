package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/pflag"
)

// defaultLockTimeout is how long a command waits for the file lock. A
// writer holds its exclusive lock for as long as it has the file open, not
// per transaction, so waiting longer rarely helps.
const defaultLockTimeout = time.Second

// addTimeoutFlag adds --timeout to a command that opens a database.
func addTimeoutFlag(fs *pflag.FlagSet) *time.Duration {
	return fs.Duration("timeout", defaultLockTimeout, "how long to wait for the file lock (0: forever)")
}

// errNoSuchFile is what checkFile reports for a missing file.
var errNoSuchFile = errors.New("no such file")

// checkFile reports, in one line, a path that cannot be a database: a
// missing file, a directory, a device or a pipe (which quiver would try to
// read, or block on).
func checkFile(path string) (fs.FileInfo, error) {
	return checkFileOf(path, "quiver")
}

// checkFileOf is checkFile for a database of engine (import reads bbolt
// files), which the messages name.
func checkFileOf(path, engine string) (fs.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", path, errNoSuchFile)
	case err != nil:
		return nil, err // *PathError: names the path and the cause
	case fi.IsDir():
		return nil, fmt.Errorf("%s: is a directory, not a %s database", path, engine)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: %s, not a %s database", path, fileKind(fi.Mode()), engine)
	}
	return fi, nil
}

// fileKind names a file that is not regular.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// openRead opens the database at path read-only, under a shared lock.
func openRead(path string, timeout time.Duration) (*quiver.DB, error) {
	if _, err := checkFile(path); err != nil {
		return nil, err
	}
	db, err := quiver.Open(path, 0, &quiver.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return nil, describeOpenError(path, err, timeout)
	}
	return db, nil
}

// openWrite opens the database at path for writing. Unless create is set
// the file must exist and not be empty: a mistyped path should fail, not
// become a new database (quiver.Open makes one of a missing or empty file).
func openWrite(path string, timeout time.Duration, create bool) (*quiver.DB, error) {
	fi, err := checkFile(path)
	if err != nil && !(create && errors.Is(err, errNoSuchFile)) {
		return nil, err
	}
	if !create && fi.Size() == 0 {
		return nil, fmt.Errorf("%s: not a quiver database (empty file; put --create makes it one)", path)
	}
	db, err := quiver.Open(path, 0o600, &quiver.Options{Timeout: timeout})
	if err != nil {
		return nil, describeOpenError(path, err, timeout)
	}
	return db, nil
}

// describeOpenError turns an error of quiver.Open into one line that says
// what is wrong with the file, naming it.
func describeOpenError(path string, err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, quiver.ErrTimeout):
		return fmt.Errorf("%s: locked by another process that has it open for writing (waited %v; see --timeout)", path, timeout)
	case errors.Is(err, quiver.ErrVersionMismatch):
		return fmt.Errorf("%s: a quiver database of another format version (%s)", path, detail(err, quiver.ErrVersionMismatch))
	case errors.Is(err, quiver.ErrInvalid):
		return fmt.Errorf("%s: not a quiver database (%s)", path, detail(err, quiver.ErrInvalid))
	case quiver.IsCorruption(err):
		return &openError{fmt.Sprintf("%s: damaged database: %s", path, strings.TrimPrefix(err.Error(), "quiver: ")), err}
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied", path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// openError is a described error of quiver.Open that still matches what
// it describes (check tells corruption from other failures).
type openError struct {
	msg string
	err error
}

func (e *openError) Error() string { return e.msg }
func (e *openError) Unwrap() error { return e.err }

// detail returns what err adds to sentinel, which it wraps as
// "sentinel: detail".
func detail(err, sentinel error) string {
	s := err.Error()
	if d, ok := strings.CutPrefix(s, sentinel.Error()+": "); ok {
		return d
	}
	return s
}

// bucketAt returns the bucket at path (top-level name first) in t. A
// lookup that stopped at a damaged page reports the damage, not a missing
// bucket.
func bucketAt(t *quiver.Tx, path [][]byte) (b *quiver.Bucket, err error) {
	defer func() {
		if terr := t.Err(); err != nil && terr != nil {
			b, err = nil, terr
		}
	}()
	if len(path) == 0 {
		return nil, errors.New("no bucket given")
	}
	b = t.Bucket(path[0])
	for i := 1; b != nil && i < len(path); i++ {
		next := b.Bucket(path[i])
		if next == nil && b.Get(path[i]) != nil {
			return nil, fmt.Errorf("%s is a key, not a bucket", showPath(path[:i+1]))
		}
		b = next
		if b == nil {
			return nil, fmt.Errorf("bucket %s not found", showPath(path[:i+1]))
		}
	}
	if b == nil {
		return nil, fmt.Errorf("bucket %s not found", showPath(path[:1]))
	}
	return b, nil
}

// showPath renders a bucket path (and key) for messages.
func showPath(path [][]byte) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = formatBytes(p, "auto")
	}
	return strings.Join(parts, "/")
}
