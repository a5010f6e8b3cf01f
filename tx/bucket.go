package tx

import (
	"bytes"
	"encoding/binary"

	"github.com/quiverdb/quiver/page"
)

// Fill percent limits and default: when a node is split, pages are filled
// up to FillPercent of their size.
const (
	minFillPercent     = 0.1
	maxFillPercent     = 1.0
	DefaultFillPercent = 0.5
)

// Bucket is a collection of key/value pairs and nested buckets, ordered by
// key. A Bucket is valid for the life of its transaction.
type Bucket struct {
	tx     *Tx
	hdr    page.BucketHeader
	parent *Bucket // nil for the root bucket
	name   []byte  // name in parent

	// Writable transactions only.
	buckets  map[string]*Bucket  // sub-buckets opened in this tx
	rootNode *node               // materialised root
	nodes    map[page.Pgid]*node // materialised pages
	dirty    bool                // hdr changed (sequence)
	deleted  bool                // deleted in this tx (DeleteBucket)
	hdrBuf   [page.BucketHeaderSize]byte

	// FillPercent is how full split pages are filled (0.1 to 1.0). Set it
	// close to 1 for append-only loads. It is not persisted: set it in
	// every transaction that needs it.
	FillPercent float64
}

func (b *Bucket) init(t *Tx, hdr page.BucketHeader, parent *Bucket, name []byte) {
	*b = Bucket{tx: t, hdr: hdr, parent: parent, name: name, FillPercent: DefaultFillPercent}
}

// usable returns why the bucket cannot be used, if it cannot: its
// transaction ended (ErrTxClosed) or it was deleted (ErrBucketNotFound).
func (b *Bucket) usable() error {
	if b.tx.closed {
		return ErrTxClosed
	}
	if b.deleted {
		return ErrBucketNotFound
	}
	return nil
}

// checkWritable returns why the bucket cannot be changed, if it cannot.
func (b *Bucket) checkWritable() error {
	if err := b.tx.checkWritable(); err != nil {
		return err
	}
	if b.deleted {
		return ErrBucketNotFound
	}
	return nil
}

// release drops what the bucket references when its transaction ends. The
// bucket keeps its transaction, which stays closed, so that a handle kept
// past the end gets ErrTxClosed or nothing.
func (b *Bucket) release() {
	b.buckets = nil
	b.rootNode = nil
	b.nodes = nil
}

// encodeHeader writes hdr into hdrBuf, the value filed in the parent.
func (b *Bucket) encodeHeader() {
	binary.LittleEndian.PutUint64(b.hdrBuf[0:], uint64(b.hdr.Root))
	binary.LittleEndian.PutUint64(b.hdrBuf[8:], b.hdr.Sequence)
}

// Tx returns the bucket's transaction.
func (b *Bucket) Tx() *Tx { return b.tx }

// Root returns the root page of the bucket, 0 when it is empty.
func (b *Bucket) Root() page.Pgid { return b.hdr.Root }

// Writable reports whether the bucket can be changed.
func (b *Bucket) Writable() bool { return b.tx.writable }

// Cursor returns a cursor over the bucket, valid for the life of the
// transaction.
func (b *Bucket) Cursor() *Cursor {
	if b.tx != nil {
		b.tx.stats.CursorCount++
	}
	c := &Cursor{}
	c.init(b)
	return c
}

// Get returns the value of key, or nil if the key does not exist or is a
// bucket. The returned slice is valid until the transaction ends, and must
// not be changed.
func (b *Bucket) Get(key []byte) []byte {
	v, flags, found := b.lookup(key)
	if !found || flags&page.LeafBucket != 0 {
		return nil
	}
	return v
}

// Bucket returns the nested bucket name, or nil if it does not exist (or
// name is a key, or the transaction has ended).
func (b *Bucket) Bucket(name []byte) *Bucket {
	if b.buckets != nil {
		if child, ok := b.buckets[string(name)]; ok {
			return child
		}
	}
	v, flags, found := b.lookup(name)
	if !found || flags&page.LeafBucket == 0 {
		return nil
	}
	return b.openBucket(name, v)
}

func (b *Bucket) openBucket(name, value []byte) *Bucket {
	hdr, ok := page.DecodeBucketHeader(value)
	if !ok {
		b.tx.corrupt(page.Corruptf(0, "bucket %q has a malformed header", string(name)))
		return nil
	}
	child := b.tx.newBucket()
	// Only a writer needs the name (to file the header at commit); keeping
	// it out of read transactions lets callers' name slices stay on the
	// stack.
	var own []byte
	if b.tx.writable {
		own = b.tx.arena.clone(name)
	}
	child.init(b.tx, hdr, b, own)
	if b.tx.writable {
		if b.buckets == nil {
			b.buckets = make(map[string]*Bucket)
		}
		b.buckets[string(own)] = child
	}
	return child
}

