package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// import and export move a database between bbolt's file format and
// quiver's, one way each, with the same steps:
//
//  1. refuse a DST that exists (SRC itself included) and a SRC that is
//     missing, locked, or not of the engine the command reads;
//  2. create DST exclusively, with SRC's permissions and, where the other
//     engine allows it, SRC's page size;
//  3. walk SRC in one read transaction and write every bucket (nested ones
//     too), key, value and bucket sequence into DST in write transactions
//     of about --tx-max-size bytes, hashing what was read;
//  4. reopen DST read-only, run its engine's consistency check, walk and
//     hash it the same way, and compare bucket count, key count and hash;
//  5. print one line:
//
//	SRC (bbolt) -> DST (quiver): N buckets, M keys, xxhash H OK
//
// If anything fails, DST is removed: a half-written copy must not be
// mistaken for a migrated database. An interrupt (SIGINT, SIGTERM) while
// DST is being written is such a failure; a second one kills the tool. Both engines run in this process, so
// each has its own file: migrate_bbolt.go and migrate_quiver.go implement
// format for them, migrate_walk.go holds what the two share (the walk, the
// hash and the bounded writer).

// migrateOptions are the flags of import and export.
type migrateOptions struct {
	txMaxSize int64
	noSync    bool
	timeout   time.Duration
}

// addMigrateFlags adds the flags import and export share (compact's).
func addMigrateFlags(cmd *cobra.Command, o *migrateOptions) {
	fs := cmd.Flags()
	fs.Int64Var(&o.txMaxSize, "tx-max-size", 65536, "bytes of keys and values copied per write transaction")
	fs.BoolVar(&o.noSync, "no-sync", false, "do not sync the copy's commits (the copy is synced once at the end)")
	fs.DurationVar(&o.timeout, "timeout", defaultLockTimeout, "how long to wait for the file lock of SRC (0: forever)")
}

// format is one engine's file format as a migration reads and writes it.
type format interface {
	// String names the engine in messages and the summary line.
	String() string
	// open opens the database at path read-only, under a shared lock it
	// waits timeout for, and describes in one line why it cannot.
	open(path string, timeout time.Duration) (store, error)
	// create opens the new, empty file at path as a database to write,
	// with pageSize (0: the engine's default).
	create(path string, pageSize int, o *migrateOptions) (target, error)
	// pageSizeOK reports whether the engine can write pages of n bytes.
	pageSizeOK(n int) bool
}

// store is a database opened read-only.
type store interface {
	// read runs fn in one read transaction. walk visits everything the
	// transaction sees, in order (see walkTx); fn may call it more than
	// once. A panic of the engine while reading is returned as an error.
	read(fn func(walk func(visitor) error) error) error
	// pageSize is the database's page size.
	pageSize() int
	// check runs the engine's consistency check on the whole file.
	check() error
	close() error
}

// target is a new database being written.
type target interface {
	// begin starts a write transaction.
	begin() (destTx, error)
	// finish makes everything written durable and closes the database.
	finish() error
	// abandon closes the database after a failure; the file is removed.
	abandon()
}

