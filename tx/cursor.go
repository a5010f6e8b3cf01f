package tx

import (
	"bytes"
	"sort"

	"github.com/quiverdb/quiver/page"
)

// Cursor iterates over a bucket's keys in order. Keys and values it returns
// are valid until the transaction ends. A cursor over a writable bucket sees
// the transaction's own changes; changing the bucket other than through
// Cursor.Delete invalidates the cursor's position.
type Cursor struct {
	bucket *Bucket
	depth  int // elements of stack in use
	// deleted: Delete removed the element at the position; the element
	// after it now sits there, and Next must return it without advancing.
	deleted bool
	// A fixed array rather than a slice into itself, so that a Cursor
	// declared in a function (Put, Delete) stays on the stack.
	stack [maxDepth]elemRef
}

// elemRef is a position in a page or a materialised node.
type elemRef struct {
	page  []byte
	node  *node
	index int
}

func (r *elemRef) count() int {
	if r.node != nil {
		return len(r.node.inodes)
	}
	return page.Count(r.page)
}

func (r *elemRef) id() page.Pgid {
	if r.node != nil {
		return r.node.pgid
	}
	return page.ID(r.page)
}

func (r *elemRef) isLeaf() bool {
	if r.node != nil {
		return r.node.leaf
	}
	return page.Flags(r.page) == page.FlagLeaf
}

func (c *Cursor) init(b *Bucket) {
	c.bucket = b
	c.depth = 0
	c.deleted = false
}

// gone reports whether the cursor's transaction ended or its bucket was
// deleted: it then moves nowhere.
func (c *Cursor) gone() bool { return c.bucket.usable() != nil }

// Bucket returns the bucket the cursor was created from.
func (c *Cursor) Bucket() *Bucket { return c.bucket }

// First moves the cursor to the first key and returns it with its value,
// or nil, nil if the bucket is empty. The value is nil for a nested bucket.
func (c *Cursor) First() (key, value []byte) {
	k, v, flags := c.first()
	return c.out(k, v, flags)
}

// Last moves the cursor to the last key and returns it with its value, or
// nil, nil if the bucket is empty.
func (c *Cursor) Last() (key, value []byte) {
	if c.gone() {
		return nil, nil
	}
	c.toLast()
	k, v, flags := c.current()
	return c.out(k, v, flags)
}

// Next moves the cursor to the next key and returns it with its value. At
// the end it returns nil, nil and the cursor stays on the last key, so that
// Prev returns the one before it (as in bbolt); after a Seek past the end
// it stays past the last key. After Delete, Next returns the key that
// followed the deleted one. An unpositioned cursor returns nil, nil.
func (c *Cursor) Next() (key, value []byte) {
	if c.gone() {
		return nil, nil
	}
	if c.deleted {
		// The element after the deleted one sits at the position: it is
		// the next one. When the deleted one ended its leaf, advance from
		// there; at the end of the bucket the cursor stays past the last
		// element, so that Prev returns it.
		c.deleted = false
		if r := c.top(); r != nil && r.index < r.count() {
			k, v, flags := c.current()
			return c.out(k, v, flags)
		}
		k, v, flags := c.next()
		return c.out(k, v, flags)
	}
	// Fast path: the next element of the same leaf page.
	if c.depth > 0 {
		if r := &c.stack[c.depth-1]; r.page != nil && r.index+1 < page.Count(r.page) && page.Flags(r.page) == page.FlagLeaf {
			if flags, k, v, ok := page.LeafElem(r.page, r.index+1); ok {
				r.index++
				return c.out(k, v, flags)
			}
		}
	}
	k, v, flags := c.next()
	return c.out(k, v, flags)
}

// Prev moves the cursor to the previous key and returns it with its value.
// Before the first key it returns nil, nil and the cursor stays on the
// first key, so that Next returns the one after it (as in bbolt).
func (c *Cursor) Prev() (key, value []byte) {
	if c.gone() {
		return nil, nil
	}
	// After a Delete the position holds the element after the deleted
	// one; stepping back from it lands on the one before, as wanted.
	c.deleted = false
	k, v, flags := c.prev()
	return c.out(k, v, flags)
}

