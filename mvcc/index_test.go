package mvcc

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/quiverdb/quiver/internal/testutil"
)

// TestIndexBlocks drives the block index with many keys (so blocks split,
// empty and are skipped across) against a model of plain per-key
// histories: puts, tombstones, compactions, and reads of single keys and
// ranges at past revisions.
func TestIndexBlocks(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 1))
	ti := newTreeIndex()
	model := map[string]hist{}
	key := func() []byte { return []byte(fmt.Sprintf("k%05d", r.IntN(3000))) }
	rev := int64(1)
	compacted := int64(-1)
	check := func(at int64) {
		t.Helper()
		// Every key of the model, in order, through visit.
		var want []string
		for k, h := range model {
			if st, ok := h.get(at); ok {
				want = append(want, fmt.Sprint(k, st))
			}
		}
		sort.Strings(want)
		var got []string
		ti.visit([]byte("k"), []byte{}, at, func(k []byte, st keyState) bool {
			got = append(got, fmt.Sprint(string(k), st))
			return true
		})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: at revision %d (compacted %d): %d keys, want %d", seed, at, compacted, len(got), len(want))
		}
		// A range that starts inside a block.
		lo, hi := key(), key()
		if bytes.Compare(lo, hi) > 0 {
			lo, hi = hi, lo
		}
		n := 0
		ti.visit(lo, hi, at, func(k []byte, _ keyState) bool {
			if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
				t.Fatalf("key %s outside [%s, %s)", k, lo, hi)
			}
			n++
			return true
		})
		m := 0
		for _, w := range want {
			if w >= string(lo) && w < string(hi) {
				m++
			}
		}
		if n != m {
			t.Fatalf("seed %d: [%s, %s) at %d: %d keys, want %d", seed, lo, hi, at, n, m)
		}
	}
	for step := 0; step < 20000; step++ {
		rev++
		k := key()
		h := model[string(k)]
		switch {
		case r.IntN(4) == 0 && len(h) > 0 && !h[len(h)-1].tomb():
			ti.tombstone(k, Revision{Main: rev})
			model[string(k)] = append(h, mkEvent(Revision{Main: rev}, true))
		default:
			ti.put(k, Revision{Main: rev})
			model[string(k)] = append(h, mkEvent(Revision{Main: rev}, false))
		}
		if step%2000 == 1999 {
			at := compacted + 1 + r.Int64N(rev-compacted)
			ti.compact(at)
			compacted = at
			for k, h := range model {
				if c := h.compacted(at); len(c) == 0 {
					delete(model, k)
				} else {
					model[k] = c
				}
			}
		}
		if step%500 == 0 {
			check(max(compacted, 1) + r.Int64N(rev-max(compacted, 1)+1))
			check(rev)
		}
	}
	n := 0
	ti.tree.Ascend(func(b *block) bool {
		if b.n() == 0 || b.n() > maxBlockKeys {
			t.Fatalf("a block of %d keys", b.n())
		}
		n++
		return true
	})
	if n < 10 {
		t.Fatalf("only %d blocks: the test did not split", n)
	}
}

// testSeed returns the seed of a randomised test (see testutil.Seed).
func testSeed(t *testing.T) uint64 { return testutil.Seed(t) }