// CreateBucket creates the nested bucket name and returns it. It returns
// ErrBucketExists if it exists, ErrIncompatibleValue if name is a key,
// ErrBucketNameRequired for an empty name, ErrKeyTooLarge for a name
// longer than MaxKeySize, ErrTxNotWritable in a read-only transaction and
// ErrTxClosed after the transaction ended.
func (b *Bucket) CreateBucket(name []byte) (*Bucket, error) {
	if err := b.checkWritable(); err != nil {
		return nil, err
	}
	if len(name) == 0 {
		return nil, ErrBucketNameRequired
	}
	if len(name) > MaxKeySize {
		return nil, ErrKeyTooLarge
	}
	var c Cursor
	c.init(b)
	k, _, flags := c.seek(name)
	if err := b.tx.err; err != nil {
		return nil, err
	}
	if bytes.Equal(k, name) {
		if flags&page.LeafBucket != 0 {
			return nil, ErrBucketExists
		}
		return nil, ErrIncompatibleValue
	}
	key := b.tx.arena.clone(name)
	n := c.node()
	if n == nil {
		return nil, b.tx.errOr(ErrCorrupt)
	}
	n.put(key, key, page.BucketHeader{}.Encode(), 0, page.LeafBucket)
	return b.Bucket(key), nil
}

// CreateBucketIfNotExists returns the nested bucket name, creating it if
// it does not exist; its errors are CreateBucket's.
func (b *Bucket) CreateBucketIfNotExists(name []byte) (*Bucket, error) {
	if err := b.checkWritable(); err != nil {
		return nil, err
	}
	if len(name) == 0 {
		return nil, ErrBucketNameRequired
	}
	if child := b.Bucket(name); child != nil {
		return child, nil
	}
	if err := b.tx.err; err != nil {
		return nil, err
	}
	return b.CreateBucket(name)
}

// DeleteBucket deletes the nested bucket name and everything in it. It
// returns ErrBucketNotFound if there is no such bucket (an empty name
// included, as in bbolt), ErrIncompatibleValue if name is a key.
func (b *Bucket) DeleteBucket(name []byte) error {
	if err := b.checkWritable(); err != nil {
		return err
	}
	var c Cursor
	child, err := b.seekChild(&c, name)
	if err != nil {
		return err
	}
	// Free every page of the child and of its descendants.
	if err := child.freeAll(); err != nil {
		return err
	}
	n := c.node()
	if n == nil {
		return b.tx.errOr(ErrCorrupt)
	}
	delete(b.buckets, string(name))
	n.del(name)
	return nil
}

// seekChild positions c on the nested bucket name of b and opens it. It
// returns ErrBucketNotFound if there is no such bucket (an empty name
// included) and ErrIncompatibleValue if name is a key.
func (b *Bucket) seekChild(c *Cursor, name []byte) (*Bucket, error) {
	if len(name) == 0 {
		return nil, ErrBucketNotFound
	}
	c.init(b)
	k, _, flags := c.seek(name)
	if err := b.tx.err; err != nil {
		return nil, err
	}
	if !bytes.Equal(k, name) {
		return nil, ErrBucketNotFound
	}
	if flags&page.LeafBucket == 0 {
		return nil, ErrIncompatibleValue
	}
	child := b.Bucket(name)
	if child == nil {
		return nil, b.tx.errOr(ErrBucketNotFound)
	}
	return child, nil
}

// freeAll frees every page of the bucket and its nested buckets.
func (b *Bucket) freeAll() error {
	if err := b.ForEachBucket(func(name []byte) error {
		child := b.Bucket(name)
		if child == nil {
			return b.tx.errOr(ErrBucketNotFound)
		}
		return child.freeAll()
	}); err != nil {
		return err
	}
	if b.hdr.Root != 0 {
		b.tx.forEachPage(b.hdr.Root, func(p []byte, id page.Pgid) {
			b.tx.free(id, p)
		})
	}
	// Nodes materialised in this tx were new or already freed above.
	// Handles and cursors of the bucket now get ErrBucketNotFound.
	b.release()
	b.hdr.Root = 0
	b.deleted = true
	return b.tx.err
}

