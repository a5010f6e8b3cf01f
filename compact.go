package quiver

import (
	"context"
	"fmt"

	"github.com/quiverdb/quiver/tx"
)

// CompactOptions tune Compact and DB.Compact. The zero value is usable.
type CompactOptions struct {
	// TxMaxSize bounds the bytes of keys and values the copy writes per
	// write transaction of the destination; 0 means no bound (one
	// transaction), as in bbolt's Compact.
	TxMaxSize int64
	// Progress, if set, is called as the copy goes with the number of keys
	// and bucket names copied so far.
	Progress func(copied int)
}

// Compact copies every bucket, nested ones included, key, value and bucket
// sequence of src into dst, in write transactions of about txMaxSize bytes
// of keys and values (0: one transaction). dst is usually a new, empty
// database: the copy holds no free pages, so it is as small as the data
// allows. src is read in one read transaction, so the copy is one
// consistent state of it. It is bbolt's Compact.
func Compact(dst, src *DB, txMaxSize int64) error {
	return CompactContext(context.Background(), dst, src, &CompactOptions{TxMaxSize: txMaxSize})
}

// CompactContext is Compact with a context, which stops the copy when it is
// done, and options. On error dst holds part of the copy.
func CompactContext(ctx context.Context, dst, src *DB, opts *CompactOptions) error {
	if opts == nil {
		opts = &CompactOptions{}
	}
	if opts.TxMaxSize < 0 {
		return fmt.Errorf("quiver: Compact: negative TxMaxSize %d", opts.TxMaxSize)
	}
	return src.View(func(t *Tx) error {
		c := &copier{ctx: ctx, src: src, dst: dst, max: opts.TxMaxSize, progress: opts.Progress}
		return c.run(t)
	})
}

// copier copies a read transaction into dst in write transactions of about
// max bytes (0: one).
type copier struct {
	ctx      context.Context
	src      *DB // if set, the copy stops when it is closed
	dst      *DB
	tx       *Tx // the open write transaction of dst
	max      int64
	size     int64 // bytes in the open transaction
	commits  int   // buckets found before the last commit are stale
	copied   int   // keys and bucket names copied
	progress func(int)
}

func (c *copier) run(src *Tx) (err error) {
	if c.tx, err = c.dst.Begin(true); err != nil {
		return err
	}
	defer func() {
		if c.tx != nil {
			_ = c.tx.Rollback()
		}
	}()
	root := tx.Root(src)
	if err := tx.Root(c.tx).SetSequence(root.Sequence()); err != nil {
		return err
	}
	if err := c.copyBucket(root, nil, nil, true); err != nil {
		return err
	}
	if err := src.Err(); err != nil {
		return err
	}
	err = c.tx.Commit()
	c.tx = nil
	return err
}

// room makes room for n more bytes in the open transaction, committing it
// and beginning the next when it is full. It also stops the copy when the
// context is done.
func (c *copier) room(n int) error {
	if c.copied%256 == 0 {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if c.src != nil && c.src.closed.Load() {
			return ErrDatabaseNotOpen
		}
	}
	if c.max > 0 && c.size > 0 && c.size+int64(n) > c.max {
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

func (c *copier) count() {
	c.copied++
	if c.progress != nil {
		c.progress(c.copied)
	}
}

// copyBucket copies the keys and nested buckets of src into the bucket at
// path (nil: the root) of the destination, which exists. With split, each
// key first makes room in the open transaction (committing it when it is
// full), and the destination bucket is found again by path after a
// commit; without, dst is that bucket in the one open transaction.
func (c *copier) copyBucket(src, dst *Bucket, path [][]byte, split bool) error {
	seen := c.commits // c.commits when dst was found
	cur := src.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if split {
			if err := c.room(len(k) + len(v)); err != nil {
				return err
			}
			if dst == nil || seen != c.commits {
				if dst = bucketAt(c.tx, path); dst == nil {
					return fmt.Errorf("quiver: Compact: bucket %q vanished from the destination", path)
				}
				dst.FillPercent = copyFillPercent
				seen = c.commits
			}
		}
		child := subBucket(src, k, v)
		if child == nil {
			if err := dst.Put(k, nonNil(v)); err != nil {
				return fmt.Errorf("quiver: Compact: key %q in bucket %q: %w", k, path, err)
			}
			c.count()
			continue
		}
		sub := append(path[:len(path):len(path)], k)
		if err := c.createCopy(dst, child, k); err != nil {
			return fmt.Errorf("quiver: Compact: bucket %q: %w", sub, err)
		}
		var next *Bucket // found by path when split
		if !split {
			next = dst.Bucket(k)
		}
		if err := c.copyBucket(child, next, sub, split); err != nil {
			return err
		}
	}
	return nil
}

// createCopy creates the bucket name in dst with src's sequence.
func (c *copier) createCopy(dst, src *Bucket, name []byte) error {
	nb, err := dst.CreateBucket(name)
	if err != nil {
		return err
	}
	nb.FillPercent = copyFillPercent
	if err := nb.SetSequence(src.Sequence()); err != nil {
		return err
	}
	c.count()
	return nil
}

// copyFillPercent fills the copy's pages: keys arrive in order, so full
// pages are never split again by the copy itself.
const copyFillPercent = 1.0

// subBucket returns the nested bucket of b at the cursor's k, v, or nil
// for a plain key.
func subBucket(b *Bucket, k, v []byte) *Bucket {
	if v != nil {
		return nil
	}
	return b.Bucket(k)
}

func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// bucketAt returns the bucket at path (nil: the root) of t, or nil.
func bucketAt(t *Tx, path [][]byte) *Bucket {
	b := tx.Root(t)
	for _, name := range path {
		if b = b.Bucket(name); b == nil {
			return nil
		}
	}
	return b
}
