// Command leafsearch measures what format 2's slots (four key bytes
// beside each element's offset) buy a leaf search against format 1's
// offsets: issue 20's point-get target asks for a descent with fewer cache
// misses.
//
// It lays the benchmarks' data set (-keys keys of 16 bytes, values of
// -value-size bytes, leaves -fill full, in a random order in memory, as in
// a file loaded at random) out twice with the engine's page package:
//
//   - offsets: format 1's leaves (FlagLeaf), searched the way format 1's
//     cursor did, a key compared at each step (sort.Search over
//     page.LeafKey);
//   - slots: format 2's leaves (FlagLeafPrefixed), searched with
//     page.Search, the cursor's search today.
//
// Then it times lookups of random keys in their leaf (the branch levels
// above are left out), the two layouts taking turns round by round.
//
//	go run ./cmd/leafsearch -keys 1000000 -rounds 4
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/quiverdb/quiver/bench"
	"github.com/quiverdb/quiver/page"
)

const pageSize = 4096

// leaves is one layout of the data set: the pages, and the page of each key.
type leaves struct {
	data   []byte
	leafOf []int32
	search func(p, key []byte) (int, bool)
	key    func(p []byte, i int) []byte // element i's key
}

func (l *leaves) page(i int) []byte { return l.data[i*pageSize : (i+1)*pageSize] }

// perLeaf is how many elements of elemSize bytes fill a leaf to fill,
// after overhead bytes (the header, and format 2's common prefix).
func perLeaf(fill float64, overhead, elemSize int) int {
	return max(1, int(fill*float64(pageSize-overhead)/float64(elemSize)))
}

// build lays keys [0, n) out per leaf of k elements, leaf i at page
// order[i], with put writing one leaf from its keys.
func build(n, k int, order []int, put func(p []byte, keys [][]byte)) *leaves {
	nLeaves := (n + k - 1) / k
	l := &leaves{data: make([]byte, nLeaves*pageSize), leafOf: make([]int32, n)}
	keys := make([][]byte, 0, k)
	for i := 0; i < nLeaves; i++ {
		keys = keys[:0]
		for j := i * k; j < min(n, (i+1)*k); j++ {
			key := make([]byte, bench.KeySize)
			bench.PutKey(key, uint64(j))
			keys = append(keys, key)
			l.leafOf[j] = int32(order[i])
		}
		put(l.page(order[i]), keys)
	}
	return l
}

// putLeaf returns a function writing a leaf of the given flags (FlagLeaf
// or FlagLeafPrefixed) from its keys, each with value.
func putLeaf(flags uint16, value []byte) func(p []byte, keys [][]byte) {
	return func(p []byte, keys [][]byte) {
		page.PutHeader(p, 0, 0, flags, len(keys), 0)
		off := page.ElemsStart(len(keys))
		if flags == page.FlagLeafPrefixed {
			first, last := keys[0], keys[len(keys)-1]
			page.PutPrefix(p, first[:page.CommonPrefix(first, last)])
			off = page.PrefixedElemsStart(len(keys))
		}
		for i, k := range keys {
			off = page.PutLeafElem(p, i, off, 0, k, value)
		}
	}
}

// searchOffsets is format 1's cursor's leaf search.
func searchOffsets(p, key []byte) (int, bool) {
	n := page.Count(p)
	i := sort.Search(n, func(i int) bool {
		k, ok := page.LeafKey(p, i)
		return !ok || bytes.Compare(k, key) >= 0
	})
	if i == n {
		return i, false
	}
	k, _ := page.LeafKey(p, i)
	return i, bytes.Equal(k, key)
}

// searchSlots is the cursor's leaf search today.
func searchSlots(p, key []byte) (int, bool) {
	i, _ := page.Search(p, key)
	if i == page.Count(p) {
		return i, false
	}
	k, _ := page.LeafKey(p, i)
	return i, bytes.Equal(k, key)
}

// layouts builds both layouts of n keys.
func layouts(n, valueSize int, fill float64, seed uint64) (offsets, slots *leaves) {
	value := make([]byte, valueSize)
	elem := page.LeafElemSize(bench.KeySize, valueSize) // with a slot: 4 bytes more than an offset
	kOff, kSlot := perLeaf(fill, page.HeaderSize, elem-4), perLeaf(fill, page.SlotsAt, elem)
	order := func(k int) []int {
		return rand.New(rand.NewPCG(seed, uint64(k))).Perm((n + k - 1) / k)
	}
	key := func(p []byte, i int) []byte { k, _ := page.LeafKey(p, i); return k }
	offsets = build(n, kOff, order(kOff), putLeaf(page.FlagLeaf, value))
	offsets.search, offsets.key = searchOffsets, key
	slots = build(n, kSlot, order(kSlot), putLeaf(page.FlagLeafPrefixed, value))
	slots.search, slots.key = searchSlots, key
	return offsets, slots
}

// lookups times count lookups of random keys, each in its leaf.
func lookups(l *leaves, n, count int, seed uint64) (time.Duration, error) {
	rng := rand.New(rand.NewPCG(seed, 7))
	key := make([]byte, bench.KeySize)
	start := time.Now()
	for i := 0; i < count; i++ {
		j := rng.IntN(n)
		bench.PutKey(key, uint64(j))
		if _, ok := l.search(l.page(int(l.leafOf[j])), key); !ok {
			return 0, fmt.Errorf("key %d not found", j)
		}
	}
	return time.Since(start) / time.Duration(count), nil
}

func main() {
	n := flag.Int("keys", 1_000_000, "keys in the data set")
	valueSize := flag.Int("value-size", 100, "value size in bytes")
	fill := flag.Float64("fill", 0.75, "how full the leaves are (a random load leaves them ~75% full)")
	count := flag.Int("lookups", 3_000_000, "lookups per layout and round")
	rounds := flag.Int("rounds", 4, "rounds, the layouts taking turns")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *n < 1 || *valueSize < 0 || *valueSize > 1000 || *fill <= 0 || *fill > 1 || *count < 1 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "leafsearch: want -keys ≥ 1, -value-size 0 to 1000, -fill in (0, 1], -lookups and -rounds ≥ 1")
		os.Exit(2)
	}
	off, pre := layouts(*n, *valueSize, *fill, *seed)
	fmt.Printf("seed %d; leaves: offsets %d, slots %d (%.1f%% more)\n", *seed,
		len(off.data)/pageSize, len(pre.data)/pageSize, 100*(float64(len(pre.data))/float64(len(off.data))-1))
	for r := 0; r < *rounds; r++ {
		a, err := lookups(off, *n, *count, *seed+uint64(r))
		if err == nil {
			var b time.Duration
			if b, err = lookups(pre, *n, *count, *seed+uint64(r)); err == nil {
				fmt.Printf("round %d: offsets %v, slots %v a lookup (%.2f×)\n", r+1, a, b, float64(b)/float64(a))
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "leafsearch:", err)
			os.Exit(1)
		}
	}
}
