package tx

import (
	"bytes"

	"sort"
	"time"

	"github.com/quiverdb/quiver/internal/invariants"
	"github.com/quiverdb/quiver/page"
)

// The commit of a write transaction runs in phases so that every page it
// writes is known before any is allocated, and can be placed in one
// contiguous run when the freelist has one:
//
//  1. rebalance nodes that lost keys;
//  2. split every dirty node to fit its pages, bottom up, adding the new
//     siblings to their parents (child page ids still unknown), and free
//     the pages the nodes were read from;
//  3. allocate pages for all the nodes at once, falling back to a run
//     for each multi-page node and a page for each other node, then to the
//     end of the file;
//  4. fill in child page ids and bucket root ids, encode every node into
//     the buffer of its run, and hand the runs to the backend.
type commitState struct {
	t        *Tx
	nodes    []*node // every node to write, children before parents
	sysPages int     // pages of the last entry of nodes, the backend's
}

func (t *Tx) commit() error {
	start := time.Now()
	t.root.rebalanceAll()
	t.stats.RebalanceTime += time.Since(start)
	start = time.Now()
	s := &commitState{t: t}
	s.prepareBucket(&t.root)
	// The database's own pages for this commit (freelist checkpoint,
	// commit record) are placed with the nodes, usually in the same run.
	sys := &node{}
	s.sysPages = t.backend.Reserve(t, len(s.nodes))
	s.nodes = append(s.nodes, sys)
	allocStart := time.Now()
	writes, err := s.allocate()
	t.stats.AllocTime += time.Since(allocStart)
	if err != nil {
		return err
	}
	if invariants.Enabled {
		if err := s.checkAllocations(); err != nil {
			return err
		}
	}
	s.nodes = s.nodes[:len(s.nodes)-1]
	s.resolve(&t.root)
	if invariants.Enabled {
		s.checkOrder()
	}
	written := make([]page.Written, 0, len(s.nodes)+1)
	for _, n := range s.nodes {
		n.write(n.buf, n.pgid, t.txid(), t.pageSize)
		sum := page.Seal(n.buf)
		written = append(written, page.Written{ID: n.pgid, N: uint32(len(n.buf) / t.pageSize), Checksum: sum})
	}
	t.stats.NodeCount += int64(len(s.nodes))
	t.stats.Spill += int64(len(s.nodes))
	t.stats.SpillTime += time.Since(start)
	return t.backend.Commit(t, CommitPages{Writes: writes, Written: written, Sys: Write{ID: sys.pgid, Buf: sys.buf}}, t.root.hdr)
}

// CommitPages is what a transaction hands its backend to commit.
type CommitPages struct {
	// Writes are the runs of pages to write, Sys included, in page order.
	Writes []Write
	// Written lists every node span in Writes with its checksum.
	Written []page.Written
	// Sys is the span Reserve asked for, zeroed, inside one of Writes: the
	// backend encodes its own pages there before writing.
	Sys Write
}

// prepareBucket splits the dirty nodes of b and its nested buckets and
// reports whether b changed.
func (s *commitState) prepareBucket(b *Bucket) bool {
	for _, name := range b.childNames() {
		child := b.buckets[name]
		if !s.prepareBucket(child) {
			continue // unchanged
		}
		// File the child's header under its name; resolve fills in its root.
		var c Cursor
		c.init(b)
		k, _, flags := c.seek(child.name)
		if !bytes.Equal(k, child.name) || flags&page.LeafBucket == 0 {
			continue // deleted in this tx
		}
		if n := c.node(); n != nil {
			n.put(child.name, child.name, child.hdrBuf[:], 0, page.LeafBucket)
		}
	}
	if b.rootNode == nil {
		return b.dirty
	}
	root := b.rootNode
	if root.leaf && len(root.inodes) == 0 {
		// The bucket is empty: it needs no page.
		root.freePage()
		b.rootNode = nil
		b.hdr.Root = 0
		return true
	}
	b.rootNode = s.splitTree(root)
	return true
}

// splitTree splits n's materialised subtree and returns the (possibly new)
// root above it.
func (s *commitState) splitTree(n *node) *node {
	s.splitNode(n)
	for n.parent != nil {
		n = n.parent
	}
	return n
}

