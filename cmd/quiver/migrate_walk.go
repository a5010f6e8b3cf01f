package main

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// What a migration does with both engines' databases, written once: the
// walk that reads one, the digest that compares two, and the writer that
// fills one in bounded transactions. quiver keeps bbolt's API, so the walk
// and the writer are generic over the two engines' Tx, Bucket and Cursor
// types rather than written twice: the source and the copy are then hashed
// by the same code, and a mismatch cannot come from two walks that differ.

// cursorOf is what the walk needs of a cursor.
type cursorOf interface {
	First() (key, value []byte)
	Next() (key, value []byte)
}

// bucketOf is what a migration needs of a bucket: *quiver.Bucket and
// *bbolt.Bucket. comparable lets the walk compare a lookup with nil.
type bucketOf[B any, C cursorOf] interface {
	comparable
	Bucket(name []byte) B
	CreateBucket(name []byte) (B, error)
	Cursor() C
	Put(key, value []byte) error
	Sequence() uint64
	SetSequence(v uint64) error
}

// txOf is what a migration needs of a transaction: *quiver.Tx and
// *bbolt.Tx.
type txOf[B any] interface {
	Bucket(name []byte) B
	CreateBucket(name []byte) (B, error)
	ForEach(fn func(name []byte, b B) error) error
	Commit() error
	Rollback() error
}

// visitor receives a database's contents from walkTx, in order: each
// bucket as enter, its keys and nested buckets in key order, then leave.
// Slices are valid only during the call.
type visitor interface {
	enter(name []byte, sequence uint64) error
	key(k, v []byte) error
	leave() error
}

// walkTx visits every bucket, nested ones at any depth, and every key of
// the transaction t. A key without a value is visited with an empty one.
func walkTx[T txOf[B], B bucketOf[B, C], C cursorOf](t T, v visitor) error {
	return t.ForEach(func(name []byte, b B) error {
		var none B
		if b == none {
			// Neither engine's API puts a key in the root bucket; a
			// damaged file may show one.
			return fmt.Errorf("top-level key %s is not a bucket", showPath([][]byte{name}))
		}
		return walkBucket[B, C](name, b, v)
	})
}

func walkBucket[B bucketOf[B, C], C cursorOf](name []byte, b B, v visitor) error {
	if err := v.enter(name, b.Sequence()); err != nil {
		return err
	}
	var none B
	c := b.Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		if val == nil {
			if child := b.Bucket(k); child != none {
				if err := walkBucket[B, C](k, child, v); err != nil {
					return err
				}
				continue
			}
			val = []byte{}
		}
		if err := v.key(k, val); err != nil {
			return err
		}
	}
	return v.leave()
}

// digest counts and hashes what it visits. The hash is xxhash64 of a
// canonical stream that says where each bucket begins and ends, so that
// it depends on the tree, not only on the sequence of keys:
//
//	enter  'b' uvarint(len(name)) name sequence(8 bytes, big endian)
//	key    'k' uvarint(len(k)) k uvarint(len(v)) v
//	leave  'e'
type digest struct {
	h             *xxhash.Digest
	buckets, keys int
	buf           [1 + binary.MaxVarintLen64]byte
}

var _ visitor = (*digest)(nil)

func (d *digest) reset() {
	if d.h == nil {
		d.h = xxhash.New()
	}
	d.h.Reset()
	d.buckets, d.keys = 0, 0
}

func (d *digest) sum() uint64 {
	if d.h == nil {
		d.reset()
	}
	return d.h.Sum64()
}

// field hashes tag (0: none) and b with its length.
func (d *digest) field(tag byte, b []byte) {
	n := 0
	if tag != 0 {
		d.buf[0] = tag
		n = 1
	}
	n += binary.PutUvarint(d.buf[n:], uint64(len(b)))
	d.h.Write(d.buf[:n])
	d.h.Write(b)
}

func (d *digest) enter(name []byte, sequence uint64) error {
	d.field('b', name)
	d.h.Write(binary.BigEndian.AppendUint64(d.buf[:0], sequence))
	d.buckets++
	return nil
}

func (d *digest) key(k, v []byte) error {
	d.field('k', k)
	d.field(0, v)
	d.keys++
	return nil
}

func (d *digest) leave() error {
	d.h.Write([]byte{'e'})
	return nil
}

// counter counts keys and bucket names, for the progress line's total.
type counter struct{ items int }

func (c *counter) enter([]byte, uint64) error { c.items++; return nil }
func (c *counter) key([]byte, []byte) error   { c.items++; return nil }
func (c *counter) leave() error               { return nil }

// tee visits with a, then b.
type tee struct{ a, b visitor }

func (t tee) enter(name []byte, sequence uint64) error {
	return errors.Join(t.a.enter(name, sequence), t.b.enter(name, sequence))
}

func (t tee) key(k, v []byte) error { return errors.Join(t.a.key(k, v), t.b.key(k, v)) }
func (t tee) leave() error          { return errors.Join(t.a.leave(), t.b.leave()) }

