package bbolt

import (
	"github.com/quiverdb/quiver"
	"go.etcd.io/bbolt/internal/common"
)

// Bucket is a bucket: a wrapper of quiver's that knows its *Tx.
type Bucket struct {
	b  *quiver.Bucket
	tx *Tx

	// FillPercent is how full split pages are filled; set it close to 1
	// for appends. It applies to the writes made through this handle.
	FillPercent float64
}

// fill passes FillPercent to quiver before a write.
func (b *Bucket) fill() *quiver.Bucket {
	b.b.FillPercent = b.FillPercent
	return b.b
}

// Tx returns the bucket's transaction.
func (b *Bucket) Tx() *Tx { return b.tx }

// RootPage returns the bucket's root page id (0 for a bucket without
// pages).
func (b *Bucket) RootPage() common.Pgid { return common.Pgid(b.b.Root()) }

// Root returns the bucket's root page id.
//
// Deprecated: use RootPage, as bbolt says.
func (b *Bucket) Root() common.Pgid { return b.RootPage() }

// Writable reports whether the bucket may be changed.
func (b *Bucket) Writable() bool { return b.b.Writable() }

// Cursor returns a cursor over the bucket.
func (b *Bucket) Cursor() *Cursor { return &Cursor{c: b.b.Cursor(), b: b} }

// Bucket returns the nested bucket name, or nil.
func (b *Bucket) Bucket(name []byte) *Bucket { return b.tx.wrapBucket(b.b.Bucket(name)) }

// CreateBucket creates the nested bucket name.
func (b *Bucket) CreateBucket(key []byte) (*Bucket, error) {
	c, err := b.b.CreateBucket(key)
	return b.tx.wrapBucket(c), err
}

// CreateBucketIfNotExists returns the nested bucket name, creating it if
// needed.
func (b *Bucket) CreateBucketIfNotExists(key []byte) (*Bucket, error) {
	c, err := b.b.CreateBucketIfNotExists(key)
	return b.tx.wrapBucket(c), err
}

// DeleteBucket deletes the nested bucket key.
func (b *Bucket) DeleteBucket(key []byte) error { return b.b.DeleteBucket(key) }

// MoveBucket moves the nested bucket key into dst.
func (b *Bucket) MoveBucket(key []byte, dst *Bucket) error { return b.b.MoveBucket(key, unwrap(dst)) }

// Inspect returns the bucket's structure.
func (b *Bucket) Inspect() BucketStructure { return b.b.Inspect() }

// Get returns key's value, nil if absent or a bucket.
func (b *Bucket) Get(key []byte) []byte { return b.b.Get(key) }

// Put sets key to value.
func (b *Bucket) Put(key []byte, value []byte) error { return b.fill().Put(key, value) }

// Delete removes key.
func (b *Bucket) Delete(key []byte) error { return b.fill().Delete(key) }

// Sequence returns the bucket's sequence.
func (b *Bucket) Sequence() uint64 { return b.b.Sequence() }

// SetSequence sets the bucket's sequence.
func (b *Bucket) SetSequence(v uint64) error { return b.b.SetSequence(v) }

// NextSequence increments the sequence and returns it.
func (b *Bucket) NextSequence() (uint64, error) { return b.b.NextSequence() }

// ForEach calls fn for each key, a nested bucket's with a nil value.
func (b *Bucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }

// ForEachBucket calls fn for each nested bucket's name.
func (b *Bucket) ForEachBucket(fn func(k []byte) error) error { return b.b.ForEachBucket(fn) }

// Stats returns the bucket's page and key counts.
func (b *Bucket) Stats() BucketStats {
	s := b.b.Stats()
	return BucketStats{
		BranchPageN:     s.BranchPageN,
		BranchOverflowN: s.BranchOverflowN,
		LeafPageN:       s.LeafPageN,
		LeafOverflowN:   s.LeafOverflowN,
		KeyN:            s.KeyN,
		Depth:           s.Depth,
		BranchAlloc:     s.BranchAlloc,
		BranchInuse:     s.BranchInuse,
		LeafAlloc:       s.LeafAlloc,
		LeafInuse:       s.LeafInuse,
		BucketN:         s.BucketN,
		InlineBucketN:   s.EmptyBucketN,
	}
}

// BucketStats are bbolt's bucket counts. quiver stores no bucket inline in
// its parent's leaf: what comes closest is a bucket without pages, which
// InlineBucketN counts; it takes no bytes, so InlineBucketInuse is 0.
type BucketStats struct {
	BranchPageN       int // branch pages
	BranchOverflowN   int // extra pages of branch spans
	LeafPageN         int // leaf pages
	LeafOverflowN     int // extra pages of leaf spans
	KeyN              int // keys, nested bucket names included
	Depth             int // levels of the deepest tree
	BranchAlloc       int // bytes of branch pages
	BranchInuse       int // bytes used in branch pages
	LeafAlloc         int // bytes of leaf pages
	LeafInuse         int // bytes used in leaf pages
	BucketN           int // buckets, this one included
	InlineBucketN     int // buckets without pages
	InlineBucketInuse int // always 0: see above
}

// Add accumulates other into s.
func (s *BucketStats) Add(other BucketStats) {
	s.BranchPageN += other.BranchPageN
	s.BranchOverflowN += other.BranchOverflowN
	s.LeafPageN += other.LeafPageN
	s.LeafOverflowN += other.LeafOverflowN
	s.KeyN += other.KeyN
	s.Depth = max(s.Depth, other.Depth)
	s.BranchAlloc += other.BranchAlloc
	s.BranchInuse += other.BranchInuse
	s.LeafAlloc += other.LeafAlloc
	s.LeafInuse += other.LeafInuse
	s.BucketN += other.BucketN
	s.InlineBucketN += other.InlineBucketN
	s.InlineBucketInuse += other.InlineBucketInuse
}
