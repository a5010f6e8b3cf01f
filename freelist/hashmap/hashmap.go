// Package hashmap is the segregated freelist index: free spans kept in size
// classes, found in O(1) at any size and any fragmentation, coalesced with
// both neighbours in O(1) on free, and taken from low page ids first so
// that the file does not bloat.
//
// Structure:
//   - a span table (slots, recycled) holding each free span's start, size
//     and its links in one list;
//   - byStart and byEnd maps from a span's first and last page to its
//     slot, for coalescing;
//   - size classes: one per size for 1..exactSizes pages, then one per
//     power of two; a bitmask says which classes are non-empty;
//   - within a class, spans are listed per region of regionPages pages,
//     and a hierarchical bitset per class finds its lowest non-empty
//     region in a few word reads.
//
// Allocate(n) takes the smallest class that is sure to fit n (n's exact
// class, or for larger sizes the next power-of-two class unless n is a
// power of two), then the head of its lowest region's list, and takes n
// pages from the start of that span. Nothing depends on map iteration
// order, so the same operations give the same page ids.
package hashmap

import (
	"math/bits"
	"sort"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/page"
)

const (
	exactSizes  = 64 // classes 0..63 hold spans of exactly 1..64 pages
	regionShift = 10 // a region is 1024 pages (4 MiB of 4 KiB pages)
	numClasses  = exactSizes + 64
	none        = -1
	maxLooks    = 8 // spans examined in a class that may not fit
)

type span struct {
	start      page.Pgid
	size       uint64
	prev, next int32 // list links within (class, region); next also chains free slots
}

// Index is the segregated freelist index.
type Index struct {
	spans    []span
	freeSlot int32
	byStart  map[page.Pgid]int32
	byEnd    map[page.Pgid]int32 // last page of a span (start+size-1)
	heads    map[uint64]int32    // listKey(class, region) -> first slot
	regions  [numClasses]bitset
	classes  [2]uint64 // bit c: class c has spans
	count    int
}

var _ freelist.Index = (*Index)(nil)

// New returns an empty index.
func New() *Index {
	x := &Index{}
	x.Reset()
	return x
}

// Reset empties the index.
func (x *Index) Reset() {
	*x = Index{
		freeSlot: none,
		byStart:  map[page.Pgid]int32{},
		byEnd:    map[page.Pgid]int32{},
		heads:    map[uint64]int32{},
	}
}

// classOf returns the class a span of size pages is filed in.
func classOf(size uint64) int {
	if size <= exactSizes {
		return int(size) - 1
	}
	// Power-of-two classes: [2^k, 2^(k+1)) for k >= 6 (64 is exact).
	return exactSizes + bits.Len64(size) - 7
}

// fitClass returns the smallest class all of whose spans hold n pages.
func fitClass(n uint64) int {
	c := classOf(n)
	if n > exactSizes && n&(n-1) != 0 {
		c++ // spans of n's class may be smaller than n
	}
	return c
}

func listKey(class int, region uint64) uint64 { return uint64(class)<<48 | region }

func regionOf(id page.Pgid) uint64 { return uint64(id) >> regionShift }

func (x *Index) newSlot(s span) int32 {
	if x.freeSlot != none {
		i := x.freeSlot
		x.freeSlot = x.spans[i].next
		x.spans[i] = s
		return i
	}
	x.spans = append(x.spans, s)
	return int32(len(x.spans) - 1)
}

// insert files a span that overlaps no free span and touches none.
func (x *Index) insert(start page.Pgid, size uint64) {
	c, r := classOf(size), regionOf(start)
	key := listKey(c, r)
	head, ok := x.heads[key]
	if !ok {
		head = none
	}
	i := x.newSlot(span{start: start, size: size, prev: none, next: head})
	if head != none {
		x.spans[head].prev = i
	}
	x.heads[key] = i
	if !ok {
		x.regions[c].set(r)
		x.classes[c/64] |= 1 << (c % 64)
	}
	x.byStart[start] = i
	x.byEnd[start+page.Pgid(size)-1] = i
	x.count += int(size)
}

// remove unfiles slot i and recycles it.
func (x *Index) remove(i int32) span {
	s := x.spans[i]
	c, r := classOf(s.size), regionOf(s.start)
	if s.prev != none {
		x.spans[s.prev].next = s.next
	} else {
		key := listKey(c, r)
		if s.next != none {
			x.heads[key] = s.next
		} else {
			delete(x.heads, key)
			x.regions[c].clear(r)
			if _, any := x.regions[c].first(); !any {
				x.classes[c/64] &^= 1 << (c % 64)
			}
		}
	}
	if s.next != none {
		x.spans[s.next].prev = s.prev
	}
	delete(x.byStart, s.start)
	delete(x.byEnd, s.start+page.Pgid(s.size)-1)
	x.count -= int(s.size)
	x.spans[i] = span{next: x.freeSlot}
	x.freeSlot = i
	return s
}

// firstClass returns the first non-empty class >= c, or -1.
func (x *Index) firstClass(c int) int {
	for w := c / 64; w < len(x.classes); w++ {
		mask := x.classes[w]
		if w == c/64 {
			mask &^= (1 << (c % 64)) - 1
		}
		if mask != 0 {
			return w*64 + bits.TrailingZeros64(mask)
		}
	}
	return -1
}

// Allocate takes n contiguous pages; see the package comment.
func (x *Index) Allocate(n int) page.Pgid {
	if n <= 0 {
		return 0
	}
	c := x.firstClass(fitClass(uint64(n)))
	if c < 0 {
		// No class is sure to fit; n's own power-of-two class may still
		// hold a span large enough. Look at a bounded number of spans of
		// its lowest region, so that this stays O(1).
		c = classOf(uint64(n))
		if c < exactSizes || x.classes[c/64]&(1<<(c%64)) == 0 {
			return 0
		}
		r, _ := x.regions[c].first()
		i := x.heads[listKey(c, r)]
		for tries := 0; i != none && x.spans[i].size < uint64(n); i = x.spans[i].next {
			if tries++; tries == maxLooks {
				return 0
			}
		}
		if i == none {
			return 0
		}
		return x.take(i, uint64(n))
	}
	r, _ := x.regions[c].first()
	return x.take(x.heads[listKey(c, r)], uint64(n))
}

// take allocates n pages from the start of span i.
func (x *Index) take(i int32, n uint64) page.Pgid {
	s := x.remove(i)
	if s.size > n {
		x.insert(s.start+page.Pgid(n), s.size-n)
	}
	return s.start
}

// Free adds spans, coalescing each with free neighbours.
func (x *Index) Free(spans []page.Span) {
	for _, s := range spans {
		start, size := s.ID, s.N
		if size == 0 {
			continue
		}
		if i, ok := x.byEnd[start-1]; ok && start > 0 {
			l := x.remove(i)
			start, size = l.start, size+l.size
		}
		if i, ok := x.byStart[start+page.Pgid(size)]; ok {
			r := x.remove(i)
			size += r.size
		}
		x.insert(start, size)
	}
}

// FreeCount returns the number of free pages.
func (x *Index) FreeCount() int { return x.count }

// SpanCount returns the number of free spans.
func (x *Index) SpanCount() int { return len(x.byStart) }

// Spans reports the free spans in ascending order.
func (x *Index) Spans(fn func(id page.Pgid, n uint64)) {
	starts := make([]page.Pgid, 0, len(x.byStart))
	for s := range x.byStart {
		starts = append(starts, s)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	for _, s := range starts {
		fn(s, x.spans[x.byStart[s]].size)
	}
}
