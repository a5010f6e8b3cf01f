package main

import (
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
	txMaxSize int64
	noSync    bool
	timeout   time.Duration
}

func newCompactCommand() *cobra.Command {
	var o compactOptions
	cmd := &cobra.Command{
		Use:   "compact -o DST SRC",
		Short: "copy a database into a new, compact file",
		Long: `Compact copies every bucket (nested ones too), key, value and bucket sequence
of the database SRC into a new database DST, in write transactions of about
--tx-max-size bytes of keys and values, then checks the copy (Tx.Check, and
that it holds as many keys and buckets as SRC) and prints, as bbolt compact
does:

	<SRC bytes> -> <DST bytes> bytes (gain=<SRC/DST>x)

SRC is opened read-only and left as it is. DST must not exist; it gets SRC's
page size and permissions, and is cut to its high water mark, so that it holds
no room grown ahead. On a terminal, progress is shown on stderr. If anything
fails, DST is removed.`,
		Example: "  quiver compact -o my.compact.db my.db",
		Args:    argsBetween(1, 1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if o.txMaxSize <= 0 {
				return usagef("invalid --tx-max-size %d: want at least 1", o.txMaxSize)
			}
			return runCompact(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], &o)
		}),
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.dst, "output", "o", "", "the new database file (required)")
	fs.Int64Var(&o.txMaxSize, "tx-max-size", 65536, "bytes of keys and values copied per write transaction")
	fs.BoolVar(&o.noSync, "no-sync", false, "do not sync the copy's commits (the copy is synced once at the end)")
	fs.DurationVar(&o.timeout, "timeout", defaultLockTimeout, "how long to wait for the file lock of SRC (0: forever)")
	_ = cmd.MarkFlagRequired("output")
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
	items, err := copyDB(dst, src, o.txMaxSize, newProgress(stderr))
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

// copier writes into dst in write transactions of about max bytes.
type copier struct {
	dst      *quiver.DB
	tx       *quiver.Tx
	max      int64
	size     int64 // bytes in the open transaction
	commits  int   // buckets found before the last commit are stale
	items    int   // keys and bucket names copied
	progress *progress
}

// copyDB copies every bucket of src into dst and returns the number of
// keys and bucket names copied.
func copyDB(dst, src *quiver.DB, max int64, p *progress) (int, error) {
	c := &copier{dst: dst, max: max, progress: p}
	var err error
	if c.tx, err = dst.Begin(true); err != nil {
		return 0, err
	}
	defer func() {
		if c.tx != nil {
			_ = c.tx.Rollback()
		}
	}()
	err = src.View(func(t *quiver.Tx) error {
		if p.enabled() {
			p.total = countItems(t)
		}
		return t.ForEach(func(name []byte, b *quiver.Bucket) error {
			if err := c.room(len(name)); err != nil {
				return err
			}
			nb, err := c.tx.CreateBucket(name)
			if err != nil {
				return fmt.Errorf("bucket %s: %w", showPath([][]byte{name}), err)
			}
			if err := nb.SetSequence(b.Sequence()); err != nil {
				return err
			}
			c.copied()
			return c.copyBucket(b, [][]byte{name})
		})
	})
	if err == nil {
		err = c.tx.Commit()
		c.tx = nil
	}
	p.done(err == nil)
	return c.items, err
}

// room makes room for n more bytes in the open transaction, committing it
// and beginning the next when it is full.
func (c *copier) room(n int) error {
	if c.size > 0 && c.size+int64(n) > c.max {
		err := c.tx.Commit()
		c.tx = nil
		if err != nil {
			return err
		}
		if c.tx, err = c.dst.Begin(true); err != nil {
			return err
		}
		c.size = 0
		c.commits++
	}
	c.size += int64(n)
	return nil
}

func (c *copier) copied() {
	c.items++
	c.progress.update(c.items)
}

// copyBucket copies the contents of src into the bucket at path of dst,
// which exists.
func (c *copier) copyBucket(src *quiver.Bucket, path [][]byte) error {
	var dst *quiver.Bucket
	seen := -1 // c.commits when dst was found
	cur := src.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if err := c.room(len(k) + len(v)); err != nil {
			return err
		}
		if seen != c.commits {
			var err error
			if dst, err = bucketAt(c.tx, path); err != nil {
				return err
			}
			seen = c.commits
		}
		var child *quiver.Bucket
		if v == nil {
			child = src.Bucket(k)
		}
		if child == nil {
			if v == nil {
				v = []byte{}
			}
			if err := dst.Put(k, v); err != nil {
				return fmt.Errorf("%s: %w", showPath(append(path[:len(path):len(path)], k)), err)
			}
			c.copied()
			continue
		}
		childPath := append(path[:len(path):len(path)], k)
		nb, err := dst.CreateBucket(k)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", showPath(childPath), err)
		}
		if err := nb.SetSequence(child.Sequence()); err != nil {
			return err
		}
		c.copied()
		if err := c.copyBucket(child, childPath); err != nil {
			return err
		}
	}
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
