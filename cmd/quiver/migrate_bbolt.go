package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/quiverdb/quiver/page"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// bbolt's side of import and export. Unlike quiver, bbolt trusts its file:
// a damaged page can make it panic, or fault on a page past the end of the
// file, which run's SetPanicOnFault turns into a panic too. Everything that
// reads a bbolt file therefore runs under guard, which reports a panic as a
// damaged database in one line.

type bboltFormat struct{}

var _ format = bboltFormat{}

func (bboltFormat) String() string { return "bbolt" }

// pageSizeOK: bbolt finds the second meta page of a file whose first is
// damaged by trying page sizes of 1 KiB to 16 MiB, powers of two; a file
// with another page size would not survive that repair.
func (bboltFormat) pageSizeOK(n int) bool {
	return n >= 1<<10 && n <= 16<<20 && n&(n-1) == 0
}

// File kinds told apart by the magic numbers of their first meta page.
const (
	kindUnknown = iota
	kindBbolt
	kindQuiver
)

// bboltMagic is the magic number of bbolt's meta pages, a uint32 at byte 16
// of pages 0 and 1 after the page header (id, flags, count, overflow),
// followed by the format version and the page size. bbolt writes them in
// the machine's byte order.
const bboltMagic = 0xED0CDAED

// sniff reads the first meta page of the file at path and returns which
// engine wrote it and the page size it states (0 if unknown), so that a
// file of the other engine is named as such rather than as garbage.
func sniff(path string) (kind, pageSize int) {
	f, err := os.Open(path)
	if err != nil {
		return kindUnknown, 0
	}
	defer f.Close()
	b := make([]byte, 64)
	if _, err := io.ReadFull(f, b); err != nil {
		return kindUnknown, 0
	}
	switch {
	case binary.NativeEndian.Uint32(b[16:]) == bboltMagic:
		return kindBbolt, int(binary.NativeEndian.Uint32(b[24:]))
	case binary.LittleEndian.Uint32(b[32:]) == page.Magic:
		return kindQuiver, int(binary.LittleEndian.Uint32(b[40:]))
	}
	return kindUnknown, 0
}

// guard runs fn and returns a panic of bbolt's as an error saying that the
// file at path is damaged. Faults on the mapping panic only with
// SetPanicOnFault, which is per goroutine: run sets it, and so does guard,
// for callers other than run.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		what := "bbolt panicked: " + oneLine(fmt.Sprint(r))
		// A fault under SetPanicOnFault panics with the address; the
		// usual cause is a page past the end of a truncated file.
		if _, ok := r.(interface{ Addr() uintptr }); ok {
			what = "bbolt faulted reading a page the file does not hold: is it truncated?"
		}
		err = &bboltPanic{fmt.Sprintf("%s: damaged bbolt database (%s)", path, what)}
	}()
	return fn()
}

// bboltPanic is the error guard returns for a panic.
type bboltPanic struct{ msg string }

func (e *bboltPanic) Error() string { return e.msg }

// bboltStore is a bbolt database opened read-only.
type bboltStore struct {
	db       *bolt.DB
	path     string
	panicked bool // bbolt panicked: its locks may be held
}

func (bboltFormat) open(path string, timeout time.Duration) (store, error) {
	fi, err := checkFileOf(path, "bbolt")
	if err != nil {
		return nil, err
	}
	// bbolt would try to make an empty file a database, and fail to
	// write it, read-only: "write PATH: bad file descriptor".
	if fi.Size() == 0 {
		return nil, fmt.Errorf("%s: not a bbolt database (empty file)", path)
	}
	kind, pageSize := sniff(path)
	switch {
	case kind == kindQuiver:
		return nil, fmt.Errorf("%s: a quiver database, not a bbolt one (quiver export --to-bbolt converts it)", path)
	case kind == kindBbolt && bboltFormat{}.pageSizeOK(pageSize) && fi.Size() < 2*int64(pageSize):
		// bbolt says only "file size too small".
		return nil, fmt.Errorf("%s: damaged bbolt database (the file is %d bytes, shorter than its two meta pages: %d bytes)", path, fi.Size(), 2*pageSize)
	}
	var db *bolt.DB
	err = guard(path, func() (err error) {
		db, err = bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: timeout})
		return err
	})
	if err != nil {
		return nil, describeBboltOpenError(path, err, timeout, kind)
	}
	s := &bboltStore{db: db, path: path}
	// bbolt does not compare the pages its meta claims with the file:
	// it would read past the end, through its mapping or beyond it.
	var size int64
	err = s.guard(func() error {
		return db.View(func(t *bolt.Tx) error { size = t.Size(); return nil })
	})
	if err != nil {
		s.close()
		return nil, err
	}
	if size > fi.Size() {
		s.close()
		return nil, fmt.Errorf("%s: damaged bbolt database (its pages reach byte %d, the file has %d bytes: truncated?)", path, size, fi.Size())
	}
	return s, nil
}