// destTx is a write transaction of the database being written, positioned
// in a bucket: the buckets entered and not left form a path from the top.
type destTx interface {
	// create creates the bucket name with sequence in the current bucket
	// (at the top before any) and enters it.
	create(name []byte, sequence uint64) error
	// open enters the existing bucket name of the current bucket.
	open(name []byte) error
	// leave returns to the parent bucket.
	leave()
	// put sets key k to v in the current bucket.
	put(k, v []byte) error
	commit() error
	rollback()
}

// engineTx implements destTx for either engine.
type engineTx[T txOf[B], B bucketOf[B, C], C cursorOf] struct {
	tx   T
	path []B // the buckets entered, outermost first
}

func (t *engineTx[T, B, C]) create(name []byte, sequence uint64) error {
	var b B
	var err error
	if len(t.path) == 0 {
		b, err = t.tx.CreateBucket(name)
	} else {
		b, err = t.path[len(t.path)-1].CreateBucket(name)
	}
	if err != nil {
		return err
	}
	// An empty bucket with a sequence must keep it: both engines write
	// a bucket whose sequence was set even when it holds no key.
	if sequence != 0 {
		if err := b.SetSequence(sequence); err != nil {
			return err
		}
	}
	t.path = append(t.path, b)
	return nil
}

func (t *engineTx[T, B, C]) open(name []byte) error {
	var b, none B
	if len(t.path) == 0 {
		b = t.tx.Bucket(name)
	} else {
		b = t.path[len(t.path)-1].Bucket(name)
	}
	if b == none {
		return errors.New("a bucket copied in an earlier transaction is gone")
	}
	t.path = append(t.path, b)
	return nil
}

func (t *engineTx[T, B, C]) leave() { t.path = t.path[:len(t.path)-1] }

func (t *engineTx[T, B, C]) put(k, v []byte) error {
	return t.path[len(t.path)-1].Put(k, v)
}

func (t *engineTx[T, B, C]) commit() error { return t.tx.Commit() }
func (t *engineTx[T, B, C]) rollback()     { _ = t.tx.Rollback() }

// sink writes what it visits into a new database, in write transactions of
// about max bytes of names, keys and values; a larger item gets one of its
// own. After each commit it enters the current path again in the next
// transaction.
type sink struct {
	begin    func() (destTx, error)
	dstPath  string
	max      int64
	progress *progress

	tx    destTx   // nil before the first item and after end
	path  [][]byte // names of the buckets entered, copied
	size  int64    // bytes in the open transaction
	items int      // keys and bucket names written
}

var _ visitor = (*sink)(nil)

// room makes room for n more bytes in the open transaction: it begins one
// if there is none, and commits and begins the next when it is full.
func (s *sink) room(n int) error {
	if s.tx != nil && s.size > 0 && s.size+int64(n) > s.max {
		err := s.tx.commit()
		s.tx = nil
		if err != nil {
			return err
		}
	}
	if s.tx == nil {
		tx, err := s.begin()
		if err != nil {
			return err
		}
		s.tx, s.size = tx, 0
		for i, name := range s.path {
			if err := tx.open(name); err != nil {
				return fmt.Errorf("bucket %s: %w", showPath(s.path[:i+1]), err)
			}
		}
	}
	s.size += int64(n)
	return nil
}

// catch turns a panic of the engine writing DST into an error, so that
// run's report of an internal error names the file and the engine's
// transaction is still rolled back. It is deferred directly by each
// method that calls into the engine.
func (s *sink) catch(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: writing the copy panicked (please report): %v", s.dstPath, r)
	}
}

func (s *sink) enter(name []byte, sequence uint64) (err error) {
	defer s.catch(&err)
	// A bucket costs its name and its header (root and sequence).
	if err := s.room(len(name) + 16); err != nil {
		return err
	}
	s.path = append(s.path, append([]byte(nil), name...))
	if err := s.tx.create(name, sequence); err != nil {
		return fmt.Errorf("%s: bucket %s: %w", s.dstPath, showPath(s.path), err)
	}
	s.copied()
	return nil
}

func (s *sink) key(k, v []byte) (err error) {
	defer s.catch(&err)
	if err := s.room(len(k) + len(v)); err != nil {
		return err
	}
	if err := s.tx.put(k, v); err != nil {
		return fmt.Errorf("%s: %s: %w", s.dstPath, showPath(append(s.path[:len(s.path):len(s.path)], k)), err)
	}
	s.copied()
	return nil
}

func (s *sink) leave() error {
	s.path = s.path[:len(s.path)-1]
	if s.tx != nil {
		s.tx.leave()
	}
	return nil
}

func (s *sink) copied() {
	s.items++
	s.progress.update(s.items)
}

// end commits the open transaction if err is nil and rolls it back
// otherwise; it returns err or the commit's error.
func (s *sink) end(err error) (rerr error) {
	defer s.catch(&rerr)
	tx := s.tx
	s.tx = nil
	switch {
	case tx == nil:
		return err
	case err != nil:
		tx.rollback()
		return err
	}
	return tx.commit()
}
