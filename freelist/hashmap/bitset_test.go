package hashmap

import (
	"math/rand/v2"
	"sort"
	"testing"
)

func TestBitsetAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var b bitset
	model := map[uint64]bool{}
	for step := 0; step < 3000; step++ {
		i := uint64(r.IntN(1 << 14))
		if r.IntN(10) == 0 {
			i = uint64(r.IntN(1 << 25))
		}
		if r.IntN(2) == 0 {
			b.set(i)
			model[i] = true
		} else {
			b.clear(i)
			delete(model, i)
		}
		var keys []uint64
		for k := range model {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(a, c int) bool { return keys[a] < keys[c] })
		got, ok := b.first()
		if len(keys) == 0 {
			if ok {
				t.Fatalf("step %d: empty set has first %d", step, got)
			}
			continue
		}
		if !ok || got != keys[0] {
			t.Fatalf("step %d: first = %d %v, want %d", step, got, ok, keys[0])
		}
	}
}
