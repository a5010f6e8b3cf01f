package bbolt

import (
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

// Commit writes the transaction's changes and makes them durable.
func (tx *Tx) Commit() error { return tx.tx.Commit() }

// Rollback ends the transaction, discarding its changes.
func (tx *Tx) Rollback() error { return tx.tx.Rollback() }

// Copy writes the database to w.
//
// Deprecated: use WriteTo, as bbolt says.
func (tx *Tx) Copy(w io.Writer) error {
	_, err := tx.WriteTo(w)
	return err
}

// WriteTo writes a consistent copy of the database (quiver's format) to w.
func (tx *Tx) WriteTo(w io.Writer) (int64, error) { return tx.tx.WriteTo(w) }

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