// runMigrate copies the from database at srcPath into a new to database at
// dstPath and verifies the copy. It stops, and removes dstPath, when ctx
// is done or the tool is interrupted.
func runMigrate(ctx context.Context, stdout, stderr io.Writer, from, to format, srcPath, dstPath string, o *migrateOptions) (err error) {
	fi, err := checkFileOf(srcPath, from.String())
	if err != nil {
		return err
	}
	if dfi, err := os.Stat(dstPath); err == nil {
		if os.SameFile(fi, dfi) {
			return fmt.Errorf("%s: is the source; DST must be a new file", dstPath)
		}
		return fmt.Errorf("%s: exists; DST must be a new file", dstPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	src, err := from.open(srcPath, o.timeout)
	if err != nil {
		return err
	}
	defer src.close()

	// Create DST exclusively, so that a file that appeared meanwhile is
	// not overwritten. From here on DST is removed unless the copy is
	// verified, a panic included (run reports it).
	f, err := os.OpenFile(dstPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	f.Close()
	verified := false
	defer func() {
		if !verified {
			os.Remove(dstPath)
		}
	}()
	// Only now: an interrupt while SRC's lock is awaited (--timeout 0
	// waits forever) must still kill the tool.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second interrupt kills
	}()

	pageSize := src.pageSize()
	if !to.pageSizeOK(pageSize) {
		pageSize = 0
	}
	dst, err := to.create(dstPath, pageSize, o)
	if err != nil {
		return err
	}
	finished := false
	defer func() {
		if !finished {
			dst.abandon()
		}
	}()

	var want digest
	p := migrateProgress(stdout, stderr)
	s := &sink{begin: dst.begin, dstPath: dstPath, max: o.txMaxSize, progress: p}
	err = src.read(func(walk func(visitor) error) error {
		if p.enabled() {
			var n counter
			if err := walk(&n); err != nil {
				return err
			}
			p.total = n.items
		}
		want.reset()
		// The last transaction commits before the source's read
		// transaction ends: bbolt's Put keeps the value slice it is
		// given, here one into quiver's mapping, until the commit.
		return s.end(walk(interruptible{ctx, tee{&want, s}}))
	})
	err = s.end(err) // the source panicked: roll back
	p.done(err == nil)
	if err != nil {
		return err
	}
	finished = true
	if err := dst.finish(); err != nil {
		return fmt.Errorf("%s: %w", dstPath, err)
	}

	if err := verifyMigration(ctx, to, dstPath, &want); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	verified = true
	fmt.Fprintf(stdout, "%s (%s) -> %s (%s): %d buckets, %d keys, xxhash %016x OK\n",
		srcPath, from, dstPath, to, want.buckets, want.keys, want.sum())
	return nil
}

// verifyMigration reopens the copy at path, checks it with its engine's
// checker and compares its contents' digest with want, the source's.
func verifyMigration(ctx context.Context, f format, path string, want *digest) error {
	db, err := f.open(path, defaultLockTimeout)
	if err != nil {
		return fmt.Errorf("the copy does not open: %w", err)
	}
	defer db.close()
	if err := db.check(); err != nil {
		return fmt.Errorf("%s: the copy does not check: %w", path, err)
	}
	var got digest
	err = db.read(func(walk func(visitor) error) error {
		got.reset()
		return walk(interruptible{ctx, &got})
	})
	if err != nil && !errors.Is(err, errInterrupted) {
		err = fmt.Errorf("reading the copy back: %w", err)
	}
	if err != nil {
		return err
	}
	if got.buckets != want.buckets || got.keys != want.keys || got.sum() != want.sum() {
		return fmt.Errorf("%s: the copy differs from the source: %d buckets, %d keys, xxhash %016x; the source has %d buckets, %d keys, xxhash %016x",
			path, got.buckets, got.keys, got.sum(), want.buckets, want.keys, want.sum())
	}
	return nil
}

// migrateProgress returns the progress line of a migration: on stderr, and
// only when both stdout and stderr are terminals. compact needs stderr
// alone to be one; a migration is run from scripts (a deploy, a rollback)
// whose output is captured, so one redirected stream is enough to keep
// both free of carriage returns.
func migrateProgress(stdout, stderr io.Writer) *progress {
	if f, ok := stdout.(*os.File); !ok || !isTerminal(f) {
		return &progress{}
	}
	return newProgress(stderr)
}

// errInterrupted is what a migration returns when it was interrupted.
var errInterrupted = errors.New("interrupted; the partial copy is removed")

// interruptible passes what it visits on to v until ctx is done.
type interruptible struct {
	ctx context.Context
	v   visitor
}

func (i interruptible) enter(name []byte, sequence uint64) error {
	if i.ctx.Err() != nil {
		return errInterrupted
	}
	return i.v.enter(name, sequence)
}

func (i interruptible) key(k, v []byte) error {
	if i.ctx.Err() != nil {
		return errInterrupted
	}
	return i.v.key(k, v)
}

func (i interruptible) leave() error { return i.v.leave() }
