//go:build invariants

package freelist_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/freelist/hashmap"
	"github.com/quiverdb/quiver/page"
)

// TestDoubleFreeIsReported: with the invariants tag, freeing a page that
// is already free or pending is reported (Err, a corruption error) for the
// commit to fail, instead of giving the page two owners; Rollback clears
// it.
func TestDoubleFreeIsReported(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(f *freelist.Tracker)
	}{
		{"pending", func(f *freelist.Tracker) { f.Free(5, 1, 10, 2); f.Free(5, 1, 11, 1) }},
		{"free", func(f *freelist.Tracker) { f.Free(5, 1, 21, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := freelist.New(hashmap.New())
			f.Load([]page.Span{{ID: 20, N: 4}})
			tc.run(f)
			if err := f.Err(); !errors.Is(err, page.ErrCorrupt) || !strings.Contains(err.Error(), "invariant") {
				t.Fatalf("a double free gave %v, want an invariant's corruption error", err)
			}
			f.Rollback(5)
			if err := f.Err(); err != nil {
				t.Fatalf("after Rollback: %v", err)
			}
		})
	}
}
