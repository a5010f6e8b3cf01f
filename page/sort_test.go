package page

import (
	"slices"
	"testing"

	"github.com/quiverdb/quiver/internal/testutil"
)

// TestSortBounds: sortBounds orders bounds by at and keeps every bound,
// for counts on both sides of its radix threshold and largest values of
// one to eight bytes (odd and even numbers of passes).
func TestSortBounds(t *testing.T) {
	r := testutil.Rand(testutil.Seed(t))
	for iter := 0; iter < 200; iter++ {
		n := r.IntN(3000)
		width := 1 + r.IntN(8)
		b := make([]bound, n)
		for i := range b {
			at := r.Uint64()
			if width < 8 {
				at &= 1<<(8*width) - 1
			}
			if r.IntN(4) == 0 && i > 0 {
				at = uint64(b[r.IntN(i)].at) // ties
			}
			b[i] = bound{at: Pgid(at), set: int32(i), start: r.IntN(2) == 0}
		}
		want := slices.Clone(b)
		slices.SortStableFunc(want, func(x, y bound) int {
			switch {
			case x.at < y.at:
				return -1
			case x.at > y.at:
				return 1
			}
			return 0
		})
		sortBounds(b)
		for i := range b {
			if b[i].at != want[i].at {
				t.Fatalf("iteration %d (%d bounds, %d-byte values): bound %d at %d, want %d", iter, n, width, i, b[i].at, want[i].at)
			}
		}
		if n >= 256 && !slices.Equal(b, want) {
			// The radix sort is stable: equal ats keep their order.
			t.Fatalf("iteration %d (%d bounds): ties reordered", iter, n)
		}
	}
}
