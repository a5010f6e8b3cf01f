package tx

import (
	"bytes"
	"fmt"

	"github.com/quiverdb/quiver/page"
)

// Invariant checks of a commit, run in builds with the invariants tag
// (internal/invariants): they cost a walk of the snapshot per commit.

// checkOrder panics if a node about to be written holds keys out of order,
// or a branch files a child under a key other than the child's first.
func (s *commitState) checkOrder() {
	for _, n := range s.nodes {
		for i := 1; i < len(n.inodes); i++ {
			if bytes.Compare(n.inodes[i-1].key, n.inodes[i].key) >= 0 {
				panic(fmt.Sprintf("tx: invariant: node of page %d has key %q before %q", n.pgid, n.inodes[i-1].key, n.inodes[i].key))
			}
		}
		if n.leaf {
			continue
		}
		for i := range n.inodes {
			c := n.inodes[i].child
			if c != nil && len(c.inodes) > 0 && !bytes.Equal(c.inodes[0].key, n.inodes[i].key) {
				panic(fmt.Sprintf("tx: invariant: branch of page %d files a child under %q, its first key is %q", n.pgid, n.inodes[i].key, c.inodes[0].key))
			}
		}
	}
}

// checkAllocations returns an error if a page allocated for the commit is
// one the snapshot the writer began on still uses: that snapshot's readers
// would see it change under them. Not a panic: a damaged file whose
// freelist lists a page its tree uses leads there too, and the commit
// then fails with a corruption error instead of spreading the damage.
func (s *commitState) checkAllocations() error {
	t := s.t
	used := t.reachablePages()
	for _, n := range s.nodes {
		pages := page.Pgid(len(n.buf) / t.pageSize)
		for id := n.pgid; id < n.pgid+pages && int(id) < len(used); id++ {
			if used[id] {
				return page.Corruptf(id, "invariant: allocated to commit %d while its snapshot (tx %d) uses it: the freelist and the tree disagree", t.txid(), t.meta.Txid)
			}
		}
	}
	return nil
}

// reachablePages marks every page the transaction's snapshot uses: the
// trees of all buckets, the freelist checkpoint and the chained commit
// records. Damaged pages are left unmarked, and not recorded as the
// transaction's error.
func (t *Tx) reachablePages() []bool {
	saved := t.err
	defer func() { t.err = saved }()
	used := make([]bool, t.meta.HighWater)
	mark := func(id page.Pgid, n int) {
		for i := 0; i < n && int(id)+i < len(used); i++ {
			used[int(id)+i] = true
		}
	}
	var bucket func(root page.Pgid, nesting int)
	bucket = func(root page.Pgid, nesting int) {
		if root == 0 || nesting > maxNesting {
			return
		}
		t.walk(root, 0, func(p []byte, id page.Pgid, depth int) bool {
			mark(id, int(page.Overflow(p))+1)
			if page.Flags(p) != page.FlagLeaf {
				return true
			}
			for i := 0; i < page.Count(p); i++ {
				if fl, _, v, ok := page.LeafElem(p, i); ok && fl&page.LeafBucket != 0 {
					if h, ok := page.DecodeBucketHeader(v); ok {
						bucket(h.Root, nesting+1)
					}
				}
			}
			return true
		})
	}
	bucket(t.meta.Root, 0)
	if p, err := t.readSpan(t.meta.Freelist); err == nil {
		mark(t.meta.Freelist, int(page.Overflow(p))+1)
	}
	if _, chain, err := page.FreeSet(&t.meta, t.readSpan); err == nil {
		for _, c := range chain {
			mark(c.ID, c.Pages)
		}
	}
	return used
}
