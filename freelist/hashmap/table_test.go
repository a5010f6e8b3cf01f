package hashmap

import (
	"math/rand/v2"
	"testing"

	"github.com/quiverdb/quiver/page"
)

// TestIDTableAgainstMap drives puts and deletes (with backward shifts and
// growth) against a map, with keys that share low bits to force probing.
func TestIDTableAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var tb idTable
	model := map[uint32]int32{}
	for step := 0; step < 50000; step++ {
		k := uint32(r.IntN(3000)) * 7
		if _, ok := model[k]; !ok && r.IntN(3) != 0 {
			v := int32(r.IntN(1 << 20))
			tb.put(k, v)
			model[k] = v
		} else if ok {
			pos := tb.find(k, func(int32) bool { return true })
			if pos < 0 || tb.slot(pos) != model[k] {
				t.Fatalf("step %d: key %d at %d, want value %d", step, k, pos, model[k])
			}
			tb.del(pos)
			delete(model, k)
		}
		if tb.n != len(model) {
			t.Fatalf("step %d: %d entries, model %d", step, tb.n, len(model))
		}
	}
	for k, v := range model {
		pos := tb.find(k, func(int32) bool { return true })
		if pos < 0 || tb.slot(pos) != v {
			t.Fatalf("key %d lost", k)
		}
	}
}

func TestHugeSpansAreSplit(t *testing.T) {
	x := New()
	x.Free([]page.Span{{ID: 10, N: 3 << 32}})
	if x.FreeCount() != 3<<32 || x.SpanCount() != 4 { // three of 2^32-1 pages and one of 3
		t.Fatalf("free %d in %d spans", x.FreeCount(), x.SpanCount())
	}
	if id := x.Allocate(1 << 20); id != 10 {
		t.Fatalf("allocated at %d, want the lowest page 10", id)
	}
	// Ids that share their low 32 bits live side by side in the table.
	y := New()
	y.Free([]page.Span{{ID: 5, N: 1}})
	y.Free([]page.Span{{ID: 5 + 1<<32, N: 1}})
	y.Free([]page.Span{{ID: 6, N: 1}}) // joins 5, not 5+2^32
	var got []page.Span
	y.Spans(func(id page.Pgid, n uint64) { got = append(got, page.Span{ID: id, N: n}) })
	if len(got) != 2 || got[0] != (page.Span{ID: 5, N: 2}) || got[1] != (page.Span{ID: 5 + 1<<32, N: 1}) {
		t.Fatalf("spans %v", got)
	}
}
