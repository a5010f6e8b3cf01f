package tx

import (
	"errors"

	"github.com/quiverdb/quiver/page"
)

// Unchanged reports the parts of bucket b that are the same as in an older
// snapshot of the same database, the one committed by transaction since. It
// calls fn, in key order, with the first and last key of every largest
// subtree of b whose root page was written by since or earlier. Between two
// such keys, inclusive, b holds exactly the keys, values and nested buckets
// it held at since; everything outside the reported intervals may differ.
//
// This is what online compaction uses to find what changed while it
// copied: the tree is copy-on-write, so a commit that changes a page
// rewrites the page and every page above it with the commit's txid, and a
// page reachable now whose header carries an older txid is the very page
// that snapshot held, subtree and nested buckets included. The cost is
// proportional to the pages written since, times the tree's depth.
//
// b must belong to a read transaction. The keys passed to fn are valid for
// the transaction's life. It returns the transaction's error if it met a
// damaged page.
func Unchanged(b *Bucket, since page.Txid, fn func(first, last []byte)) error {
	t := b.tx
	if t.writable {
		return errors.New("tx: Unchanged needs a read transaction")
	}
	if b.hdr.Root != 0 {
		t.unchanged(b.hdr.Root, since, fn)
	}
	return t.err
}

// unchanged reports, through fn, the edge keys of every largest subtree at
// id whose root page was written by since or earlier; it descends only
// into pages written after since.
func (t *Tx) unchanged(id page.Pgid, since page.Txid, fn func(first, last []byte)) {
	t.walk(id, 0, func(p []byte, id page.Pgid, depth int) bool {
		if page.TxidOf(p) > since {
			return true // changed: look below
		}
		first, ok := t.edgeKey(p, id, depth, false)
		if !ok {
			return false
		}
		if last, ok := t.edgeKey(p, id, depth, true); ok {
			fn(first, last)
		}
		return false
	})
}

// edgeKey returns the smallest (or with last, the largest) key of the
// subtree whose root is page p (id, at depth). ok is false for an empty
// leaf or a damaged page.
func (t *Tx) edgeKey(p []byte, id page.Pgid, depth int, last bool) ([]byte, bool) {
	for page.Flags(p) == page.FlagBranch {
		n := page.Count(p)
		if n == 0 || depth >= maxDepth {
			t.corrupt(page.Corruptf(id, "branch page without children or too deep"))
			return nil, false
		}
		i := 0
		if last {
			i = n - 1
		}
		child, _, ok := page.BranchElem(p, i)
		if !ok {
			t.corrupt(page.Corruptf(id, "branch element %d out of bounds", i))
			return nil, false
		}
		if p = t.page(child); p == nil {
			return nil, false
		}
		id, depth = child, depth+1
	}
	if page.Flags(p) != page.FlagLeaf {
		t.corrupt(page.Corruptf(id, "%s page in a bucket's tree", page.FlagName(page.Flags(p))))
		return nil, false
	}
	n := page.Count(p)
	if n == 0 {
		return nil, false
	}
	i := 0
	if last {
		i = n - 1
	}
	k, ok := page.LeafKey(p, i)
	if !ok {
		t.corrupt(page.Corruptf(id, "leaf element %d out of bounds", i))
	}
	return k, ok
}
