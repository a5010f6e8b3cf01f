package freelist

import (
	"fmt"
	"sort"

	"github.com/quiverdb/quiver/internal/invariants"
	"github.com/quiverdb/quiver/page"
)

// Freelist is a set of free pages, kept as spans: the interface both
// implementations (freelist/array, freelist/hashmap) satisfy, and the one
// conformance suite (freelist/freelisttest) tests. Implementations need not be
// safe for concurrent use.
type Freelist interface {
	// Allocate removes n contiguous free pages from the set and returns the
	// first, or 0 if the set holds no run of n pages. n >= 1.
	Allocate(n int) page.Pgid
	// Free adds spans to the set, coalescing with free neighbours. spans is
	// sorted by id, its spans do not overlap each other or the set.
	Free(spans []page.Span)
	// FreeCount returns the number of free pages.
	FreeCount() int
	// Spans calls fn for runs of free pages in ascending order. Adjacent
	// runs may be reported separately.
	Spans(fn func(id page.Pgid, n uint64))
	// Take removes the n pages at id from the set if id starts a run of at
	// least n free pages, and reports whether it did. Replaying a commit's
	// allocations from its record needs it: each was taken from the start
	// of a free run.
	Take(id page.Pgid, n int) bool
	// TailRun returns the length of the free run that ends just before
	// end, where page end is not free (the high-water mark): 0 if page
	// end-1 is not free. A run kept as several spans may be reported in
	// part.
	TailRun(end page.Pgid) uint64
	// Reset empties the set.
	Reset()
}

// pendingSpan is a span freed by a transaction. alloc is the transaction
// that wrote it: readers of snapshots in [alloc, freedBy) can still see it.
type pendingSpan struct {
	page.Span
	alloc page.Txid
}

type pendingTx struct {
	txid  page.Txid
	spans []pendingSpan
}

// Tracker is the bookkeeping both implementations share, over a Freelist:
// pages freed by a transaction stay pending until no reader can see them,
// and the open writer's allocations and frees are remembered for its
// rollback and for its commit record.
type Tracker struct {
	idx     Freelist
	pending []pendingTx // ascending txid
	npend   int         // pages in pending

	// The open writer's changes, undone by Rollback.
	writer    page.Txid
	allocated []page.Span
	appended  []bool // allocated[i] came from the end of the file
	freed     []page.Span
	err       error // an invariant the open writer broke (Err)
}

// New returns a Tracker over the free set idx.
func New(idx Freelist) *Tracker {
	return &Tracker{idx: idx}
}

// FreeSet returns the free set the tracker works over.
func (f *Tracker) FreeSet() Freelist { return f.idx }

func (f *Tracker) begin(txid page.Txid) {
	if f.writer != txid {
		if len(f.allocated) > 0 || len(f.freed) > 0 {
			panic(fmt.Sprintf("freelist: tx %d started while tx %d is uncommitted", txid, f.writer))
		}
		f.writer = txid
	}
}

// Allocate takes n contiguous free pages for writer txid and returns the
// first, or 0 if no run of n free pages exists.
func (f *Tracker) Allocate(txid page.Txid, n int) page.Pgid {
	f.begin(txid)
	id := f.idx.Allocate(n)
	if id != 0 {
		f.noteAllocated(page.Span{ID: id, N: uint64(n)}, false)
	}
	return id
}

// NoteAllocated records that writer txid took n pages at id from outside the
// index (the end of the file), so that they appear in the commit's delta.
func (f *Tracker) NoteAllocated(txid page.Txid, id page.Pgid, n int) {
	f.begin(txid)
	f.noteAllocated(page.Span{ID: id, N: uint64(n)}, true)
}

func (f *Tracker) noteAllocated(s page.Span, appended bool) {
	f.allocated = append(f.allocated, s)
	f.appended = append(f.appended, appended)
}

// Free marks n pages at id, written by transaction alloc, as freed by writer
// txid. They stay pending until Release finds no reader that can see them.
func (f *Tracker) Free(txid, alloc page.Txid, id page.Pgid, n int) {
	f.begin(txid)
	if alloc > txid {
		// Only a damaged header claims a writer after the freeing tx. Treat
		// the pages as visible to every older snapshot: the safe choice.
		alloc = 0
	}
	sp := pendingSpan{Span: page.Span{ID: id, N: uint64(n)}, alloc: alloc}
	if invariants.Enabled && f.err == nil {
		f.err = f.checkNotFree(sp.Span)
	}
	if k := len(f.pending); k == 0 || f.pending[k-1].txid != txid {
		f.pending = append(f.pending, pendingTx{txid: txid})
	}
	last := &f.pending[len(f.pending)-1]
	last.spans = append(last.spans, sp)
	f.npend += n
	f.freed = append(f.freed, sp.Span)
}

// Commit makes writer txid's changes permanent.
func (f *Tracker) Commit(txid page.Txid) {
	if f.writer == txid {
		f.allocated = f.allocated[:0]
		f.appended = f.appended[:0]
		f.freed = f.freed[:0]
	}
}

// Rollback undoes every Allocate, TakeTail, NoteAllocated and Free of
// writer txid. Pages NoteAllocated from the end of the file are not
// returned to the index: the caller restores its high-water mark.
func (f *Tracker) Rollback(txid page.Txid) {
	if f.writer != txid {
		return
	}
	if k := len(f.pending); k > 0 && f.pending[k-1].txid == txid {
		for _, s := range f.pending[k-1].spans {
			f.npend -= int(s.N)
		}
		f.pending = f.pending[:k-1]
	}
	var back []page.Span
	for i, s := range f.allocated {
		if !f.appended[i] {
			back = append(back, s)
		}
	}
	f.freeSorted(back)
	f.allocated = f.allocated[:0]
	f.appended = f.appended[:0]
	f.freed = f.freed[:0]
	f.err = nil
}

