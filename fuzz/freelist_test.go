package fuzz_test

import (
	"sort"
	"testing"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/freelist/array"
	"github.com/quiverdb/quiver/freelist/hashmap"
	"github.com/quiverdb/quiver/page"
)

// FuzzFreelistDifferential drives the array and the hashmap freelists with
// the same operations (frees, allocations, commits, rollbacks, readers,
// releases) and requires the same free and pending pages after every step.
// Allocation choices may differ: an allocation is kept only when both
// implementations chose the same pages, and rolled back otherwise; either
// way each choice must be a run of pages that was free.
func FuzzFreelistDifferential(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{1, 3, 0, 1, 7, 0, 0, 2, 5, 3, 0, 0, 1, 4, 1, 2, 9, 9, 4, 0, 0})
	f.Add([]byte{5, 5, 5, 1, 1, 1, 0, 0, 0, 2, 2, 2, 3, 3, 3, 4, 4, 4, 1, 15, 0, 0, 30, 1})
	f.Add([]byte("a longer seed that mixes every operation kind many times over"))
	f.Fuzz(differential)
}

func differential(t *testing.T, ops []byte) {
	// Every step compares whole free sets: bound the steps so that one
	// input cannot run for minutes.
	if len(ops) > 4096 {
		ops = ops[:4096]
	}
	{
		impls := []*freelist.Tracker{freelist.New(array.New()), freelist.New(hashmap.New())}
		// Initial free space from the first bytes: runs with holes.
		var spans []page.Span
		used := map[page.Pgid]bool{}
		id := page.Pgid(2)
		for i := 0; i < 8 && i < len(ops); i++ {
			n := uint64(ops[i]%7) + 1
			spans = append(spans, page.Span{ID: id, N: n})
			id += page.Pgid(n)
			for k := 0; k < int(ops[i]%3)+1; k++ {
				used[id] = true
				id++
			}
		}
		for _, f := range impls {
			f.Load(spans)
		}
		txid := page.Txid(10)
		var readers []page.Txid
		for i := 8; i+2 < len(ops); i += 3 {
			kind, a, b := ops[i]%5, int(ops[i+1]), int(ops[i+2])
			txid++
			switch kind {
			case 0: // free a run of used pages
				ids := sortedPages(used)
				if len(ids) == 0 {
					continue
				}
				start := ids[a%len(ids)]
				n := 1
				for n < b%8+1 && used[start+page.Pgid(n)] {
					n++
				}
				for _, f := range impls {
					f.Free(txid, 1, start, n)
				}
				if b&0x80 != 0 {
					for _, f := range impls {
						f.Rollback(txid)
					}
				} else {
					for _, f := range impls {
						f.Commit(txid)
					}
					for k := 0; k < n; k++ {
						delete(used, start+page.Pgid(k))
					}
				}
			case 1: // allocate
				n := a%16 + 1
				got := make([]page.Pgid, len(impls))
				for j, f := range impls {
					before := freePages(f)
					got[j] = f.Allocate(txid, n)
					for k := 0; got[j] != 0 && k < n; k++ {
						if !before[got[j]+page.Pgid(k)] {
							t.Fatalf("op %d: implementation %d allocated page %d, which was not free", i, j, got[j]+page.Pgid(k))
						}
					}
				}
				if got[0] != 0 && got[0] == got[1] && b&0x80 == 0 {
					for _, f := range impls {
						f.Commit(txid)
					}
					for k := 0; k < n; k++ {
						used[got[0]+page.Pgid(k)] = true
					}
				} else {
					for _, f := range impls {
						f.Rollback(txid)
					}
				}
			case 2: // a reader starts at the last commit
				readers = append(readers, txid-1)
			case 3: // a reader ends
				if len(readers) > 0 {
					j := a % len(readers)
					readers = append(readers[:j], readers[j+1:]...)
				}
			case 4:
				sorted := append([]page.Txid(nil), readers...)
				sort.Slice(sorted, func(x, y int) bool { return sorted[x] < sorted[y] })
				for _, f := range impls {
					f.Release(sorted)
				}
			}
			a0, a1 := freePages(impls[0]), freePages(impls[1])
			if len(a0) != len(a1) || impls[0].PendingCount() != impls[1].PendingCount() {
				t.Fatalf("op %d (kind %d): array has %d free and %d pending, hashmap %d and %d", i, kind, len(a0), impls[0].PendingCount(), len(a1), impls[1].PendingCount())
			}
			for p := range a0 {
				if !a1[p] {
					t.Fatalf("op %d (kind %d): page %d free in array only", i, kind, p)
				}
			}
		}
	}
}

func freePages(f *freelist.Tracker) map[page.Pgid]bool {
	set := map[page.Pgid]bool{}
	f.FreeSet().Spans(func(id page.Pgid, n uint64) {
		for k := uint64(0); k < n; k++ {
			set[id+page.Pgid(k)] = true
		}
	})
	return set
}

func sortedPages(m map[page.Pgid]bool) []page.Pgid {
	ids := make([]page.Pgid, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
