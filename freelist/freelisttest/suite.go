package freelisttest

import (
	"flag"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/page"
)

var seedFlag = flag.Uint64("freelist.seed", 0, "seed for the randomised freelist test (also QUIVER_SEED)")

// Run runs the suite against indexes made by newIndex.
func Run(t *testing.T, newIndex func() freelist.Freelist) {
	t.Run("AllocateEmpty", func(t *testing.T) { testAllocateEmpty(t, newIndex) })
	t.Run("AllocateFreeCoalesce", func(t *testing.T) { testAllocateFreeCoalesce(t, newIndex) })
	t.Run("PendingRelease", func(t *testing.T) { testPendingRelease(t, newIndex) })
	t.Run("ReleaseBetweenReaders", func(t *testing.T) { testReleaseBetweenReaders(t, newIndex) })
	t.Run("Rollback", func(t *testing.T) { testRollback(t, newIndex) })
	t.Run("SpansIncludePending", func(t *testing.T) { testSpansIncludePending(t, newIndex) })
	t.Run("Take", func(t *testing.T) { testTake(t, newIndex) })
	t.Run("TakeTail", func(t *testing.T) { testTakeTail(t, newIndex) })
	t.Run("LoadLarge", func(t *testing.T) { testLoadLarge(t, newIndex) })
	t.Run("RandomAgainstModel", func(t *testing.T) { testRandom(t, newIndex) })
}

func testTake(t *testing.T, newIndex func() freelist.Freelist) {
	x := newIndex()
	x.Free([]page.Span{span(10, 5), span(20, 1)})
	for _, c := range []struct {
		id, n int
		ok    bool
	}{
		{11, 1, false}, // not the start of a run
		{10, 6, false}, // longer than the run
		{30, 1, false}, // not free
		{10, 2, true},
		{12, 3, true}, // what is left of the run now starts at 12
		{20, 1, true},
		{20, 1, false}, // gone
	} {
		if got := x.Take(page.Pgid(c.id), c.n); got != c.ok {
			t.Fatalf("Take(%d, %d) = %v, want %v", c.id, c.n, got, c.ok)
		}
	}
	if x.FreeCount() != 0 {
		t.Fatalf("%d pages left", x.FreeCount())
	}
}

func testTakeTail(t *testing.T, newIndex func() freelist.Freelist) {
	f := freelist.New(newIndex())
	// [20,30) is freed in two pieces: the run is whole either way.
	f.FreeSet().Free([]page.Span{span(10, 5), span(20, 5)})
	f.FreeSet().Free([]page.Span{span(25, 5)})
	for _, c := range []struct{ end, want int }{{30, 10}, {31, 0}, {15, 5}, {17, 0}, {0, 0}} {
		if got := f.FreeSet().TailRun(page.Pgid(c.end)); got != uint64(c.want) {
			t.Fatalf("TailRun(%d) = %d, want %d", c.end, got, c.want)
		}
	}
	if n := f.TakeTail(7, 30, 11); n != 0 {
		t.Fatalf("TakeTail with min 11 took %d", n)
	}
	if n := f.TakeTail(7, 30, 10); n != 10 {
		t.Fatalf("TakeTail took %d, want 10", n)
	}
	if f.FreeCount() != 5 || len(f.TxAllocated()) != 1 || f.TxAllocated()[0] != span(20, 10) {
		t.Fatalf("after TakeTail: %d free, allocated %v", f.FreeCount(), f.TxAllocated())
	}
	f.Rollback(7)
	if f.FreeCount() != 15 || f.FreeSet().TailRun(30) != 10 {
		t.Fatalf("after rollback: %d free, tail %d", f.FreeCount(), f.FreeSet().TailRun(30))
	}
}

func span(id, n int) page.Span { return page.Span{ID: page.Pgid(id), N: uint64(n)} }

// freeSet returns the pages an index holds, from Spans.
func freeSet(f *freelist.Tracker) map[page.Pgid]bool {
	set := map[page.Pgid]bool{}
	f.FreeSet().Spans(func(id page.Pgid, n uint64) {
		for i := uint64(0); i < n; i++ {
			set[id+page.Pgid(i)] = true
		}
	})
	return set
}