// TakeTail takes for writer txid the free run that ends just before end,
// the high-water mark, if it holds at least min pages, and returns its
// length (0 if it took nothing). The database lowers its high-water mark by
// as much, so that the file can shrink; the run is part of the commit's
// allocations, so Rollback returns it.
func (f *Tracker) TakeTail(txid page.Txid, end page.Pgid, min uint64) uint64 {
	n := f.idx.TailRun(end)
	if n == 0 || n < min || n > uint64(end) {
		return 0
	}
	id := end - page.Pgid(n)
	if !f.idx.Take(id, int(n)) {
		return 0
	}
	f.begin(txid)
	f.noteAllocated(page.Span{ID: id, N: n}, false)
	return n
}

// TxAllocated returns the spans the open writer has allocated so far. The
// slice is valid until the next call that changes the freelist.
func (f *Tracker) TxAllocated() []page.Span { return f.allocated }

// TxFreed returns the spans the open writer has freed so far.
func (f *Tracker) TxFreed() []page.Span { return f.freed }

// Release moves pending spans that no reader can see into the index.
// readers holds the snapshot txids of every open read transaction, sorted
// ascending (duplicates allowed). A span freed by T and written by A is
// visible to snapshots A..T-1.
func (f *Tracker) Release(readers []page.Txid) {
	var out []page.Span
	keep := f.pending[:0]
	for _, p := range f.pending {
		if p.txid == f.writer && (len(f.allocated) > 0 || len(f.freed) > 0) {
			keep = append(keep, p) // the open writer's own frees
			continue
		}
		// r is the newest reader older than p.txid.
		i := sort.Search(len(readers), func(i int) bool { return readers[i] >= p.txid })
		if i == 0 {
			for _, s := range p.spans {
				out = append(out, s.Span)
				f.npend -= int(s.N)
			}
			continue
		}
		r := readers[i-1]
		rest := p.spans[:0]
		for _, s := range p.spans {
			if s.alloc > r {
				out = append(out, s.Span)
				f.npend -= int(s.N)
			} else {
				rest = append(rest, s)
			}
		}
		if len(rest) > 0 {
			p.spans = rest
			keep = append(keep, p)
		}
	}
	for i := len(keep); i < len(f.pending); i++ {
		f.pending[i] = pendingTx{}
	}
	f.pending = keep
	f.freeSorted(out)
}

func (f *Tracker) freeSorted(spans []page.Span) {
	if len(spans) == 0 {
		return
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].ID < spans[j].ID })
	f.idx.Free(spans)
}

// FreeCount returns the number of free pages ready for allocation.
func (f *Tracker) FreeCount() int { return f.idx.FreeCount() }

// PendingCount returns the number of freed pages awaiting release.
func (f *Tracker) PendingCount() int { return f.npend }

// Spans calls fn for every free or pending span in ascending order: the set
// that is free once no reader exists, which is what a checkpoint records.
func (f *Tracker) Spans(fn func(id page.Pgid, n uint64)) {
	var pend []page.Span
	for _, p := range f.pending {
		for _, s := range p.spans {
			pend = append(pend, s.Span)
		}
	}
	sort.Slice(pend, func(i, j int) bool { return pend[i].ID < pend[j].ID })
	i := 0
	f.idx.Spans(func(id page.Pgid, n uint64) {
		for i < len(pend) && pend[i].ID < id {
			fn(pend[i].ID, pend[i].N)
			i++
		}
		fn(id, n)
	})
	for ; i < len(pend); i++ {
		fn(pend[i].ID, pend[i].N)
	}
}

// Load resets the freelist to hold exactly spans (ascending), all free.
func (f *Tracker) Load(spans []page.Span) {
	f.idx.Reset()
	f.pending = f.pending[:0]
	f.npend = 0
	f.allocated = f.allocated[:0]
	f.appended = f.appended[:0]
	f.freed = f.freed[:0]
	f.idx.Free(spans)
}

// checkNotFree returns an error if any page of s is already free or
// pending: a double free, which would hand the page to two owners
// (invariants builds only; it walks the whole free set). A corruption
// error, not a panic: a damaged file whose freelist lists a page its tree
// uses leads there too.
func (f *Tracker) checkNotFree(s page.Span) error {
	overlaps := func(id page.Pgid, n uint64) bool {
		return id < s.ID+page.Pgid(s.N) && s.ID < id+page.Pgid(n)
	}
	var err error
	f.idx.Spans(func(id page.Pgid, n uint64) {
		if err == nil && overlaps(id, n) {
			err = page.Corruptf(s.ID, "invariant: freeing pages %d+%d, which overlap free pages %d+%d", s.ID, s.N, id, n)
		}
	})
	for _, p := range f.pending {
		for _, q := range p.spans {
			if err == nil && overlaps(q.ID, q.N) {
				err = page.Corruptf(s.ID, "invariant: freeing pages %d+%d, which overlap pages %d+%d freed by tx %d", s.ID, s.N, q.ID, q.N, p.txid)
			}
		}
	}
	return err
}

// Err returns the first invariant the open writer's changes broke (only
// builds with the invariants tag check them); its commit must fail.
// Rollback clears it.
func (f *Tracker) Err() error { return f.err }