// TestIndexCompactEmptiesBlocks deletes every key of many blocks (more
// than one compaction chunk) and compacts them away: the emptied blocks
// leave the tree, the rest stay readable, and keys put afterwards below,
// between and above the survivors land in order.
func TestIndexCompactEmptiesBlocks(t *testing.T) {
	ti := newTreeIndex()
	rev := int64(1)
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%06d", i)) }
	const n = 20000 // ~ 600 blocks after splits
	for i := 0; i < n; i++ {
		rev++
		ti.put(key(i), Revision{Main: rev})
	}
	// Delete all but every 1000th key of the lower 3/4, and all of the
	// blocks in the middle of that.
	live := map[int]bool{}
	for i := 0; i < n; i++ {
		if i < n*3/4 && (i%1000 != 0 || (i > 5000 && i < 9000)) {
			rev++
			ti.tombstone(key(i), Revision{Main: rev})
			continue
		}
		live[i] = true
	}
	ti.compact(rev)
	var got []string
	ti.visit([]byte{}, []byte{}, rev, func(k []byte, _ keyState) bool {
		got = append(got, string(k))
		return true
	})
	if len(got) != len(live) {
		t.Fatalf("%d keys after compaction, want %d", len(got), len(live))
	}
	blocks := 0
	ti.tree.Ascend(func(b *block) bool {
		if b.n() == 0 {
			t.Fatalf("an empty block stayed in the tree (bound %q)", b.lo)
		}
		blocks++
		return true
	})
	// Then compact the rest away entirely, and refill.
	for i := range live {
		rev++
		ti.tombstone(key(i), Revision{Main: rev})
	}
	rev++ // a tombstone at the compaction revision stays
	ti.compact(rev)
	if ti.tree.Len() != 0 {
		t.Fatalf("%d blocks left after every key was compacted away", ti.tree.Len())
	}
	for _, i := range []int{500, 100, 7000, 3, 19999} {
		rev++
		ti.put(key(i), Revision{Main: rev})
	}
	got = got[:0]
	ti.visit([]byte{}, []byte{}, rev, func(k []byte, _ keyState) bool {
		got = append(got, string(k))
		return true
	})
	if want := "[k000003 k000100 k000500 k007000 k019999]"; fmt.Sprint(got) != want {
		t.Fatalf("after a refill: %v, want %s", got, want)
	}
}

// TestIndexCompactWithPutsBetweenChunks: puts and deletes between the
// chunks of an index compaction (behind, at and ahead of its cursor,
// including into blocks it emptied) leave the index as compacting first
// and writing after would.
func TestIndexCompactWithPutsBetweenChunks(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("QUIVER_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (QUIVER_SEED to replay)", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%06d", i)) }
	const n = 30000
	// The history up to the compaction: three revisions a key, and every
	// key of a few ranges deleted.
	build := func() *treeIndex {
		ti := newTreeIndex()
		rev := int64(1)
		for round := 0; round < 3; round++ {
			for i := 0; i < n; i++ {
				rev++
				ti.put(key(i), Revision{Main: rev})
			}
		}
		for i := 0; i < n; i++ {
			if i%10000 < 3000 {
				rev++
				ti.tombstone(key(i), Revision{Main: rev})
			}
		}
		return ti
	}
	atRev := int64(3*n + 3*3000 + 1)
	type op struct {
		key  []byte
		rev  int64
		tomb bool
	}
	// Deletes, as the store makes them, only of live keys.
	live := map[int]bool{}
	for i := 0; i < n; i++ {
		live[i] = i%10000 >= 3000
	}
	var ops []op
	rev := atRev
	for i := 0; i < 4000; i++ {
		rev++
		k := r.IntN(n + 5000)
		tomb := live[k] && r.IntN(4) == 0
		live[k] = !tomb
		ops = append(ops, op{key(k), rev, tomb})
	}
	apply := func(ti *treeIndex, o op) {
		if o.tomb {
			ti.tombstone(o.key, Revision{Main: o.rev})
		} else {
			ti.put(o.key, Revision{Main: o.rev})
		}
	}

	want := build()
	want.compact(atRev)
	for _, o := range ops {
		apply(want, o)
	}

	got := build()
	chunks := 0
	compactChunkHook = func() {
		chunks++
		for k := 0; k < 100 && len(ops) > 0; k++ {
			apply(got, ops[0])
			ops = ops[1:]
		}
	}
	defer func() { compactChunkHook = nil }()
	got.compact(atRev)
	compactChunkHook = nil
	t.Logf("%d chunks; %d operations left for after the compaction", chunks, len(ops))
	if chunks < 3 {
		t.Fatalf("the compaction ran in %d chunks: the test needs several", chunks)
	}
	for _, o := range ops {
		apply(got, o)
	}
	dump := func(ti *treeIndex) []string {
		var out []string
		ti.ascendFrom(nil, func(k []byte, h hist) bool {
			out = append(out, fmt.Sprintf("%s %v", k, h))
			return true
		})
		return out
	}
	g, w := dump(got), dump(want)
	if len(g) != len(w) {
		t.Fatalf("%d keys, want %d", len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("key %d: %s, want %s", i, g[i], w[i])
		}
	}
}