// describeBboltOpenError turns an error of bolt.Open into one line that
// says what is wrong with the file at path, of the kind sniff found.
func describeBboltOpenError(path string, err error, timeout time.Duration, kind int) error {
	var bp *bboltPanic
	switch {
	case errors.As(err, &bp):
		return err
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%s: locked by another process that has it open for writing (waited %v; see --timeout)", path, timeout)
	case errors.Is(err, berrors.ErrVersionMismatch):
		return fmt.Errorf("%s: a bbolt database of another format version", path)
	case errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("%s: damaged bbolt database (both meta pages fail their checksum)", path)
	case errors.Is(err, berrors.ErrInvalid) && kind == kindBbolt:
		return fmt.Errorf("%s: damaged bbolt database (%v)", path, err)
	case errors.Is(err, berrors.ErrInvalid):
		return fmt.Errorf("%s: not a bbolt database (no bbolt meta page)", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied", path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	// bbolt's other errors (a failed mmap, a file too small to map)
	// name neither the file nor the engine.
	return fmt.Errorf("%s: not a usable bbolt database (%s)", path, strings.TrimSpace(err.Error()))
}

func (s *bboltStore) pageSize() int { return s.db.Info().PageSize }

// guard runs fn under guard and remembers a panic, for close.
func (s *bboltStore) guard(fn func() error) error {
	err := guard(s.path, fn)
	var bp *bboltPanic
	if errors.As(err, &bp) {
		s.panicked = true
	}
	return err
}

func (s *bboltStore) read(fn func(walk func(visitor) error) error) error {
	return s.guard(func() error {
		return s.db.View(func(t *bolt.Tx) error {
			return fn(func(v visitor) error {
				return walkTx[*bolt.Tx, *bolt.Bucket, *bolt.Cursor](t, v)
			})
		})
	})
}

// check runs bbolt's Tx.Check, which loads the freelist of a read-only
// database itself and reports a panic as a problem.
func (s *bboltStore) check() error {
	var problems []error
	err := s.guard(func() error {
		return s.db.View(func(t *bolt.Tx) error {
			for err := range t.Check() {
				problems = append(problems, err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problems: %w", len(problems), errors.Join(problems...))
	}
	return nil
}

// close closes the database. After a panic bbolt may hold its own locks,
// and Close could wait for them forever: the tool is about to exit, so
// give it a moment and leave it.
func (s *bboltStore) close() error {
	if !s.panicked {
		return s.db.Close()
	}
	done := make(chan error, 1)
	go func() { done <- s.db.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Second):
		return nil
	}
}

// bboltTarget is a new bbolt database being written.
type bboltTarget struct {
	db     *bolt.DB
	noSync bool
}

func (bboltFormat) create(path string, pageSize int, o *migrateOptions) (target, error) {
	db, err := bolt.Open(path, 0, &bolt.Options{PageSize: pageSize, NoSync: o.noSync, Timeout: o.timeout})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &bboltTarget{db: db, noSync: o.noSync}, nil
}

func (t *bboltTarget) begin() (destTx, error) {
	tx, err := t.db.Begin(true)
	if err != nil {
		return nil, err
	}
	return &engineTx[*bolt.Tx, *bolt.Bucket, *bolt.Cursor]{tx: tx}, nil
}

func (t *bboltTarget) finish() error {
	var err error
	if t.noSync {
		err = t.db.Sync()
	}
	return errors.Join(err, t.db.Close())
}

func (t *bboltTarget) abandon() { _ = t.db.Close() }