// Put sets key to value, replacing any value it had. The key and value are
// copied, so the caller may reuse them. It returns ErrKeyRequired for an
// empty key, ErrKeyTooLarge and ErrValueTooLarge above MaxKeySize and
// MaxValueSize, ErrIncompatibleValue if key names a nested bucket,
// ErrTxNotWritable in a read-only transaction, ErrTxClosed after the
// transaction ended and ErrBucketNotFound if the bucket was deleted.
func (b *Bucket) Put(key, value []byte) error {
	if err := b.checkWritable(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrKeyRequired
	}
	if len(key) > MaxKeySize {
		return ErrKeyTooLarge
	}
	if int64(len(value)) > MaxValueSize {
		return ErrValueTooLarge
	}
	var c Cursor
	c.init(b)
	k, _, flags := c.seek(key)
	if err := b.tx.err; err != nil {
		return err
	}
	if bytes.Equal(k, key) && flags&page.LeafBucket != 0 {
		return ErrIncompatibleValue
	}
	n := c.node()
	if n == nil {
		return b.tx.errOr(ErrCorrupt)
	}
	kc := b.tx.arena.clone(key)
	vc := b.tx.arena.clone(value)
	n.put(kc, kc, vc, 0, 0)
	return nil
}

// Delete removes key. Deleting a missing key is not an error; deleting a
// nested bucket's name returns ErrIncompatibleValue (use DeleteBucket).
// Its other errors are Put's.
func (b *Bucket) Delete(key []byte) error {
	if err := b.checkWritable(); err != nil {
		return err
	}
	var c Cursor
	c.init(b)
	k, _, flags := c.seek(key)
	if err := b.tx.err; err != nil {
		return err
	}
	if !bytes.Equal(k, key) {
		return nil
	}
	if flags&page.LeafBucket != 0 {
		return ErrIncompatibleValue
	}
	n := c.node()
	if n == nil {
		return b.tx.errOr(ErrCorrupt)
	}
	n.del(key)
	return nil
}

// Sequence returns the bucket's current sequence.
func (b *Bucket) Sequence() uint64 { return b.hdr.Sequence }

// SetSequence sets the bucket's sequence (see NextSequence).
func (b *Bucket) SetSequence(v uint64) error {
	if err := b.checkWritable(); err != nil {
		return err
	}
	b.materializeRoot()
	b.hdr.Sequence = v
	b.dirty = true
	return nil
}

// NextSequence increments the bucket's sequence and returns it: an
// autoincrementing integer for keys, persisted with the bucket. It returns
// ErrSequenceOverflow at the largest uint64, and Put's transaction errors.
func (b *Bucket) NextSequence() (uint64, error) {
	if err := b.checkWritable(); err != nil {
		return 0, err
	}
	if b.hdr.Sequence == ^uint64(0) {
		return 0, ErrSequenceOverflow
	}
	b.materializeRoot()
	b.hdr.Sequence++
	b.dirty = true
	return b.hdr.Sequence, nil
}

// materializeRoot makes sure the bucket is written at commit.
func (b *Bucket) materializeRoot() {
	if b.rootNode == nil {
		b.node(b.hdr.Root, nil)
	}
}

// ForEach calls fn for every key of the bucket in order; v is nil for
// nested buckets. fn must not change the bucket. An error from fn stops the
// iteration and is returned.
func (b *Bucket) ForEach(fn func(k, v []byte) error) error {
	if err := b.usable(); err != nil {
		return err
	}
	c := Cursor{}
	c.init(b)
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	if err := b.usable(); err != nil {
		return err // fn ended the transaction or deleted the bucket
	}
	return b.tx.err
}

// ForEachBucket calls fn for the name of every nested bucket, in order.
func (b *Bucket) ForEachBucket(fn func(k []byte) error) error {
	if err := b.usable(); err != nil {
		return err
	}
	c := Cursor{}
	c.init(b)
	for k, _, flags := c.first(); k != nil; k, _, flags = c.next() {
		if flags&page.LeafBucket != 0 {
			if err := fn(k); err != nil {
				return err
			}
		}
	}
	return b.tx.err
}

// node returns the node of page id, materialising it on first use.
func (b *Bucket) node(id page.Pgid, parent *node) *node {
	if b.nodes == nil {
		b.nodes = make(map[page.Pgid]*node)
	}
	if id == 0 && parent == nil && b.rootNode != nil {
		return b.rootNode
	}
	if id != 0 {
		if n, ok := b.nodes[id]; ok {
			return n
		}
	}
	n := &node{bucket: b, parent: parent, leaf: true}
	if parent == nil {
		b.rootNode = n
	} else {
		parent.children = append(parent.children, n)
	}
	if id == 0 {
		// An empty bucket: a new, empty root leaf.
		return n
	}
	if p := b.tx.page(id); p != nil {
		// A page about to be rewritten is verified whole, so that a commit
		// never carries undetected damage into new pages.
		err := page.Verify(p, id, b.tx.pageSize)
		if err == nil {
			err = n.read(p, id)
		}
		if err != nil {
			b.tx.corrupt(err)
			n.inodes = nil
		}
	}
	b.nodes[id] = n
	return n
}