// Seek moves the cursor to the key seek, or to the first key after it if
// it does not exist, and returns it with its value; nil, nil if there is
// none.
func (c *Cursor) Seek(seek []byte) (key, value []byte) {
	if c.gone() {
		return nil, nil
	}
	k, v, flags := c.seek(seek)
	if k == nil {
		// Past the end of this leaf: move to the next. Past the end of
		// the bucket, the cursor stays past the last element.
		if r := c.top(); r != nil && r.index >= r.count() {
			k, v, flags, _, _ = c.stepNext()
		}
	}
	return c.out(k, v, flags)
}

// Delete removes the key the cursor is on from the bucket; the cursor
// stays between its neighbours, so Next and Prev return them. It returns
// ErrIncompatibleValue on a nested bucket, ErrTxNotWritable in a read-only
// transaction, ErrTxClosed after the transaction ended and
// ErrBucketNotFound if the bucket was deleted.
func (c *Cursor) Delete() error {
	t := c.bucket.tx
	if err := c.bucket.checkWritable(); err != nil {
		return err
	}
	k, _, flags := c.current()
	if k == nil {
		return nil
	}
	if flags&page.LeafBucket != 0 {
		return ErrIncompatibleValue
	}
	n := c.node()
	if n == nil {
		return t.errOr(ErrCorrupt)
	}
	n.del(k)
	c.deleted = true
	return nil
}

func (c *Cursor) out(k, v []byte, flags uint8) ([]byte, []byte) {
	if k == nil {
		return nil, nil
	}
	if flags&page.LeafBucket != 0 {
		return k, nil
	}
	return k, v
}

func (c *Cursor) top() *elemRef {
	if c.depth == 0 {
		return nil
	}
	return &c.stack[c.depth-1]
}

// pushRoot pushes the bucket's root; false for an empty bucket.
func (c *Cursor) pushRoot() bool {
	b := c.bucket
	if b.rootNode != nil {
		c.stack[0] = elemRef{node: b.rootNode}
		c.depth = 1
		return true
	}
	if b.hdr.Root == 0 {
		return false
	}
	return c.push(b.hdr.Root)
}

// push pushes page id, or its node if materialised.
func (c *Cursor) push(id page.Pgid) bool {
	if c.depth >= maxDepth {
		c.bucket.tx.corrupt(page.Corruptf(id, "tree deeper than %d levels", maxDepth))
		return false
	}
	r, ok := c.bucket.ref(id)
	if ok {
		c.stack[c.depth] = r
		c.depth++
	}
	return ok
}

// ref returns a reference to page id, or to its node if materialised.
func (b *Bucket) ref(id page.Pgid) (elemRef, bool) {
	if b.nodes != nil {
		if n, ok := b.nodes[id]; ok {
			return elemRef{node: n}, true
		}
	}
	p := b.tx.page(id)
	if p == nil {
		return elemRef{}, false
	}
	if f := page.Flags(p); f != page.FlagLeaf && f != page.FlagBranch {
		b.tx.corrupt(page.Corruptf(id, "expected a branch or leaf page, found a %s page", page.FlagName(f)))
		return elemRef{}, false
	}
	return elemRef{page: p}, true
}

// child returns the page id of the child at the top branch ref's index.
func (c *Cursor) child() (page.Pgid, bool) {
	return c.bucket.childID(c.top())
}

// childID returns the page id of the child at branch ref r's index.
func (b *Bucket) childID(r *elemRef) (page.Pgid, bool) {
	if r.node != nil {
		return r.node.inodes[r.index].pgid, true
	}
	id, _, ok := page.BranchElem(r.page, r.index)
	if !ok {
		b.tx.corrupt(page.Corruptf(r.id(), "branch element %d out of bounds", r.index))
	}
	return id, ok
}

// first descends to the first leaf element under the top of the stack.
func (c *Cursor) firstLeaf() bool {
	for {
		r := c.top()
		if r.isLeaf() {
			return true
		}
		if r.count() == 0 {
			c.bucket.tx.corrupt(page.Corruptf(r.id(), "empty branch page"))
			return false
		}
		id, ok := c.child()
		if !ok || !c.push(id) {
			return false
		}
	}
}

func (c *Cursor) last() bool {
	for {
		r := c.top()
		r.index = r.count() - 1
		if r.isLeaf() {
			return true
		}
		if r.index < 0 {
			c.bucket.tx.corrupt(page.Corruptf(r.id(), "empty branch page"))
			return false
		}
		id, ok := c.child()
		if !ok || !c.push(id) {
			return false
		}
	}
}

