package tx

import (
	"bytes"
	"sort"

	"github.com/quiverdb/quiver/page"
)

// node is the in-memory, writable form of a branch or leaf page. A write
// transaction materialises the pages it changes as nodes; at commit they are
// rebalanced, split and written to freshly allocated pages (copy on write).
type node struct {
	bucket     *Bucket
	leaf       bool
	unbalanced bool
	key        []byte    // the key this node is filed under in its parent
	pgid       page.Pgid // the page it was read from, 0 for a new node
	wrote      page.Txid // the transaction that wrote that page
	pages      int       // that page's span length
	parent     *node
	children   []*node // materialised children, for spill
	inodes     []inode
	buf        []byte // commit: where the node is encoded
}

// inode is one element of a node. key and value may alias the mapping of
// the transaction's epoch or the transaction's arena.
type inode struct {
	flags uint8
	pgid  page.Pgid // branch: child page
	child *node     // commit: the child whose page id pgid will be
	key   []byte
	value []byte
}

func (n *node) minKeys() int {
	if n.leaf {
		return 1
	}
	return 2
}

// size is the number of bytes the node's page takes.
func (n *node) size() int {
	s := page.HeaderSize
	for i := range n.inodes {
		s += n.elemSize(&n.inodes[i])
	}
	return s
}

func (n *node) elemSize(in *inode) int {
	if n.leaf {
		return page.LeafElemSize(len(in.key), len(in.value))
	}
	return page.BranchElemSize(len(in.key))
}

// sizeLess reports whether the node's page is smaller than v bytes, stopping
// early.
func (n *node) sizeLess(v int) bool {
	s := page.HeaderSize
	for i := range n.inodes {
		s += n.elemSize(&n.inodes[i])
		if s >= v {
			return false
		}
	}
	return true
}

// index returns the position of key in the node's inodes and whether it is
// an exact match.
func (n *node) index(key []byte) (int, bool) {
	i := sort.Search(len(n.inodes), func(i int) bool { return bytes.Compare(n.inodes[i].key, key) >= 0 })
	return i, i < len(n.inodes) && bytes.Equal(n.inodes[i].key, key)
}

// put inserts or replaces the element filed under oldKey and returns its
// position.
func (n *node) put(oldKey, newKey, value []byte, pgid page.Pgid, flags uint8) int {
	i, exact := n.index(oldKey)
	if !exact {
		n.inodes = append(n.inodes, inode{})
		copy(n.inodes[i+1:], n.inodes[i:])
	}
	in := &n.inodes[i]
	in.flags, in.key, in.value, in.pgid = flags, newKey, value, pgid
	return i
}

// del removes key from the node, if present.
func (n *node) del(key []byte) {
	i, exact := n.index(key)
	if !exact {
		return
	}
	n.inodes = append(n.inodes[:i], n.inodes[i+1:]...)
	n.unbalanced = true
}

// read fills the node from page p.
func (n *node) read(p []byte, id page.Pgid) error {
	n.pgid = id
	n.wrote = page.TxidOf(p)
	n.pages = int(page.Overflow(p)) + 1
	n.leaf = page.Flags(p) == page.FlagLeaf
	cnt := page.Count(p)
	// Room for a few inserts: a node is usually read to be changed.
	n.inodes = make([]inode, cnt, cnt+cnt/8+2)
	for i := 0; i < cnt; i++ {
		in := &n.inodes[i]
		var ok bool
		if n.leaf {
			in.flags, in.key, in.value, ok = page.LeafElem(p, i)
		} else {
			in.pgid, in.key, ok = page.BranchElem(p, i)
		}
		if !ok {
			return page.Corruptf(id, "element %d out of bounds", i)
		}
	}
	if cnt > 0 {
		n.key = n.inodes[0].key
	}
	return nil
}

// write encodes the node into buf, a zeroed span of whole pages, as page id
// written by txid.
func (n *node) write(buf []byte, id page.Pgid, txid page.Txid, pageSize int) {
	flags := page.FlagBranch
	if n.leaf {
		flags = page.FlagLeaf
	}
	page.PutHeader(buf, id, txid, flags, len(n.inodes), uint32(len(buf)/pageSize-1))
	off := page.ElemsStart(len(n.inodes))
	for i := range n.inodes {
		in := &n.inodes[i]
		if n.leaf {
			off = page.PutLeafElem(buf, i, off, in.flags, in.key, in.value)
		} else {
			off = page.PutBranchElem(buf, i, off, in.pgid, in.key)
		}
	}
}

// split breaks the node into nodes that each fit a page (or hold a single
// element that does not), filling each up to the bucket's FillPercent, in
// one pass over its elements (a node may have grown to millions of
// elements in one transaction). The pieces share the node's element array,
// each capped so that appending to one cannot clobber the next. New
// siblings are added to the parent, which is created if the node was the
// root.
func (n *node) split(pageSize int) []*node {
	min := n.minKeys()
	// A piece is cut at maxCount elements at the latest; it may then take
	// the last one or two (so that the rest is not left below min), and
	// still fits the header's count.
	const maxCount = page.MaxCount - 2
	if len(n.inodes) <= 2*min || (len(n.inodes) <= maxCount && n.sizeLess(pageSize+1)) {
		return []*node{n}
	}
	fill := n.bucket.FillPercent
	if fill < minFillPercent {
		fill = minFillPercent
	} else if fill > maxFillPercent {
		fill = maxFillPercent
	}
	threshold := int(float64(pageSize) * fill)
	total := 0
	for i := range n.inodes {
		total += n.elemSize(&n.inodes[i])
	}
	var cuts []int
	start, sz, before := 0, page.HeaderSize, 0
	for i := range n.inodes {
		es := n.elemSize(&n.inodes[i])
		if sz+total-before <= pageSize && len(n.inodes)-start <= maxCount {
			break // the rest fits one page
		}
		// A leaf piece of one element takes a second one if the two fit
		// a page, whatever the threshold (as bbolt's pages take two
		// elements at least): elements just over half the threshold would
		// otherwise go one to a page, a quarter full at the default.
		full := sz+es > threshold && (i-start >= 2 || sz+es > pageSize)
		if i-start >= min && len(n.inodes)-i >= min && (full || i-start >= maxCount) {
			cuts = append(cuts, i)
			start, sz = i, page.HeaderSize
		}
		sz += es
		before += es
	}
	if len(cuts) == 0 {
		return []*node{n}
	}
	if n.parent == nil {
		n.parent = &node{bucket: n.bucket, children: []*node{n}}
	}
	all := n.inodes
	out := make([]*node, 0, len(cuts)+1)
	n.inodes = all[:cuts[0]:cuts[0]]
	out = append(out, n)
	for k, c := range cuts {
		end := len(all)
		if k+1 < len(cuts) {
			end = cuts[k+1]
		}
		next := &node{bucket: n.bucket, leaf: n.leaf, parent: n.parent, inodes: all[c:end:end]}
		n.parent.children = append(n.parent.children, next)
		out = append(out, next)
	}
	return out
}