func testAllocateEmpty(t *testing.T, newIndex func() freelist.Freelist) {
	f := freelist.New(newIndex())
	if id := f.Allocate(1, 1); id != 0 {
		t.Fatalf("empty freelist allocated page %d", id)
	}
	if f.FreeCount() != 0 || f.PendingCount() != 0 {
		t.Fatalf("counts %d %d", f.FreeCount(), f.PendingCount())
	}
}

func testAllocateFreeCoalesce(t *testing.T, newIndex func() freelist.Freelist) {
	f := freelist.New(newIndex())
	f.Load([]page.Span{span(3, 1), span(5, 3), span(10, 2), span(20, 8)})
	if f.FreeCount() != 14 {
		t.Fatalf("FreeCount %d, want 14", f.FreeCount())
	}
	// A run of 3 exists only at 5 and 20; no run of 9 exists.
	if id := f.Allocate(1, 9); id != 0 {
		t.Fatalf("allocated 9 pages at %d from runs of at most 8", id)
	}
	id := f.Allocate(1, 3)
	if id != 5 && id != 20 && !(id >= 20 && id <= 25) {
		t.Fatalf("run of 3 at %d", id)
	}
	if f.FreeCount() != 11 {
		t.Fatalf("FreeCount %d after allocating 3", f.FreeCount())
	}
	f.Commit(1)
	// Release coalesces: freeing 4 joins 3 and 5.. if 5 is free again.
	f.Free(2, 1, id, 3)
	f.Commit(2)
	f.Release(nil)
	if f.FreeCount() != 14 || f.PendingCount() != 0 {
		t.Fatalf("counts %d %d after release", f.FreeCount(), f.PendingCount())
	}
	f.Free(3, 1, 4, 1)
	f.Commit(3)
	f.Release(nil)
	// 3..7 are now one run of 5.
	if got := f.Allocate(4, 5); got != 3 {
		t.Fatalf("run of 5 after coalescing at %d, want 3", got)
	}
}

func testPendingRelease(t *testing.T, newIndex func() freelist.Freelist) {
	f := freelist.New(newIndex())
	// Tx 10 frees pages 100..103 written by tx 4.
	f.Free(10, 4, 100, 4)
	f.Commit(10)
	if f.PendingCount() != 4 || f.FreeCount() != 0 {
		t.Fatalf("counts %d %d", f.PendingCount(), f.FreeCount())
	}
	// A reader of snapshot 9 still sees them.
	f.Release([]page.Txid{9})
	if f.FreeCount() != 0 {
		t.Fatal("released pages a reader of snapshot 9 can see")
	}
	// A reader of snapshot 10 does not.
	f.Release([]page.Txid{10, 12})
	if f.FreeCount() != 4 || f.PendingCount() != 0 {
		t.Fatalf("counts %d %d after release", f.FreeCount(), f.PendingCount())
	}
}

func testReleaseBetweenReaders(t *testing.T, newIndex func() freelist.Freelist) {
	f := freelist.New(newIndex())
	// Pages written by tx 20 and freed by tx 25 are visible to snapshots
	// 20..24 only.
	f.Free(25, 20, 200, 2)
	// Pages written by tx 5 and freed by tx 25: snapshots 5..24.
	f.Free(25, 5, 300, 1)
	f.Commit(25)
	// Readers at 10 and 30: nobody in 20..24, but 10 sees page 300.
	f.Release([]page.Txid{10, 30})
	set := freeSet(f)
	if !set[200] || !set[201] || set[300] {
		t.Fatalf("free set %v: want 200, 201 released and 300 pending", set)
	}
	f.Release(nil)
	if !freeSet(f)[300] {
		t.Fatal("page 300 not released once its reader left")
	}
}

