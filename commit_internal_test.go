package quiver

import (
	"slices"
	"testing"

	"github.com/quiverdb/quiver/page"
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
		{3, 90000, 100000, true, false}, // steady and too busy for a final round
		{compactMaxRounds, 2000, 4000, true, true},
		{compactMaxRounds, 70000, 200000, true, false},
		{compactMaxRounds - 1, 70000, 200000, false, false},
	} {
		done, ok := roundsDone(c.rounds, c.changes, c.prev)
		if done != c.done || ok != c.ok {
			t.Errorf("roundsDone(%d, %d, %d) = %v, %v; want %v, %v", c.rounds, c.changes, c.prev, done, ok, c.done, c.ok)
		}
	}
}
