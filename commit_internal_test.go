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
