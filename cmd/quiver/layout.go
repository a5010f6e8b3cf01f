package main

import (
	"fmt"

	"github.com/quiverdb/quiver/page"
)

// Page kinds as the tool names them: the header kinds of page.FlagName,
// and what the walk learns of the pages that have no header of their own.
const (
	kindMeta        = "meta"
	kindBranch      = "branch"
	kindLeaf        = "leaf"
	kindFreelist    = "freelist" // the freelist checkpoint
	kindCommit      = "commit"   // a commit record of the freelist's chain
	kindFree        = "free"
	kindOverflow    = "overflow"    // a page after the first of a span
	kindUnreachable = "unreachable" // neither reachable nor free: check reports it
	kindCorrupt     = "corrupt"     // referred to, but does not verify
)

// pageUse is what one page of the file is used for.
type pageUse struct {
	kind     string
	items    int    // elements (branch, leaf), free pages (freelist), spans listed (commit)
	overflow uint32 // pages after this one in its span
}

// layout is what every page below the high water mark of a state is used
// for, found by walking the pages the state refers to: the metas, the
// bucket trees from the root, the freelist checkpoint and the commit
// records chained since, and the free set they describe. The walk tolerates
// damage: what it cannot read it records in problems and goes on.
type layout struct {
	meta     page.Meta
	pageSize int
	pages    []pageUse // by page id, HighWater long
	free     []page.Span
	chain    []page.ChainRecord
	problems []error
}

func mapLayout(pf *pageFile) *layout {
	m := pf.meta
	l := &layout{meta: m, pageSize: pf.pageSize, pages: make([]pageUse, m.HighWater)}
	l.claim(0, pageUse{kind: kindMeta})
	l.claim(1, pageUse{kind: kindMeta})

	free, chain, err := page.FreeSet(&m, pf.span)
	if err != nil {
		l.problems = append(l.problems, fmt.Errorf("freelist: %w", err))
	} else {
		l.free, l.chain = free, chain
		if p, err := pf.span(m.Freelist); err == nil {
			n := 0
			_ = page.DecodeFreelist(p, m.Freelist, m.HighWater, func(_ page.Pgid, k uint64) { n += int(k) })
			l.claim(m.Freelist, pageUse{kind: kindFreelist, items: n, overflow: page.Overflow(p)})
		}
		for _, c := range chain {
			r := c.Record
			l.claim(c.ID, pageUse{kind: kindCommit, items: len(r.Written) + len(r.Freed) + len(r.Allocated), overflow: uint32(c.Pages - 1)})
		}
		for _, s := range free {
			for i := range s.N {
				l.claim(s.ID+page.Pgid(i), pageUse{kind: kindFree})
			}
		}
	}

	// The trees, depth first with an explicit stack: a damaged file may
	// nest deeper than the engine allows, and loops are cut by claim.
	stack := []page.Pgid{}
	if m.Root != 0 {
		stack = append(stack, m.Root)
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p, err := pf.span(id)
		if err != nil {
			l.problems = append(l.problems, err)
			if id < m.HighWater && l.pages[id].kind == "" {
				l.pages[id] = pageUse{kind: kindCorrupt}
			}
			continue
		}
		flags, n := page.Flags(p), page.Count(p)
		use := pageUse{kind: page.FlagName(flags), items: n, overflow: page.Overflow(p)}
		if !l.claim(id, use) {
			continue
		}
		for i := n - 1; i >= 0; i-- {
			switch flags {
			case page.FlagBranch:
				if child, _, ok := page.BranchElem(p, i); ok {
					stack = append(stack, child)
				}
			case page.FlagLeaf:
				if fl, _, v, ok := page.LeafElem(p, i); ok && fl&page.LeafBucket != 0 {
					if h, ok := page.DecodeBucketHeader(v); ok && h.Root != 0 {
						stack = append(stack, h.Root)
					}
				}
			}
		}
	}
	for id := range l.pages {
		if l.pages[id].kind == "" {
			l.pages[id].kind = kindUnreachable
		}
	}
	return l
}

// claim records use for the span at id. It refuses (and records a
// problem) a span that runs past the high water mark or overlaps a page
// already claimed.
func (l *layout) claim(id page.Pgid, use pageUse) bool {
	n := uint64(use.overflow) + 1
	hw := uint64(len(l.pages))
	if uint64(id) >= hw || uint64(id)+n > hw {
		l.problems = append(l.problems, fmt.Errorf("page %d: %s span of %d pages beyond the high water mark %d", id, use.kind, n, hw))
		return false
	}
	for i := range n {
		if prev := l.pages[uint64(id)+i].kind; prev != "" {
			l.problems = append(l.problems, fmt.Errorf("page %d: used as %s and as %s", uint64(id)+i, prev, use.kind))
			return false
		}
	}
	l.pages[id] = use
	for i := uint64(1); i < n; i++ {
		l.pages[uint64(id)+i] = pageUse{kind: kindOverflow}
	}
	return true
}

// use returns the use of page id, empty for an id past the high water mark.
func (l *layout) use(id page.Pgid) pageUse {
	if uint64(id) >= uint64(len(l.pages)) {
		return pageUse{}
	}
	return l.pages[id]
}

// count returns the number of pages of each kind; a span counts its first
// page under its kind and the rest under kindOverflow.
func (l *layout) count() map[string]int {
	c := map[string]int{}
	for _, u := range l.pages {
		c[u.kind]++
	}
	return c
}

// freePages returns the number of free pages.
func (l *layout) freePages() int {
	n := 0
	for _, s := range l.free {
		n += int(s.N)
	}
	return n
}

// chainPages returns the pages of the chained commit records.
func (l *layout) chainPages() int {
	n := 0
	for _, c := range l.chain {
		n += c.Pages
	}
	return n
}