func testRollback(t *testing.T, newIndex func() freelist.Freelist) {
	f := freelist.New(newIndex())
	f.Load([]page.Span{span(10, 10)})
	f.Free(5, 2, 50, 1) // committed earlier
	f.Commit(5)
	before := freeSet(f)
	a := f.Allocate(6, 4)
	f.NoteAllocated(6, 100, 2) // from the end of the file
	f.Free(6, 3, 60, 2)
	if len(f.TxAllocated()) != 2 || len(f.TxFreed()) != 1 {
		t.Fatalf("tx delta %v %v", f.TxAllocated(), f.TxFreed())
	}
	f.Rollback(6)
	if a == 0 {
		t.Fatal("allocation failed")
	}
	after := freeSet(f)
	if len(after) != len(before) {
		t.Fatalf("free set after rollback %v, before %v", after, before)
	}
	for p := range before {
		if !after[p] {
			t.Fatalf("page %d not free after rollback", p)
		}
	}
	if f.PendingCount() != 1 {
		t.Fatalf("pending %d after rollback, want the committed 1", f.PendingCount())
	}
}

func testSpansIncludePending(t *testing.T, newIndex func() freelist.Freelist) {
	f := freelist.New(newIndex())
	f.Load([]page.Span{span(10, 2), span(30, 1)})
	f.Free(7, 3, 20, 3)
	f.Free(7, 3, 5, 1)
	f.Commit(7)
	var got []page.Span
	f.Spans(func(id page.Pgid, n uint64) { got = append(got, page.Span{ID: id, N: n}) })
	want := []page.Span{span(5, 1), span(10, 2), span(20, 3), span(30, 1)}
	if len(got) != len(want) {
		t.Fatalf("Spans %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Spans %v, want %v", got, want)
		}
	}
}

// testRandom drives the freelist with random allocations, frees, commits,
// rollbacks and readers, against a model of which pages are free, pending
// or in use, and checks that no page is handed out twice.
// seed returns the seed of a randomised test, logged: -freelist.seed,
// QUIVER_SEED or the clock.
func seed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed, _ = strconv.ParseUint(os.Getenv("QUIVER_SEED"), 10, 64)
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -freelist.seed %d)", seed, seed)
	return seed
}

// testLoadLarge: an empty index given many spans at once (more than the
// hashmap index loads with a second goroutine) holds exactly their pages;
// freeing every gap between them then joins each span with both
// neighbours, which finds each span by its first page and by its last, so
// that the whole range comes out as one run.
func testLoadLarge(t *testing.T, newIndex func() freelist.Freelist) {
	seed := seed(t)
	r := rand.New(rand.NewPCG(seed, 2))
	x := newIndex()
	var spans, gaps []page.Span
	id := page.Pgid(2)
	for len(spans) < 10000 {
		n := 1 + r.IntN(4)
		if r.IntN(50) == 0 {
			n = 64 + r.IntN(500)
		}
		spans = append(spans, span(int(id), n))
		id += page.Pgid(n)
		if r.IntN(8) != 0 { // else the next span touches this one
			g := 1 + r.IntN(3)
			gaps = append(gaps, span(int(id), g))
			id += page.Pgid(g)
		}
	}
	x.Free(spans)
	want := 0
	for _, s := range spans {
		want += int(s.N)
	}
	if got := x.FreeCount(); got != want {
		t.Fatalf("seed %d: FreeCount %d after loading %d pages", seed, got, want)
	}
	next, i := page.Pgid(0), 0
	x.Spans(func(id page.Pgid, n uint64) {
		if id < next {
			t.Fatalf("seed %d: span %d+%d reported after one ending at %d", seed, id, n, next)
		}
		for p := id; p < id+page.Pgid(n); p++ {
			for i < len(spans) && spans[i].ID+page.Pgid(spans[i].N) <= p {
				i++
			}
			if i == len(spans) || p < spans[i].ID {
				t.Fatalf("seed %d: page %d reported free, never loaded", seed, p)
			}
		}
		next = id + page.Pgid(n)
	})
	x.Free(gaps)
	all := int(id - 2)
	if got := x.FreeCount(); got != all {
		t.Fatalf("seed %d: FreeCount %d with every page of [2, %d) freed", seed, got, id)
	}
	if got := x.Allocate(all); got != 2 {
		t.Fatalf("seed %d: a run of all %d pages at %d, want 2: some gap did not join its neighbours", seed, all, got)
	}
	if x.FreeCount() != 0 {
		t.Fatalf("seed %d: %d pages free after allocating them all", seed, x.FreeCount())
	}
}

