package tx

import (
	"bytes"
	"fmt"

	"github.com/quiverdb/quiver/page"
)

// MoveBucket moves the nested bucket name, with everything in it, from b
// into dst: only its header changes parent, none of its pages is copied.
// It returns ErrBucketNotFound if b has no bucket name (ErrIncompatibleValue
// if name is a key there), ErrBucketExists if dst has one (and
// ErrIncompatibleValue if dst has a key name), ErrSameBuckets if dst is b,
// ErrDifferentDB if dst belongs to another write transaction (one that
// cannot be written is refused first, with ErrTxNotWritable or ErrTxClosed,
// as in bbolt), and ErrIncompatibleValue if dst is the bucket itself or
// inside it.
func (b *Bucket) MoveBucket(name []byte, dst *Bucket) error {
	if err := b.checkWritable(); err != nil {
		return err
	}
	if dst == nil {
		return ErrBucketNotFound
	}
	// As in bbolt, a destination that cannot be written is refused as
	// such before it is found to be another transaction's.
	if err := dst.checkWritable(); err != nil {
		return err
	}
	if dst.tx != b.tx {
		return ErrDifferentDB
	}
	if dst == b {
		return ErrSameBuckets
	}
	var src Cursor
	child, err := b.seekChild(&src, name)
	if err != nil {
		return err
	}
	for p := dst; p != nil; p = p.parent {
		if p == child {
			return fmt.Errorf("%w: a bucket cannot move into itself", ErrIncompatibleValue)
		}
	}
	var to Cursor
	to.init(dst)
	k, _, flags := to.seek(name)
	if err := b.tx.err; err != nil {
		return err
	}
	if bytes.Equal(k, name) {
		if flags&page.LeafBucket != 0 {
			return ErrBucketExists
		}
		return ErrIncompatibleValue
	}
	from, into := src.node(), to.node()
	if from == nil || into == nil {
		return b.tx.errOr(ErrCorrupt)
	}
	key := b.tx.arena.clone(name)
	// The header filed now is the committed one; a child changed in this
	// transaction files its new one at commit, under dst.
	into.put(key, key, child.hdr.Encode(), 0, page.LeafBucket)
	from.del(name)
	delete(b.buckets, string(name))
	child.parent, child.name = dst, key
	if dst.buckets == nil {
		dst.buckets = make(map[string]*Bucket)
	}
	dst.buckets[string(key)] = child
	return nil
}

// MoveBucket moves the bucket name from src to dst, as Bucket.MoveBucket;
// a nil src or dst is the transaction's root (its top-level buckets).
func (t *Tx) MoveBucket(name []byte, src, dst *Bucket) error {
	if src == nil {
		src = &t.root
	}
	if dst == nil {
		dst = &t.root
	}
	return src.MoveBucket(name, dst)
}

// BucketStructure is the tree of a bucket's nested buckets with their
// key counts (bbolt's Inspect).
type BucketStructure struct {
	Name     string            `json:"name"`              // the bucket's name
	KeyN     int               `json:"keyN"`              // keys, nested buckets not counted
	Children []BucketStructure `json:"buckets,omitempty"` // nested buckets
}

// Inspect returns the bucket's structure: its key count and its nested
// buckets', recursively. As in bbolt, the bucket it is called on is named
// "root" (a read transaction does not keep bucket names).
func (b *Bucket) Inspect() BucketStructure {
	s := BucketStructure{Name: "root"}
	b.inspect(&s, 0)
	return s
}

func (b *Bucket) inspect(s *BucketStructure, nesting int) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			s.KeyN++
			continue
		}
		child := b.Bucket(k)
		if child == nil || nesting >= maxNesting {
			continue
		}
		cs := BucketStructure{Name: string(k)}
		child.inspect(&cs, nesting+1)
		s.Children = append(s.Children, cs)
	}
}

// Inspect returns the structure of every bucket, under a root named
// "root".
func (t *Tx) Inspect() BucketStructure { return t.root.Inspect() }