func (s *commitState) splitNode(n *node) {
	if !n.leaf {
		s.redistribute(n)
	}
	children := n.children
	sort.Slice(children, func(i, j int) bool { return bytes.Compare(children[i].firstKey(), children[j].firstKey()) < 0 })
	for _, c := range append([]*node(nil), children...) {
		s.splitNode(c)
	}
	n.children = nil
	n.freePage()
	if len(n.inodes) == 0 {
		// Only a corrupt tree leaves an empty non-root node here.
		if n.parent != nil {
			n.parent.del(n.key)
		}
		return
	}
	pieces := n.split(s.t.pageSize)
	if len(pieces) > 1 {
		s.t.stats.Split += int64(len(pieces) - 1)
	}
	for _, p := range pieces {
		if p.parent != nil {
			key := p.key
			if key == nil {
				key = p.inodes[0].key
			}
			p.parent.putChild(key, p.inodes[0].key, p)
		}
		p.key = p.inodes[0].key
		s.nodes = append(s.nodes, p)
	}
	// A split root made a new parent, which must be split and written too.
	if par := n.parent; par != nil && par.pgid == 0 && par.parent == nil && par.bucket.rootNode == n {
		par.bucket.rootNode = par
		par.children = nil
		s.splitNode(par)
	}
}

// redistribute gives each overflowing leaf child of branch n a share of
// its right sibling's room before it is split: the two share their elements
// evenly over two pages when they fit, else over three (a 2-to-3 split, as
// in a B*-tree). Random inserts then leave leaves about 80% full instead of
// the 69% of plain splits. Only right siblings are used, so appending in
// key order still splits the last leaf at FillPercent.
func (s *commitState) redistribute(n *node) {
	ps := s.t.pageSize
	leaves := append([]*node(nil), n.children...)
	for _, c := range leaves {
		if !c.leaf || len(c.inodes) < 2 || c.sizeLess(ps+1) {
			continue
		}
		i, exact := n.index(c.key)
		if !exact || i+1 >= len(n.inodes) {
			continue
		}
		nb := n.childAt(i + 1)
		if !nb.leaf || len(nb.inodes) == 0 {
			continue
		}
		all := make([]inode, 0, len(c.inodes)+len(nb.inodes))
		all = append(append(all, c.inodes...), nb.inodes...)
		total := 0
		for k := range all {
			total += c.elemSize(&all[k])
		}
		room := ps - page.HeaderSize
		var k int
		switch {
		case total <= 2*room:
			k = 2
		case total <= 3*room:
			k = 3
		default:
			continue
		}
		parts := evenCuts(c, all, total, k)
		if parts == nil {
			continue
		}
		c.inodes = parts[0]
		nb.inodes = parts[len(parts)-1]
		// A first child may hold keys below its key in n (inserted in this
		// transaction): refile it under its first key before anything else
		// is filed, so that n stays ordered.
		if first := c.inodes[0].key; bytes.Compare(first, n.inodes[i].key) < 0 {
			n.inodes[i].key = first
			c.key = first
		}
		// Refile the right sibling under its new, smaller first key (still
		// above c's), and file the middle node, so that n stays ordered
		// whatever is refiled later.
		nb.key = nb.inodes[0].key
		n.inodes[i+1].key = nb.key
		if k == 3 {
			mid := &node{bucket: c.bucket, leaf: true, parent: n, inodes: parts[1]}
			mid.key = mid.inodes[0].key
			n.putChild(mid.key, mid.key, mid)
			n.children = append(n.children, mid)
		}
		s.t.stats.Split++
	}
}

// evenCuts cuts elems (of total bytes) into k pieces of about equal size,
// each capped so that appends cannot run into the next. nil if a piece
// would be empty.
func evenCuts(n *node, elems []inode, total, k int) [][]inode {
	parts := make([][]inode, 0, k)
	start, acc := 0, 0
	for i := range elems {
		if len(parts) < k-1 && acc >= total*(len(parts)+1)/k && i > start {
			parts = append(parts, elems[start:i:i])
			start = i
		}
		acc += n.elemSize(&elems[i])
	}
	parts = append(parts, elems[start:len(elems):len(elems)])
	if len(parts) != k {
		return nil
	}
	return parts
}

func (n *node) firstKey() []byte {
	if len(n.inodes) > 0 {
		return n.inodes[0].key
	}
	return n.key
}

// putChild files child under newKey (replacing oldKey) in branch n.
func (n *node) putChild(oldKey, newKey []byte, child *node) {
	i := n.put(oldKey, newKey, nil, 0, 0)
	n.inodes[i].child = child
}