func (c *Cursor) first() ([]byte, []byte, uint8) {
	if c.gone() {
		return nil, nil, 0
	}
	c.toFirst()
	return c.current()
}

// toFirst positions the cursor on the first element, past leaves emptied
// in the transaction (on an empty leaf when the bucket has no keys).
func (c *Cursor) toFirst() {
	c.depth = 0
	c.deleted = false
	if !c.pushRoot() || !c.firstLeaf() {
		return
	}
	if c.top().count() == 0 {
		c.stepNext()
	}
}

// toLast positions the cursor on the last element, before leaves emptied
// in the transaction (on an empty leaf when the bucket has no keys).
func (c *Cursor) toLast() {
	c.depth = 0
	c.deleted = false
	if !c.pushRoot() || !c.last() {
		return
	}
	if c.top().count() == 0 {
		c.stepPrev()
	}
}

// next moves to the next leaf element, skipping empty leaves. At the end
// the cursor stays where it was, on the last element (or past it after a
// Seek past the end), so that Prev returns the one before, as bbolt's
// cursor does; if it had walked into empty leaves after the last element,
// it goes back to that element.
func (c *Cursor) next() ([]byte, []byte, uint8) {
	k, v, flags, ok, moved := c.stepNext()
	if !ok && moved {
		c.toLast()
	}
	return k, v, flags
}

// stepNext moves to the next leaf element; ok is false at the end, and
// moved tells whether the cursor left its leaf on the way there.
func (c *Cursor) stepNext() (k, v []byte, flags uint8, ok, moved bool) {
	for {
		// Pop finished levels.
		i := c.depth - 1
		for ; i >= 0; i-- {
			r := &c.stack[i]
			if r.index < r.count()-1 {
				r.index++
				break
			}
		}
		if i < 0 {
			return nil, nil, 0, false, moved
		}
		c.depth = i + 1
		if !c.firstLeaf() {
			return nil, nil, 0, true, moved // damaged: the error is recorded
		}
		moved = moved || i < c.depth-1
		if c.top().count() > 0 {
			k, v, flags = c.current()
			return k, v, flags, true, moved
		}
	}
}

// prev moves to the previous leaf element, skipping empty leaves. Before
// the first the cursor stays on the first element, so that Next returns
// the one after it, as bbolt's cursor does.
func (c *Cursor) prev() ([]byte, []byte, uint8) {
	if c.depth == 0 {
		return nil, nil, 0 // not positioned (or an empty bucket)
	}
	k, v, flags, ok := c.stepPrev()
	if !ok {
		// Skipping empty leaves may have moved it: position it again.
		c.toFirst()
	}
	return k, v, flags
}

// stepPrev moves to the previous leaf element; ok is false before the
// first.
func (c *Cursor) stepPrev() (k, v []byte, flags uint8, ok bool) {
	for {
		i := c.depth - 1
		for ; i >= 0; i-- {
			r := &c.stack[i]
			if r.index > 0 {
				r.index--
				break
			}
		}
		if i < 0 {
			return nil, nil, 0, false
		}
		c.depth = i + 1
		if !c.top().isLeaf() {
			id, ok := c.child()
			if !ok || !c.push(id) || !c.last() {
				return nil, nil, 0, true // damaged: the error is recorded
			}
		}
		if c.top().count() > 0 {
			k, v, flags = c.current()
			return k, v, flags, true
		}
	}
}

// seek positions the cursor at the first leaf element >= key.
func (c *Cursor) seek(key []byte) ([]byte, []byte, uint8) {
	if c.gone() {
		return nil, nil, 0
	}
	c.depth = 0
	c.deleted = false
	if !c.pushRoot() {
		return nil, nil, 0
	}
	for {
		r := c.top()
		if r.isLeaf() {
			searchLeaf(r, key)
			return c.current()
		}
		if !c.bucket.searchBranch(r, key) {
			return nil, nil, 0
		}
		id, ok := c.child()
		if !ok || !c.push(id) {
			return nil, nil, 0
		}
	}
}