func testRandom(t *testing.T, newIndex func() freelist.Freelist) {
	seed := seed(t)
	r := rand.New(rand.NewPCG(seed, 1))
	f := freelist.New(newIndex())
	const hw0 = 2
	hw := page.Pgid(hw0)
	type info struct {
		n      int
		writer page.Txid
	}
	inUse := map[page.Pgid]info{} // first page of a span in use
	// Spans freed by committed txs: while a reader of a snapshot in
	// [writer, freedBy) exists, their pages must not be handed out.
	type gone struct {
		id      page.Pgid
		n       int
		writer  page.Txid
		freedBy page.Txid
	}
	var freedSpans []gone
	var readers []page.Txid
	txid := page.Txid(1)
	for step := 0; step < 3000; step++ {
		txid++
		f.Release(readers)
		type freed struct {
			id page.Pgid
			info
		}
		var allocs []page.Pgid
		var frees []freed
		startHW := hw
		for n := r.IntN(8); n >= 0; n-- {
			if r.IntN(2) == 0 || len(inUse) == 0 {
				k := 1 + r.IntN(4)
				if r.IntN(20) == 0 {
					k = 10 + r.IntN(30)
				}
				id := f.Allocate(txid, k)
				if id == 0 {
					id = hw
					hw += page.Pgid(k)
					f.NoteAllocated(txid, id, k)
				}
				for _, g := range freedSpans {
					if id < g.id+page.Pgid(g.n) && g.id < id+page.Pgid(k) {
						for _, rd := range readers {
							if rd >= g.writer && rd < g.freedBy {
								t.Fatalf("step %d (seed %d): pages %d+%d reused while reader %d sees them (written %d, freed %d)", step, seed, id, k, rd, g.writer, g.freedBy)
							}
						}
					}
				}
				for p := id; p < id+page.Pgid(k); p++ {
					for q, in := range inUse {
						if p >= q && p < q+page.Pgid(in.n) {
							t.Fatalf("step %d (seed %d): page %d allocated while in use", step, seed, p)
						}
					}
				}
				inUse[id] = info{k, txid}
				allocs = append(allocs, id)
			} else {
				ids := make([]page.Pgid, 0, len(inUse))
				for id := range inUse {
					ids = append(ids, id)
				}
				sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
				id := ids[r.IntN(len(ids))]
				in := inUse[id]
				f.Free(txid, in.writer, id, in.n)
				frees = append(frees, freed{id, in})
				delete(inUse, id)
			}
		}
		if r.IntN(5) == 0 {
			f.Rollback(txid)
			hw = startHW
			for _, id := range allocs {
				delete(inUse, id)
			}
			for _, fr := range frees {
				if fr.writer != txid {
					inUse[fr.id] = fr.info
				}
			}
			txid--
			continue
		}
		f.Commit(txid)
		for _, fr := range frees {
			freedSpans = append(freedSpans, gone{fr.id, fr.n, fr.writer, txid})
		}
		if len(freedSpans) > 200 {
			freedSpans = freedSpans[len(freedSpans)-200:]
		}
		// Readers come and go.
		if r.IntN(3) == 0 {
			readers = append(readers, txid)
		}
		if len(readers) > 0 && r.IntN(3) == 0 {
			i := r.IntN(len(readers))
			readers = append(readers[:i], readers[i+1:]...)
		}
		// Free + pending + in use covers [hw0, hw) exactly.
		total := f.FreeCount() + f.PendingCount()
		for _, in := range inUse {
			total += in.n
		}
		if total != int(hw-hw0) {
			t.Fatalf("step %d (seed %d): free %d + pending %d + in use = %d, high water covers %d", step, seed, f.FreeCount(), f.PendingCount(), total, hw-hw0)
		}
	}
	// With no readers, everything pending is released.
	f.Release(nil)
	if f.PendingCount() != 0 {
		t.Fatalf("pending %d with no readers", f.PendingCount())
	}
}
