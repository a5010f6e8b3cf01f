package array

import (
	"sort"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/page"
)

// Freelist is a sorted slice of free page ids.
type Freelist struct {
	ids []page.Pgid
}

var _ freelist.Freelist = (*Freelist)(nil)

// New returns an empty index.
func New() *Freelist { return &Freelist{} }

// Allocate returns the first run of n consecutive free ids (first fit).
func (a *Freelist) Allocate(n int) page.Pgid {
	if n <= 0 || len(a.ids) < n {
		return 0
	}
	start := 0
	for i := 1; i <= len(a.ids); i++ {
		if i-start == n {
			id := a.ids[start]
			if start == 0 {
				// The lowest ids: drop them from the front, without moving
				// the rest (a commit takes single pages one at a time).
				a.ids = a.ids[n:]
			} else {
				a.ids = append(a.ids[:start], a.ids[i:]...)
			}
			return id
		}
		if i < len(a.ids) && a.ids[i] != a.ids[i-1]+1 {
			start = i
		}
	}
	return 0
}

// Take removes the n ids from id if they are all free and id starts a run.
func (a *Freelist) Take(id page.Pgid, n int) bool {
	i := sort.Search(len(a.ids), func(i int) bool { return a.ids[i] >= id })
	if n <= 0 || i+n > len(a.ids) || a.ids[i] != id || (i > 0 && a.ids[i-1] == id-1) || a.ids[i+n-1] != id+page.Pgid(n-1) {
		return false
	}
	a.ids = append(a.ids[:i], a.ids[i+n:]...)
	return true
}

// TailRun returns the length of the run of free ids ending at end-1.
func (a *Freelist) TailRun(end page.Pgid) uint64 {
	n := uint64(0)
	i := sort.Search(len(a.ids), func(i int) bool { return a.ids[i] >= end }) - 1
	for ; i >= 0 && a.ids[i] == end-1-page.Pgid(n); i-- {
		n++
	}
	return n
}

// Free merges the sorted spans into the sorted id slice.
func (a *Freelist) Free(spans []page.Span) {
	add := 0
	for _, s := range spans {
		add += int(s.N)
	}
	if add == 0 {
		return
	}
	old := a.ids
	merged := make([]page.Pgid, 0, len(old)+add)
	i := 0
	for _, s := range spans {
		for ; i < len(old) && old[i] < s.ID; i++ {
			merged = append(merged, old[i])
		}
		for k := uint64(0); k < s.N; k++ {
			merged = append(merged, s.ID+page.Pgid(k))
		}
	}
	merged = append(merged, old[i:]...)
	a.ids = merged
}

// FreeCount returns the number of free pages.
func (a *Freelist) FreeCount() int { return len(a.ids) }

// Spans reports maximal runs of consecutive free ids.
func (a *Freelist) Spans(fn func(id page.Pgid, n uint64)) {
	for i := 0; i < len(a.ids); {
		j := i + 1
		for j < len(a.ids) && a.ids[j] == a.ids[j-1]+1 {
			j++
		}
		fn(a.ids[i], uint64(j-i))
		i = j
	}
}

// Reset empties the index.
func (a *Freelist) Reset() { a.ids = a.ids[:0] }