func (b *Bucket) searchBranch(r *elemRef, key []byte) bool {
	var i int
	var exact bool
	if n := r.node; n != nil {
		i, exact = n.index(key)
	} else {
		p := r.page
		bad := false
		i = sort.Search(page.Count(p), func(i int) bool {
			_, k, ok := page.BranchElem(p, i)
			if !ok {
				bad = true
				return true
			}
			return bytes.Compare(k, key) >= 0
		})
		if bad {
			b.tx.corrupt(page.Corruptf(page.ID(p), "branch element out of bounds"))
			return false
		}
		if i < page.Count(p) {
			_, k, _ := page.BranchElem(p, i)
			exact = bytes.Equal(k, key)
		}
	}
	if !exact && i > 0 {
		i--
	}
	if i >= r.count() {
		b.tx.corrupt(page.Corruptf(r.id(), "empty branch page"))
		return false
	}
	r.index = i
	return true
}

func searchLeaf(r *elemRef, key []byte) {
	if n := r.node; n != nil {
		r.index, _ = n.index(key)
		return
	}
	p := r.page
	r.index = sort.Search(page.Count(p), func(i int) bool {
		k, ok := page.LeafKey(p, i)
		return !ok || bytes.Compare(k, key) >= 0
	})
}

// current returns the leaf element at the cursor, nil if past the end.
func (c *Cursor) current() ([]byte, []byte, uint8) {
	r := c.top()
	if r == nil || r.index < 0 || r.index >= r.count() {
		return nil, nil, 0
	}
	if n := r.node; n != nil {
		in := &n.inodes[r.index]
		return in.key, in.value, in.flags
	}
	flags, k, v, ok := page.LeafElem(r.page, r.index)
	if !ok {
		c.bucket.tx.corrupt(page.Corruptf(r.id(), "leaf element %d out of bounds", r.index))
		return nil, nil, 0
	}
	return k, v, flags
}

// node materialises the path to the cursor's leaf and returns the leaf node.
// The stack is switched to the nodes, so that the cursor sees later changes
// to them (Cursor.Delete). It returns nil, with the transaction's error
// set, when a page on the path turned out damaged.
func (c *Cursor) node() *node {
	b := c.bucket
	if c.depth == 0 {
		return b.node(b.hdr.Root, nil)
	}
	if r := c.top(); r.node != nil && r.isLeaf() {
		return r.node
	}
	n := c.stack[0].node
	if n == nil {
		n = b.node(b.hdr.Root, nil)
		c.stack[0].node, c.stack[0].page = n, nil
	}
	for i := 0; i < c.depth-1; i++ {
		if n.leaf || c.stack[i].index < 0 || c.stack[i].index >= len(n.inodes) {
			b.tx.corrupt(page.Corruptf(n.pgid, "node does not match its page"))
			return nil
		}
		n = n.childAt(c.stack[i].index)
		c.stack[i+1].node, c.stack[i+1].page = n, nil
	}
	if b.tx.err != nil {
		return nil
	}
	return n
}

// lookup returns the leaf element whose key equals key, if any, without a
// cursor stack: the read path of Get and Bucket, which allocates nothing.
func (b *Bucket) lookup(key []byte) (v []byte, flags uint8, found bool) {
	if b.usable() != nil {
		return nil, 0, false
	}
	var r elemRef
	switch {
	case b.rootNode != nil:
		r.node = b.rootNode
	case b.hdr.Root == 0:
		return nil, 0, false
	default:
		var ok bool
		if r, ok = b.ref(b.hdr.Root); !ok {
			return nil, 0, false
		}
	}
	for depth := 0; ; depth++ {
		if r.isLeaf() {
			searchLeaf(&r, key)
			if r.index >= r.count() {
				return nil, 0, false
			}
			var k []byte
			if n := r.node; n != nil {
				in := &n.inodes[r.index]
				k, v, flags = in.key, in.value, in.flags
			} else {
				var ok bool
				if flags, k, v, ok = page.LeafElem(r.page, r.index); !ok {
					b.tx.corrupt(page.Corruptf(r.id(), "leaf element %d out of bounds", r.index))
					return nil, 0, false
				}
			}
			return v, flags, bytes.Equal(k, key)
		}
		if depth > maxDepth {
			b.tx.corrupt(page.Corruptf(r.id(), "tree deeper than %d levels", maxDepth))
			return nil, 0, false
		}
		if !b.searchBranch(&r, key) {
			return nil, 0, false
		}
		id, ok := b.childID(&r)
		if !ok {
			return nil, 0, false
		}
		if r, ok = b.ref(id); !ok {
			return nil, 0, false
		}
	}
}