// allocate gives every node its pages and returns the write runs, each
// backed by one buffer in which the nodes are encoded.
func (s *commitState) allocate() ([]Write, error) {
	t := s.t
	ps := t.pageSize
	need := make([]int, len(s.nodes))
	for i, n := range s.nodes[:len(s.nodes)-1] {
		need[i] = page.Pages(n.size(), ps)
	}
	need[len(need)-1] = s.sysPages
	var writes []Write
	place := func(id page.Pgid, nodes []*node, pages []int, n int) {
		buf := t.backend.WriteBuffer(n * ps)
		off := 0
		for i, nd := range nodes {
			nd.pgid = id + page.Pgid(off/ps)
			nd.buf = buf[off : off+pages[i]*ps]
			off += pages[i] * ps
		}
		writes = append(writes, Write{ID: id, Buf: buf})
		t.stats.PageCount += int64(n)
		t.stats.PageAlloc += int64(n * ps)
	}
	sum := func(pages []int) int {
		n := 0
		for _, p := range pages {
			n += p
		}
		return n
	}
	// Ask the freelist for the whole commit as one run. Failing that:
	//
	//  1. the nodes of more than one page (large values, the backend's
	//     span), largest first, each in a run of its own;
	//  2. the single-page nodes, one free page each, and once no page is
	//     free, all the rest in one run at the end of the file.
	//
	// Single-page nodes are not asked for in runs: in a fragmented file
	// the runs they would take are the ones the large nodes of this and
	// later commits need, which then go to the end of the file, commit
	// after commit. Asked for one page, the hashmap freelist takes a
	// single free page of the lowest region that has free pages before it
	// splits a run there; the array freelist takes the lowest free page,
	// run or not (first fit, as bbolt). The backend merges adjacent pages
	// into one write.
	// A failed request of n pages proves that no free run holds n
	// (allocating only shrinks runs), so later requests of n or more go
	// straight to the end of the file.
	whole := sum(need)
	id, err := t.backend.Allocate(t.txid(), whole, false)
	if err != nil {
		return nil, err
	}
	if id != 0 {
		place(id, s.nodes, need, whole)
		return writes, nil
	}
	noRun := whole // the fewest pages a request failed for
	var large []int
	var small []*node
	for i, n := range s.nodes {
		if need[i] != 1 { // (every node needs a page at least)
			large = append(large, i)
		} else {
			small = append(small, n)
		}
	}
	sort.SliceStable(large, func(a, b int) bool { return need[large[a]] > need[large[b]] })
	for _, i := range large {
		var id page.Pgid
		if need[i] < noRun {
			if id, err = t.backend.Allocate(t.txid(), need[i], false); err != nil {
				return nil, err
			}
			if id == 0 {
				noRun = need[i]
			}
		}
		if id == 0 {
			if id, err = t.backend.Allocate(t.txid(), need[i], true); err != nil {
				return nil, err
			}
		}
		place(id, s.nodes[i:i+1], need[i:i+1], need[i])
	}
	one := []int{1}
	for i := range small {
		var id page.Pgid
		if noRun > 1 {
			if id, err = t.backend.Allocate(t.txid(), 1, false); err != nil {
				return nil, err
			}
		}
		if id == 0 {
			rest := make([]int, len(small)-i)
			for k := range rest {
				rest[k] = 1
			}
			if id, err = t.backend.Allocate(t.txid(), len(rest), true); err != nil {
				return nil, err
			}
			place(id, small[i:], rest, len(rest))
			break
		}
		place(id, small[i:i+1], one, 1)
	}
	sort.Slice(writes, func(a, b int) bool { return writes[a].ID < writes[b].ID })
	return writes, nil
}

// resolve fills in child page ids in branch nodes and root ids in bucket
// headers, now that every node has a page.
func (s *commitState) resolve(b *Bucket) {
	for _, n := range s.nodes {
		if n.leaf {
			continue
		}
		for i := range n.inodes {
			if c := n.inodes[i].child; c != nil {
				n.inodes[i].pgid = c.pgid
				n.inodes[i].child = nil
			}
		}
	}
	s.resolveBucket(b)
}

func (s *commitState) resolveBucket(b *Bucket) {
	for _, name := range b.childNames() {
		s.resolveBucket(b.buckets[name])
	}
	if b.rootNode != nil {
		b.hdr.Root = b.rootNode.pgid
	}
	b.encodeHeader()
}
