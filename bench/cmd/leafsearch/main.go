// Command leafsearch measures what key prefixes beside the element offsets
// of a leaf page would buy a point lookup: issue 20's point-get target
// asks for a descent with fewer cache misses than this page format allows.
//
// It lays the benchmarks' data set (-keys keys of 16 bytes, values of
// -value-size bytes, leaves -fill full, in a random order in memory, as in
// a file loaded at random) out twice:
//
//   - offsets: today's leaf format, written and searched with the engine's
//     own accessors (page.PutLeafElem, page.LeafKey) the way the cursor
//     searches a leaf;
//   - prefixes: a prototype in which each slot beside the offset holds
//     four bytes of the key after the leaf's common prefix, so that a
//     binary search reads the slots, one array, and the key bodies only
//     where the four bytes tie.
//
// Then it times lookups of random keys in their leaf (the branch levels
// above are left out: they are the same in both), the two layouts taking
// turns round by round.
//
//	go run ./cmd/leafsearch -keys 1000000 -rounds 4
package main

import (
	"bytes"
	"encoding/binary"
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

// perLeaf is how many elements of elemSize bytes fill a leaf to fill.
func perLeaf(fill float64, elemSize int) int {
	return max(1, int(fill*float64(pageSize-page.HeaderSize)/float64(elemSize)))
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

// putOffsets writes a leaf in today's format.
func putOffsets(value []byte) func(p []byte, keys [][]byte) {
	return func(p []byte, keys [][]byte) {
		page.PutHeader(p, 0, 0, page.FlagLeaf, len(keys), 0)
		off := page.ElemsStart(len(keys))
		for i, k := range keys {
			off = page.PutLeafElem(p, i, off, 0, k, value)
		}
	}
}

// searchOffsets is the cursor's leaf search (tx.searchLeaf).
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

// The prototype: the header's count, then at byte 31 the length of the
// keys' common prefix; slots of 8 bytes (a uint32 offset, then 4 bytes of
// the key after the common prefix, zero-padded, big-endian); bodies as
// today's (flags, uvarint key and value lengths, key, value).
const slotSize = 8

func putPrefixes(value []byte) func(p []byte, keys [][]byte) {
	return func(p []byte, keys [][]byte) {
		page.PutHeader(p, 0, 0, page.FlagLeaf, len(keys), 0)
		first, last := keys[0], keys[len(keys)-1]
		cp := 0
		for cp < min(len(first), len(last), 255) && first[cp] == last[cp] {
			cp++
		}
		p[page.HeaderSize-1] = byte(cp)
		off := page.HeaderSize + slotSize*len(keys)
		for i, k := range keys {
			s := p[page.HeaderSize+slotSize*i:]
			binary.LittleEndian.PutUint32(s, uint32(off))
			copy(s[4:8], k[cp:])
			p[off] = 0
			off++
			off += binary.PutUvarint(p[off:], uint64(len(k)))
			off += binary.PutUvarint(p[off:], uint64(len(value)))
			off += copy(p[off:], k)
			off += copy(p[off:], value)
		}
	}
}

func prefixKey(p []byte, i int) []byte {
	off := int(binary.LittleEndian.Uint32(p[page.HeaderSize+slotSize*i:])) + 1
	ks, n := binary.Uvarint(p[off:])
	off += n
	_, n = binary.Uvarint(p[off:])
	off += n
	return p[off : off+int(ks)]
}

func searchPrefixes(p, key []byte) (int, bool) {
	n := page.Count(p)
	if n == 0 {
		return 0, false
	}
	cp := int(p[page.HeaderSize-1])
	if first := prefixKey(p, 0); cp > 0 && (len(key) < cp || !bytes.Equal(key[:cp], first[:cp])) {
		// Outside the leaf's common prefix: before or after every key.
		if bytes.Compare(key, first) < 0 {
			return 0, false
		}
		return n, false
	}
	var b [4]byte
	copy(b[:], key[cp:])
	want := binary.BigEndian.Uint32(b[:])
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		got := binary.BigEndian.Uint32(p[page.HeaderSize+slotSize*m+4:])
		less := got < want
		if got == want {
			less = bytes.Compare(prefixKey(p, m), key) < 0
		}
		if less {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == n {
		return lo, false
	}
	return lo, bytes.Equal(prefixKey(p, lo), key)
}

// layouts builds both layouts of n keys.
func layouts(n, valueSize int, fill float64, seed uint64) (offsets, prefixes *leaves) {
	value := make([]byte, valueSize)
	elem := page.LeafElemSize(bench.KeySize, valueSize)
	kOff, kPre := perLeaf(fill, elem), perLeaf(fill, elem-4+slotSize)
	order := func(k int) []int {
		return rand.New(rand.NewPCG(seed, uint64(k))).Perm((n + k - 1) / k)
	}
	offsets = build(n, kOff, order(kOff), putOffsets(value))
	offsets.search = searchOffsets
	offsets.key = func(p []byte, i int) []byte { k, _ := page.LeafKey(p, i); return k }
	prefixes = build(n, kPre, order(kPre), putPrefixes(value))
	prefixes.search = searchPrefixes
	prefixes.key = prefixKey
	return offsets, prefixes
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
	fmt.Printf("seed %d; leaves: offsets %d, prefixes %d (%.1f%% more)\n", *seed,
		len(off.data)/pageSize, len(pre.data)/pageSize, 100*(float64(len(pre.data))/float64(len(off.data))-1))
	for r := 0; r < *rounds; r++ {
		a, err := lookups(off, *n, *count, *seed+uint64(r))
		if err == nil {
			var b time.Duration
			if b, err = lookups(pre, *n, *count, *seed+uint64(r)); err == nil {
				fmt.Printf("round %d: offsets %v, prefixes %v a lookup (%.2f×)\n", r+1, a, b, float64(b)/float64(a))
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "leafsearch:", err)
			os.Exit(1)
		}
	}
}
