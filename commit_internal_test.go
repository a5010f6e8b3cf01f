package quiver

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quiverdb/quiver/internal/testutil"
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

func TestSubtractSpans(t *testing.T) {
	sp := func(id, n int) page.Span { return page.Span{ID: page.Pgid(id), N: uint64(n)} }
	list := []page.Span{sp(10, 5), sp(20, 1), sp(30, 10)}
	got := subtractSpans(list, []page.Span{
		sp(10, 2),  // front of a span
		sp(20, 1),  // a whole span
		sp(33, 3),  // the middle
		sp(39, 1),  // the end
		sp(100, 4), // from the end of the file: in no span
	})
	want := []page.Span{sp(12, 3), sp(30, 3), sp(36, 3)}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// A cut that crosses from one span into the next (adjacent runs listed
	// apart) takes from both.
	got = subtractSpans([]page.Span{sp(10, 5), sp(15, 5), sp(30, 2)}, []page.Span{sp(13, 4)})
	want = []page.Span{sp(10, 3), sp(17, 3), sp(30, 2)}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestRoundsDone: the catch-up rounds stop when one is quiet, or when they
// stop converging or reach the limit, and then go on to the final round
// only if it would have little enough to apply.
func TestRoundsDone(t *testing.T) {
	for _, c := range []struct {
		rounds, changes, prev int
		done, ok              bool
	}{
		{1, 10, -1, true, true},         // quiet at once
		{1, 5000, -1, false, false},     // first round: go on
		{2, 3000, 5000, false, false},   // converging
		{3, 2900, 3000, true, true},     // steady writers: their pace is the final round's work
		{3, 3100, 3000, true, true},     // a little faster: still a small final round
		{3, 40000, 2000, true, false},   // accelerating: the final round would be 800,000
		{4, 60000, 40000, true, false},  // 90,000 predicted
		{3, 90000, 100000, true, false}, // steady and too busy for a final round
		{defaultCompactLimits.maxRounds, 2000, 4000, true, true},
		{defaultCompactLimits.maxRounds, 70000, 200000, true, false},
		{defaultCompactLimits.maxRounds - 1, 70000, 200000, false, false},
	} {
		done, ok := defaultCompactLimits.roundsDone(c.rounds, c.changes, c.prev)
		if done != c.done || ok != c.ok {
			t.Errorf("roundsDone(%d, %d, %d) = %v, %v; want %v, %v", c.rounds, c.changes, c.prev, done, ok, c.done, c.ok)
		}
	}
}

// TestSubtractSpansRandom checks subtractSpans against a set of pages, with
// cuts in any order, crossing spans and reaching past them.
func TestSubtractSpansRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(internalSeed(t), 1))
	for round := 0; round < 200; round++ {
		const pages = 400
		free := make([]bool, pages)
		var list []page.Span
		for id := 0; id < pages; {
			n := 1 + r.IntN(6)
			if r.IntN(2) == 0 && id+n <= pages {
				// Adjacent free runs may be listed apart.
				list = append(list, page.Span{ID: page.Pgid(id), N: uint64(n)})
				for k := id; k < id+n; k++ {
					free[k] = true
				}
			}
			id += n
		}
		var cut []page.Span
		for id := 0; id < pages+20; {
			n := 1 + r.IntN(8)
			if r.IntN(3) == 0 {
				cut = append(cut, page.Span{ID: page.Pgid(id), N: uint64(n)})
				for k := id; k < id+n && k < pages; k++ {
					free[k] = false
				}
			}
			id += n + r.IntN(3)
		}
		r.Shuffle(len(cut), func(i, j int) { cut[i], cut[j] = cut[j], cut[i] })
		got := make([]bool, pages)
		last := page.Pgid(0)
		for _, s := range subtractSpans(list, cut) {
			if s.N == 0 || s.ID < last {
				t.Fatalf("round %d: span %v empty or out of order", round, s)
			}
			for k := s.ID; k < s.ID+page.Pgid(s.N); k++ {
				got[k] = true
			}
			last = s.ID + page.Pgid(s.N)
		}
		if !slices.Equal(got, free) {
			t.Fatalf("round %d: pages differ from the model", round)
		}
	}
}

// TestCoalesce: writes of touching pages become one, in page order, with
// their bytes, whether their buffers are consecutive in the writer's
// buffer or not; a merge that would copy more than 256 KiB is not made.
func TestCoalesce(t *testing.T) {
	const ps = 4096
	db := &DB{}
	db.wbuf = make([]byte, 0, 8*ps)
	base := db.wbuf[:cap(db.wbuf)]
	fill := func(b []byte, v byte) []byte {
		for i := range b {
			b[i] = v
		}
		return b
	}
	w := func(id int, b []byte) tx.Write { return tx.Write{ID: page.Pgid(id), Buf: b} }
	writes := []tx.Write{
		w(8, fill(base[ps:2*ps], 4)),
		w(5, fill(base[0:ps], 1)),
		w(6, fill(make([]byte, ps), 2)),
		w(7, fill(make([]byte, ps), 3)),
		w(20, fill(base[2*ps:4*ps], 5)),
		w(22, fill(base[4*ps:5*ps], 6)), // consecutive in base: no copy
	}
	// Then a chain of single pages outside base, long enough to pass the
	// copy limit.
	for i := 0; i < 70; i++ {
		writes = append(writes, w(100+i, fill(make([]byte, ps), byte(10+i))))
	}
	out := db.coalesce(writes, ps)
	if len(out) != 4 {
		t.Fatalf("%d writes, want 4", len(out))
	}
	check := func(o tx.Write, id int, vals ...byte) {
		t.Helper()
		if o.ID != page.Pgid(id) || len(o.Buf) != len(vals)*ps {
			t.Fatalf("write at %d of %d pages, want %d of %d", o.ID, len(o.Buf)/ps, id, len(vals))
		}
		for i, v := range vals {
			if o.Buf[i*ps] != v || o.Buf[(i+1)*ps-1] != v {
				t.Fatalf("write at %d: page %d holds %d, want %d", id, i, o.Buf[i*ps], v)
			}
		}
	}
	check(out[0], 5, 1, 2, 3, 4)
	check(out[1], 20, 5, 5, 6)
	chain := make([]byte, 64)
	for i := range chain {
		chain[i] = byte(10 + i)
	}
	check(out[2], 100, chain...)
	check(out[3], 164, 74, 75, 76, 77, 78, 79)
}

// internalSeed returns the seed of a randomised internal test (see
// testutil.Seed).
func internalSeed(t *testing.T) uint64 { return testutil.Seed(t) }
