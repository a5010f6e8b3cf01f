package tx

import (
	"sort"
)

// childAt returns the node of child i of branch node n.
func (n *node) childAt(i int) *node {
	c := n.bucket.node(n.inodes[i].pgid, n)
	// The child is filed under its parent's key for it, which is what
	// put and del look it up by.
	c.key = n.inodes[i].key
	return c
}

// childIndex returns the position of child c in n.
func (n *node) childIndex(c *node) int {
	i, _ := n.index(c.key)
	return i
}

func (n *node) removeChild(c *node) {
	for i, x := range n.children {
		if x == c {
			n.children = append(n.children[:i], n.children[i+1:]...)
			return
		}
	}
}

// freePage frees the page the node was read from, once.
func (n *node) freePage() {
	if n.pgid != 0 {
		t := n.bucket.tx
		t.backend.Free(t.txid(), n.wrote, n.pgid, n.pages)
		delete(n.bucket.nodes, n.pgid)
		n.pgid = 0
	}
}

// adopt makes n the parent of the materialised children among inodes.
func (n *node) adopt(inodes []inode) {
	b := n.bucket
	if n.leaf {
		return
	}
	for i := range inodes {
		if c, ok := b.nodes[inodes[i].pgid]; ok && c.parent != n {
			if c.parent != nil {
				c.parent.removeChild(c)
			}
			c.parent = n
			n.children = append(n.children, c)
		}
	}
}

// rebalance merges a node that fell below a quarter page (or below its
// minimum key count) with a sibling, and collapses a root with one child.
func (n *node) rebalance() {
	if !n.unbalanced {
		return
	}
	n.unbalanced = false
	b := n.bucket
	t := b.tx
	if !n.sizeLess(t.pageSize/4+1) && len(n.inodes) > n.minKeys() {
		return
	}
	if n.parent == nil {
		// A branch root with a single child: the child becomes the root.
		if !n.leaf && len(n.inodes) == 1 {
			child := n.childAt(0)
			n.leaf = child.leaf
			n.inodes = child.inodes
			n.children = nil
			n.adopt(n.inodes)
			child.freePage()
			child.inodes = nil
			child.unbalanced = false
			n.unbalanced = true
			n.rebalance()
		}
		return
	}
	t.stats.Rebalance++
	p := n.parent
	if len(n.inodes) == 0 {
		p.del(n.key)
		p.removeChild(n)
		n.freePage()
		p.rebalance()
		return
	}
	idx := p.childIndex(n)
	if len(p.inodes) < 2 {
		// No sibling to merge with; the parent will collapse.
		p.unbalanced = true
		p.rebalance()
		return
	}
	// Merge the right node of the pair into the left one.
	left, right := n, (*node)(nil)
	if idx == 0 {
		right = p.childAt(1)
	} else {
		left, right = p.childAt(idx-1), n
	}
	left.inodes = append(left.inodes, right.inodes...)
	left.adopt(right.inodes)
	p.del(right.key)
	p.removeChild(right)
	right.freePage()
	right.inodes = nil
	right.unbalanced = false
	p.rebalance()
}

// rebalanceAll rebalances every unbalanced node of the bucket and its
// nested buckets, in page order so that the result does not depend on map
// iteration.
func (b *Bucket) rebalanceAll() {
	for _, name := range b.childNames() {
		b.buckets[name].rebalanceAll()
	}
	var todo []*node
	for _, n := range b.nodes {
		if n.unbalanced {
			todo = append(todo, n)
		}
	}
	if b.rootNode != nil && b.rootNode.pgid == 0 && b.rootNode.unbalanced {
		todo = append(todo, b.rootNode)
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].pgid < todo[j].pgid })
	for _, n := range todo {
		n.rebalance()
	}
}

// childNames returns the names of the nested buckets opened in this tx, sorted.
func (b *Bucket) childNames() []string {
	names := make([]string, 0, len(b.buckets))
	for name := range b.buckets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
