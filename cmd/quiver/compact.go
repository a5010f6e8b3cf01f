package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

type compactOptions struct {
	dst       string
	inPlace   bool
	txMaxSize int64
	noSync    bool
	timeout   time.Duration
}

func newCompactCommand() *cobra.Command {
	var o compactOptions
	cmd := &cobra.Command{
		Use:   "compact (-o DST | --in-place) SRC",
		Short: "copy a database into a new, compact file, or compact it in place",
		Long: `Compact copies every bucket (nested ones too), key, value and bucket sequence
of the database SRC into a new database DST, in write transactions of about
--tx-max-size bytes of keys and values, then checks the copy (Tx.Check, and
that it holds as many keys and buckets as SRC) and prints, as bbolt compact
does:

	<SRC bytes> -> <DST bytes> bytes (gain=<SRC/DST>x)

SRC is opened read-only and left as it is. DST must not exist; it gets SRC's
page size and permissions, and is cut to its high water mark, so that it holds
no room grown ahead. On a terminal, progress is shown on stderr. If anything
fails, DST is removed.

With --in-place, SRC is compacted where it is, with the online compaction of
the library (DB.Compact): the copy is written next to SRC as SRC.compact and
renamed over it once complete and synced, so a crash or an error at any point
leaves either the old file or the new one, whole. SRC must not be open in
another process (the command waits --timeout for its lock); programs that hold
a database open call DB.Compact themselves, and their readers and writers go
on meanwhile. It prints

	<SRC>: <old bytes> -> <new bytes> bytes (gain=<old/new>x)`,
		Example: "  quiver compact -o my.compact.db my.db\n  quiver compact --in-place my.db",
		Args:    argsBetween(1, 1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if o.txMaxSize <= 0 {
				return usagef("invalid --tx-max-size %d: want at least 1", o.txMaxSize)
			}
			if (o.dst == "") == !o.inPlace {
				return usagef("give exactly one of -o DST and --in-place")
			}
			if o.inPlace {
				return runCompactInPlace(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], &o)
			}
			return runCompact(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], &o)
		}),
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.dst, "output", "o", "", "the new database file")
	fs.BoolVar(&o.inPlace, "in-place", false, "compact SRC online and switch to the new file")
	fs.Int64Var(&o.txMaxSize, "tx-max-size", 65536, "bytes of keys and values copied per write transaction")
	fs.BoolVar(&o.noSync, "no-sync", false, "do not sync the copy's commits (the copy is synced once at the end, as --in-place always does)")
	fs.DurationVar(&o.timeout, "timeout", defaultLockTimeout, "how long to wait for the file lock of SRC (0: forever)")
	return cmd
}

func runCompact(stdout, stderr io.Writer, srcPath string, o *compactOptions) (err error) {
	fi, err := checkFile(srcPath)
	if err != nil {
		return err
	}
	if dfi, err := os.Stat(o.dst); err == nil {
		if os.SameFile(fi, dfi) {
			return fmt.Errorf("%s: is the source; compact writes a new file", o.dst)
		}
		return fmt.Errorf("%s: exists; compact writes a new file", o.dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	src, err := openRead(srcPath, o.timeout)
	if err != nil {
		return err
	}
	defer src.Close()

	// Create DST exclusively, so that a file that appeared meanwhile is
	// not overwritten; from here on a failure removes it.
	f, err := os.OpenFile(o.dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(o.dst)
		}
	}()

	var pageSize int
	if err := src.View(func(t *quiver.Tx) error { pageSize = int(t.Meta().PageSize); return nil }); err != nil {
		return err
	}
	dst, err := quiver.Open(o.dst, fi.Mode().Perm(), &quiver.Options{PageSize: pageSize, NoSync: o.noSync, Timeout: o.timeout})
	if err != nil {
		return describeOpenError(o.dst, err, o.timeout)
	}
	p := newProgress(stderr)
	var items int
	err = src.View(func(t *quiver.Tx) error { items = countItems(t); return nil })
	if err == nil {
		p.total = items
		err = quiver.CompactContext(context.Background(), dst, src, &quiver.CompactOptions{TxMaxSize: o.txMaxSize, Progress: p.update})
		p.done(err == nil)
	}
	var size int64
	if err == nil {
		err = dst.View(func(t *quiver.Tx) error { size = t.Size(); return nil })
	}
	if err == nil && o.noSync {
		err = dst.Sync()
	}
	if err = errors.Join(err, dst.Close()); err != nil {
		return fmt.Errorf("copying into %s: %w", o.dst, err)
	}
	// The file grows ahead of its high water mark; the copy will not
	// grow soon, so give the room back.
	if err := truncateSync(o.dst, size); err != nil {
		return err
	}
	if err := verifyCopy(o.dst, items); err != nil {
		return err
	}
	dfi, err := os.Stat(o.dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d -> %d bytes (gain=%.2fx)\n", fi.Size(), dfi.Size(), float64(fi.Size())/float64(dfi.Size()))
	return nil
}

func runCompactInPlace(stdout, stderr io.Writer, path string, o *compactOptions) error {
	db, err := openWrite(path, o.timeout, false)
	if err != nil {
		return err
	}
	p := newProgress(stderr)
	_ = db.View(func(t *quiver.Tx) error { p.total = countItems(t); return nil })
	st, err := db.Compact(context.Background(), &quiver.CompactOptions{TxMaxSize: o.txMaxSize, Progress: p.update})
	p.done(err == nil)
	if err = errors.Join(err, db.Close()); err != nil {
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "%s: %d -> %d bytes (gain=%.2fx)\n", path, st.OldSize, st.NewSize, float64(st.OldSize)/float64(st.NewSize))
	return nil
}

// countItems returns the keys and bucket names of the database, nested
// ones included.
func countItems(t *quiver.Tx) int {
	n := 0
	_ = t.ForEach(func(_ []byte, b *quiver.Bucket) error {
		n += 1 + b.Stats().KeyN
		return nil
	})
	return n
}

// truncateSync cuts the file at path to size bytes if it is longer.
func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() > size {
		if err = f.Truncate(size); err == nil {
			err = f.Sync()
		}
	}
	return errors.Join(err, f.Close())
}

// verifyCopy opens the copy at path, runs the full check and counts its
// keys and buckets.
func verifyCopy(path string, items int) error {
	db, err := openRead(path, defaultLockTimeout)
	if err != nil {
		return fmt.Errorf("the copy does not open: %w", err)
	}
	defer db.Close()
	return db.View(func(t *quiver.Tx) error {
		var problems []error
		for err := range t.Check() {
			problems = append(problems, err)
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s: the copy does not check (%d problems): %w", path, len(problems), errors.Join(problems...))
		}
		if n := countItems(t); n != items {
			return fmt.Errorf("%s: the copy holds %d keys and buckets, %d were copied", path, n, items)
		}
		return nil
	})
}
