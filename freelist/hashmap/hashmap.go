package hashmap

import (
	"cmp"
	"math/bits"
	"slices"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/page"
)

const (
	exactSizes  = 64 // classes 0..63 hold spans of exactly 1..64 pages
	regionShift = 12 // a region is 4096 pages (16 MiB of 4 KiB pages)
	numClasses  = exactSizes + 64
	none        = -1
	maxLooks    = 8 // spans examined in a class that may not fit
	// maxSpan bounds a span's size so that it fits the table's uint32;
	// larger free runs are kept as several spans.
	maxSpan = 1<<32 - 1
)

// Freelist is the segregated freelist index.
type Freelist struct {
	// The span table, by slot.
	start      []page.Pgid
	size       []uint32
	prev, next []int32 // list links within (class, region); next also chains free slots
	freeSlot   int32

	ids     idTable
	heads   [numClasses][]int32 // [class][region] -> first slot, none if empty
	regions [numClasses]bitset
	classes [2]uint64 // bit c: class c has spans
	count   int
	nspans  int
}

var _ freelist.Freelist = (*Freelist)(nil)

// New returns an empty index.
func New() *Freelist {
	x := &Freelist{}
	x.Reset()
	return x
}

// Reset empties the index.
func (x *Freelist) Reset() {
	*x = Freelist{freeSlot: none}
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

func regionOf(id page.Pgid) uint64 { return uint64(id) >> regionShift }

func (x *Freelist) newSlot() int32 {
	if i := x.freeSlot; i != none {
		x.freeSlot = x.next[i]
		return i
	}
	x.start = append(x.start, 0)
	x.size = append(x.size, 0)
	x.prev = append(x.prev, none)
	x.next = append(x.next, none)
	return int32(len(x.start) - 1)
}

func (x *Freelist) head(c int, r uint64) int32 {
	if r < uint64(len(x.heads[c])) {
		return x.heads[c][r]
	}
	return none
}

func (x *Freelist) setHead(c int, r uint64, i int32) {
	for uint64(len(x.heads[c])) <= r {
		x.heads[c] = append(x.heads[c], none)
	}
	x.heads[c][r] = i
}

// insert files a span that overlaps no free span and touches none.
func (x *Freelist) insert(start page.Pgid, size uint64) {
	i := x.link(start, size)
	x.ids.put(uint32(start), i)
	if size > 1 {
		x.ids.put(uint32(start+page.Pgid(size)-1), i)
	}
}

// link files a span in its class and region lists and returns its slot;
// the caller enters its ends in the id table.
func (x *Freelist) link(start page.Pgid, size uint64) int32 {
	i := x.newSlot()
	x.start[i], x.size[i] = start, uint32(size)
	x.linkSlot(i)
	return i
}

// linkSlot files slot i, whose start and size are set, at the head of its
// (class, region) list.
func (x *Freelist) linkSlot(i int32) {
	start, size := x.start[i], uint64(x.size[i])
	c, r := classOf(size), regionOf(start)
	head := x.head(c, r)
	x.prev[i], x.next[i] = none, head
	if head != none {
		x.prev[head] = i
	} else {
		x.regions[c].set(r)
		x.classes[c/64] |= 1 << (c % 64)
	}
	x.setHead(c, r, i)
	x.count += int(size)
	x.nspans++
}

// lookupStart returns the slot of the span starting at id, or none.
func (x *Freelist) lookupStart(id page.Pgid) int32 {
	pos := x.ids.find(uint32(id), func(s int32) bool { return x.start[s] == id })
	if pos < 0 {
		return none
	}
	return x.ids.slot(pos)
}

// lookupEnd returns the slot of the span ending at id, or none.
func (x *Freelist) lookupEnd(id page.Pgid) int32 {
	pos := x.ids.find(uint32(id), func(s int32) bool { return x.start[s]+page.Pgid(x.size[s])-1 == id })
	if pos < 0 {
		return none
	}
	return x.ids.slot(pos)
}

// remove unfiles slot i and recycles it, returning its span.
func (x *Freelist) remove(i int32) (page.Pgid, uint64) {
	start, size := x.start[i], uint64(x.size[i])
	c, r := classOf(size), regionOf(start)
	if p := x.prev[i]; p != none {
		x.next[p] = x.next[i]
	} else {
		x.setHead(c, r, x.next[i])
		if x.next[i] == none {
			x.regions[c].clear(r)
			if _, any := x.regions[c].first(); !any {
				x.classes[c/64] &^= 1 << (c % 64)
			}
		}
	}
	if n := x.next[i]; n != none {
		x.prev[n] = x.prev[i]
	}
	x.ids.del(x.ids.find(uint32(start), func(s int32) bool { return s == i }))
	if size > 1 {
		end := start + page.Pgid(size) - 1
		x.ids.del(x.ids.find(uint32(end), func(s int32) bool { return s == i }))
	}
	x.count -= int(size)
	x.nspans--
	x.size[i] = 0 // a free slot: Spans skips it
	x.next[i] = x.freeSlot
	x.freeSlot = i
	return start, size
}

// Allocate takes n contiguous pages; see the package comment.
func (x *Freelist) Allocate(n int) page.Pgid {
	if n <= 0 || uint64(n) > maxSpan {
		return 0
	}
	c, r := x.lowestFit(fitClass(uint64(n)))
	if c < 0 {
		// No class is sure to fit; n's own power-of-two class may still
		// hold a span large enough. Look at a bounded number of spans of
		// its lowest region, so that this stays O(1).
		c = classOf(uint64(n))
		if c < exactSizes || x.classes[c/64]&(1<<(c%64)) == 0 {
			return 0
		}
		r, _ := x.regions[c].first()
		i := x.head(c, r)
		for tries := 0; i != none && uint64(x.size[i]) < uint64(n); i = x.next[i] {
			if tries++; tries == maxLooks {
				return 0
			}
		}
		if i == none {
			return 0
		}
		return x.take(i, uint64(n))
	}
	return x.take(x.head(c, r), uint64(n))
}

// lowestFit returns, among the non-empty classes from c up, the one whose
// lowest region is lowest (the smallest such class on a tie), and that
// region; -1 if every class from c up is empty. Preferring the low region
// over the snug class keeps live pages low in the file, so that free space
// gathers at the end, where the file can shrink. It reads at most every
// class's bitset: a bounded number of words.
func (x *Freelist) lowestFit(c int) (int, uint64) {
	best, bestR := -1, uint64(0)
	for w := c / 64; w < len(x.classes); w++ {
		mask := x.classes[w]
		if w == c/64 {
			mask &^= (1 << (c % 64)) - 1
		}
		for ; mask != 0; mask &= mask - 1 {
			k := w*64 + bits.TrailingZeros64(mask)
			r, _ := x.regions[k].first()
			if best < 0 || r < bestR {
				best, bestR = k, r
				if r == 0 {
					return best, bestR
				}
			}
		}
	}
	return best, bestR
}

// Take removes the n pages at id if id starts a free span of at least n.
func (x *Freelist) Take(id page.Pgid, n int) bool {
	i := x.lookupStart(id)
	if n <= 0 || i == none || uint64(x.size[i]) < uint64(n) {
		return false
	}
	x.take(i, uint64(n))
	return true
}

// TailRun returns the size of the span that ends at end-1.
func (x *Freelist) TailRun(end page.Pgid) uint64 {
	if end == 0 {
		return 0
	}
	i := x.lookupEnd(end - 1)
	if i == none {
		return 0
	}
	return uint64(x.size[i])
}

// take allocates n pages from the start of span i.
func (x *Freelist) take(i int32, n uint64) page.Pgid {
	start, size := x.remove(i)
	if size > n {
		x.insert(start+page.Pgid(n), size-n)
	}
	return start
}

// Free adds spans, coalescing each with free neighbours.
func (x *Freelist) Free(spans []page.Span) {
	if x.nspans == 0 {
		x.load(spans)
		return
	}
	for _, s := range spans {
		start, size := s.ID, s.N
		for size > maxSpan {
			x.Free([]page.Span{{ID: start, N: maxSpan}})
			start, size = start+maxSpan, size-maxSpan
		}
		if size == 0 {
			continue
		}
		if start > 0 {
			if i := x.lookupEnd(start - 1); i != none && uint64(x.size[i])+size <= maxSpan {
				l, ls := x.remove(i)
				start, size = l, size+ls
			}
		}
		if i := x.lookupStart(start + page.Pgid(size)); i != none && uint64(x.size[i])+size <= maxSpan {
			_, rs := x.remove(i)
			size += rs
		}
		x.insert(start, size)
	}
}

// load fills an empty index from sorted spans: adjacent spans are joined
// in one pass, with no lookups; the id table is sized once and filled in
// one sweep (idTable.fill). An index that never held a span (the one an
// open loads) gets its slots in order and, for many spans, fills the id
// table on another core while this one links the class lists: the two
// share only the slots' starts and sizes, which neither writes.
func (x *Freelist) load(spans []page.Span) {
	if len(x.start) != 0 {
		x.loadSlots(spans)
		return
	}
	x.start = make([]page.Pgid, 0, len(spans))
	x.size = make([]uint32, 0, len(spans))
	eachRun(spans, func(start page.Pgid, n uint64) {
		x.start = append(x.start, start)
		x.size = append(x.size, uint32(n))
	})
	x.prev = make([]int32, len(x.start))
	x.next = make([]int32, len(x.start))
	fill := func() {
		x.ids.reserve(2 * len(x.start))
		// The ends of 32 slots at a time, fill's batch.
		var ends [64]uint32
		for lo := 0; lo < len(x.size); lo += 32 {
			k := 0
			for i := lo; i < min(lo+32, len(x.size)); i++ {
				ends[k] = uint32(i) << 1
				k++
				if x.size[i] > 1 {
					ends[k] = uint32(i)<<1 | 1
					k++
				}
			}
			x.fillIDs(ends[:k])
		}
	}
	if len(x.start) < parallelLoad {
		fill()
	} else {
		done := make(chan struct{})
		go func() {
			defer close(done)
			fill()
		}()
		defer func() { <-done }()
	}
	for i := range x.start {
		x.linkSlot(int32(i))
	}
}

// parallelLoad is the span count from which load fills the id table on
// a second goroutine (at 40,000 spans, an open's largest step).
const parallelLoad = 4096

// loadSlots is load into an index that has slots, free ones among them.
func (x *Freelist) loadSlots(spans []page.Span) {
	x.ids.reserve(2 * len(spans))
	if n := len(x.start) + len(spans); cap(x.start) < n {
		x.start = append(make([]page.Pgid, 0, n), x.start...)
		x.size = append(make([]uint32, 0, n), x.size...)
		x.prev = append(make([]int32, 0, n), x.prev...)
		x.next = append(make([]int32, 0, n), x.next...)
	}
	ends := make([]uint32, 0, 2*len(spans))
	eachRun(spans, func(start page.Pgid, n uint64) {
		i := x.link(start, n)
		ends = append(ends, uint32(i)<<1)
		if n > 1 {
			ends = append(ends, uint32(i)<<1|1)
		}
	})
	x.fillIDs(ends)
}

// eachRun calls fn for each run of sorted spans, adjacent ones joined and
// each cut at maxSpan pages.
func eachRun(spans []page.Span, fn func(start page.Pgid, n uint64)) {
	add := func(start page.Pgid, size uint64) {
		for size > 0 {
			n := min(size, maxSpan)
			fn(start, n)
			start, size = start+page.Pgid(n), size-n
		}
	}
	var start page.Pgid
	var size uint64
	for _, s := range spans {
		if s.N == 0 {
			continue
		}
		if size > 0 && start+page.Pgid(size) == s.ID {
			size += s.N
			continue
		}
		add(start, size)
		start, size = s.ID, s.N
	}
	add(start, size)
}

// fillIDs puts the first page (p = slot<<1) and the last (slot<<1|1) of
// spans in the id table.
func (x *Freelist) fillIDs(ends []uint32) {
	x.ids.fill(ends, func(p uint32) (uint32, int32) {
		i := int32(p >> 1)
		id := x.start[i]
		if p&1 != 0 {
			id += page.Pgid(x.size[i]) - 1
		}
		return uint32(id), i
	})
}

// FreeCount returns the number of free pages.
func (x *Freelist) FreeCount() int { return x.count }

// SpanCount returns the number of free spans.
func (x *Freelist) SpanCount() int { return x.nspans }

// Spans reports the free spans in ascending order.
func (x *Freelist) Spans(fn func(id page.Pgid, n uint64)) {
	if x.nspans == 0 {
		return
	}
	// A counting sort of the live slots by the block of 256 pages
	// their span starts in, then a sort of each block's few spans: linear
	// passes over the slot arrays rather than a walk of the class lists,
	// whose links jump around the table (a checkpoint lists every span).
	const blockShift = 8
	var top page.Pgid
	for i, n := range x.size {
		if n != 0 {
			top = max(top, x.start[i])
		}
	}
	offs := make([]int32, int(top>>blockShift)+2)
	for i, n := range x.size {
		if n != 0 {
			offs[x.start[i]>>blockShift+1]++
		}
	}
	for b := 1; b < len(offs); b++ {
		offs[b] += offs[b-1]
	}
	order := make([]int32, x.nspans)
	for i, n := range x.size {
		if n != 0 {
			b := x.start[i] >> blockShift
			order[offs[b]] = int32(i)
			offs[b]++
		}
	}
	byStart := func(a, b int32) int { return cmp.Compare(x.start[a], x.start[b]) }
	from := 0
	for _, to := range offs[:len(offs)-1] {
		block := order[from:to]
		from = int(to)
		if len(block) > 1 {
			slices.SortFunc(block, byStart)
		}
		for _, i := range block {
			fn(x.start[i], uint64(x.size[i]))
		}
	}
}
