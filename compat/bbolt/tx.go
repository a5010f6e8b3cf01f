package bbolt

import (
	"fmt"
	"io"
	"os"

	"github.com/quiverdb/quiver"
	"go.etcd.io/bbolt/internal/common"
)

// Tx is a transaction: a wrapper of quiver's that knows its *DB.
type Tx struct {
	// WriteFlag is accepted for bbolt's sake: WriteTo copies from quiver's
	// mapping and opens no file.
	WriteFlag int

	db *DB
	tx *quiver.Tx
	// managed: the transaction of an Update, View or Batch, which ends it.
	managed bool
}

// wrapBucket wraps b, keeping nil nil.
func (tx *Tx) wrapBucket(b *quiver.Bucket) *Bucket {
	if b == nil {
		return nil
	}
	return &Bucket{b: b, tx: tx, FillPercent: b.FillPercent}
}

// unwrap returns the quiver bucket of b (nil for nil).
func unwrap(b *Bucket) *quiver.Bucket {
	if b == nil {
		return nil
	}
	return b.b
}

// ID returns the transaction id.
func (tx *Tx) ID() int { return tx.tx.ID() }

// DB returns the transaction's database.
func (tx *Tx) DB() *DB { return tx.db }

// Size returns the database size in bytes as the transaction sees it.
func (tx *Tx) Size() int64 { return tx.tx.Size() }

// Writable reports whether the transaction may write.
func (tx *Tx) Writable() bool { return tx.tx.Writable() }

// Cursor returns a cursor over the top-level buckets' names.
func (tx *Tx) Cursor() *Cursor {
	return &Cursor{c: tx.tx.Cursor(), b: &Bucket{b: quiver.RootBucket(tx.tx), tx: tx}}
}

// Stats returns the transaction's counters.
func (tx *Tx) Stats() TxStats { return tx.tx.Stats() }

// Inspect returns the structure of every bucket.
func (tx *Tx) Inspect() BucketStructure { return tx.tx.Inspect() }

// Bucket returns the top-level bucket name, or nil.
func (tx *Tx) Bucket(name []byte) *Bucket { return tx.wrapBucket(tx.tx.Bucket(name)) }

// CreateBucket creates the top-level bucket name.
func (tx *Tx) CreateBucket(name []byte) (*Bucket, error) {
	b, err := tx.tx.CreateBucket(name)
	return tx.wrapBucket(b), err
}

// CreateBucketIfNotExists returns the top-level bucket name, creating it
// if needed.
func (tx *Tx) CreateBucketIfNotExists(name []byte) (*Bucket, error) {
	b, err := tx.tx.CreateBucketIfNotExists(name)
	return tx.wrapBucket(b), err
}

// DeleteBucket deletes the top-level bucket name.
func (tx *Tx) DeleteBucket(name []byte) error { return tx.tx.DeleteBucket(name) }

// MoveBucket moves bucket child from src to dst (nil: the root).
func (tx *Tx) MoveBucket(child []byte, src *Bucket, dst *Bucket) error {
	return tx.tx.MoveBucket(child, unwrap(src), unwrap(dst))
}

// ForEach calls fn for each top-level bucket.
func (tx *Tx) ForEach(fn func(name []byte, b *Bucket) error) error {
	return tx.tx.ForEach(func(name []byte, b *quiver.Bucket) error { return fn(name, tx.wrapBucket(b)) })
}

// OnCommit registers fn to run after a successful commit.
func (tx *Tx) OnCommit(fn func()) { tx.tx.OnCommit(fn) }

// Commit writes the transaction's changes and makes them durable. As in
// bbolt, it panics in the function of an Update, View or Batch, which
// commits or rolls back itself (quiver returns ErrTxManaged instead).
func (tx *Tx) Commit() error {
	if tx.managed {
		panic("managed tx commit not allowed")
	}
	return tx.tx.Commit()
}

// Rollback ends the transaction, discarding its changes; it panics, as
// Commit does, in the function of an Update, View or Batch.
func (tx *Tx) Rollback() error {
	if tx.managed {
		panic("managed tx rollback not allowed")
	}
	return tx.tx.Rollback()
}

// Copy writes the database to w.
//
// Deprecated: use WriteTo, as bbolt says.
func (tx *Tx) Copy(w io.Writer) error {
	_, err := tx.WriteTo(w)
	return err
}

// WriteTo writes a consistent copy of the database (quiver's format) to w.
// A write error in one of the two meta pages the copy starts with is
// wrapped as bbolt's, "meta N copy: ...".
func (tx *Tx) WriteTo(w io.Writer) (int64, error) {
	cw := &copyWriter{w: w}
	n, err := tx.tx.WriteTo(cw)
	if info := tx.db.Info(); err != nil && err == cw.err && info != nil {
		if ps := int64(info.PageSize); n < 2*ps {
			err = fmt.Errorf("meta %d copy: %w", n/ps, err)
		}
	}
	return n, err
}

// copyWriter keeps the error of the writer a copy goes to, so that WriteTo
// tells it from quiver's own.
type copyWriter struct {
	w   io.Writer
	err error
}

func (c *copyWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// CopyFile writes a copy of the database to the file at path.
func (tx *Tx) CopyFile(path string, mode os.FileMode) error { return tx.tx.CopyFile(path, mode) }

// Check checks the database's consistency, sending each problem found.
func (tx *Tx) Check(options ...CheckOption) <-chan error { return tx.tx.Check(options...) }

// Page describes page id.
func (tx *Tx) Page(id int) (*common.PageInfo, error) {
	p, err := tx.tx.Page(id)
	if err != nil || p == nil {
		return nil, err
	}
	return &common.PageInfo{ID: p.ID, Type: p.Type, Count: p.Count, OverflowCount: p.OverflowCount}, nil
}
