package mvcc

import (
	"bytes"
	"sort"
	"sync"

	"github.com/google/btree"
)

// An event is one change of a key packed in a word: the revision's main
// part in the high bits, its sub part, and whether the change deleted the
// key (a tombstone). Packing keeps a key's history at 8 bytes a revision.
type event uint64

const (
	subBits = 17
	// MaxTxnOps is the most changes one write transaction may make: the
	// sub revision is packed in subBits bits.
	MaxTxnOps = 1<<subBits - 1
	// hdrMark marks the first word of a history that starts with a header.
	hdrMark = 1 << 63
)

func mkEvent(r Revision, tomb bool) event {
	e := event(uint64(r.Main)<<(subBits+1) | uint64(r.Sub)<<1)
	if tomb {
		e |= 1
	}
	return e
}

func (e event) rev() Revision {
	return Revision{Main: int64(e >> (subBits + 1)), Sub: int64(e>>1) & MaxTxnOps}
}
func (e event) main() int64 { return int64(e >> (subBits + 1)) }
func (e event) tomb() bool  { return e&1 != 0 }

// hist is the history of one key: its events in revision order. A
// generation is a run of puts ended by a tombstone, or by the end of the
// history (the live generation). Compaction drops the oldest events; when
// it drops puts of a generation that survives, the history starts with a
// two-word header giving that generation's create revision and the number
// of its puts dropped (so that versions stay right): hdrMark|created,
// dropped.
type hist []event

// split returns the header (created revision and dropped puts of the first
// generation, if any) and the events.
func (ki hist) split() (created, dropped int64, events []event) {
	if len(ki) >= 2 && ki[0]&hdrMark != 0 {
		return int64(ki[0] &^ hdrMark), int64(ki[1]), ki[2:]
	}
	if len(ki) == 0 {
		return 0, 0, nil
	}
	return ki[0].main(), 0, ki
}

// keyState is a key's state at a revision.
type keyState struct {
	mod     Revision
	created int64
	version int64
}

// get returns the key's state at revision atRev; ok is false if the key
// did not exist then (never created, deleted, or compacted away).
func (ki hist) get(atRev int64) (st keyState, ok bool) {
	created, dropped, evs := ki.split()
	// The last event at or before atRev.
	n := sort.Search(len(evs), func(i int) bool { return evs[i].main() > atRev })
	if n == 0 || evs[n-1].tomb() {
		return st, false
	}
	// The generation holding it starts after the last tombstone before it.
	start := n - 1
	for start > 0 && !evs[start-1].tomb() {
		start--
	}
	st.mod = evs[n-1].rev()
	st.version = int64(n - start)
	if start == 0 {
		st.created = created
		st.version += dropped
	} else {
		st.created = evs[start].main()
	}
	return st, true
}

// lastAt returns the index (in the events of split) of the key's last
// event at or before atRev; ok is false if there is none.
func (ki hist) lastAt(atRev int64) (idx int, ok bool) {
	_, _, evs := ki.split()
	n := sort.Search(len(evs), func(i int) bool { return evs[i].main() > atRev })
	return n - 1, n > 0
}

// compactKeeps returns the event a compaction at atRev keeps of the key,
// etcd's rule: its last event at or before atRev, unless that is a
// tombstone before atRev (a tombstone at atRev itself is kept). ok is
// false when nothing is kept.
func (ki hist) compactKeeps(atRev int64) (idx int, ok bool) {
	i, ok := ki.lastAt(atRev)
	if !ok {
		return 0, false
	}
	_, _, evs := ki.split()
	if e := evs[i]; e.tomb() && e.main() < atRev {
		return 0, false
	}
	return i, true
}

// hashKeeps returns the event etcd's keep set for a hash at atRev holds of
// the key: its last event at or before atRev, unless that is a tombstone.
func (ki hist) hashKeeps(atRev int64) (idx int, ok bool) {
	i, ok := ki.lastAt(atRev)
	if !ok {
		return 0, false
	}
	_, _, evs := ki.split()
	if evs[i].tomb() {
		return 0, false
	}
	return i, true
}

// compacted returns the history without the events a compaction at atRev
// no longer needs: every event before the one compactKeeps picks (all of
// them at or before atRev if it picks none). An empty result means the key
// is gone from the index.
func (ki hist) compacted(atRev int64) hist {
	created, dropped, evs := ki.split()
	last, any := ki.lastAt(atRev)
	if !any {
		return ki
	}
	keep, ok := ki.compactKeeps(atRev)
	if !ok {
		keep = last + 1
	}
	if keep == 0 {
		return ki
	}
	if keep == len(evs) {
		return nil
	}
	// The generation of the first kept event, and how many of its puts go.
	start := keep
	for start > 0 && !evs[start-1].tomb() {
		start--
	}
	if start == keep {
		// A whole generation begins there: no header needed.
		return append(hist(nil), evs[keep:]...)
	}
	if start > 0 {
		created, dropped = evs[start].main(), 0
	}
	dropped += int64(keep - start)
	out := make(hist, 0, 2+len(evs)-keep)
	out = append(out, event(uint64(created)|hdrMark), event(dropped))
	return append(out, evs[keep:]...)
}

// The index keeps keys in blocks of up to maxBlockKeys consecutive keys,
// and the blocks in a github.com/google/btree ordered by their lower
// bounds: a block holds the keys from its bound up to the next block's.
// A block stores its keys back to back in one byte slice and their
// histories back to back in one event slice, with offsets: a key costs its
// bytes, two offsets and 8 bytes a revision, not a struct, a pointer and
// two allocations of its own.
const maxBlockKeys = 64

type block struct {
	keys []byte
	koff []uint32 // key i is keys[koff[i]:koff[i+1]]
	evs  []event
	eoff []uint32 // the history of key i is evs[eoff[i]:eoff[i+1]]
	// lo is the block's lower bound, its own copy of its first key when it
	// was made. Removing keys leaves it alone, so that a block's place in
	// the tree never depends on its keys (an emptied block can still be
	// found and deleted); only a key below the first block lowers it.
	lo []byte
}

func newBlock(lo []byte) *block {
	return &block{koff: []uint32{0}, eoff: []uint32{0}, lo: bytes.Clone(lo)}
}

func (b *block) n() int           { return len(b.koff) - 1 }
func (b *block) key(i int) []byte { return b.keys[b.koff[i]:b.koff[i+1]:b.koff[i+1]] }
func (b *block) hist(i int) hist  { return hist(b.evs[b.eoff[i]:b.eoff[i+1]:b.eoff[i+1]]) }
func pivot(key []byte) *block     { return &block{lo: key} }
func blockLess(a, b *block) bool  { return bytes.Compare(a.lo, b.lo) < 0 }

// find returns the position of key in b, or where it would be inserted.
func (b *block) find(key []byte) (int, bool) {
	i := sort.Search(b.n(), func(i int) bool { return bytes.Compare(b.key(i), key) >= 0 })
	return i, i < b.n() && bytes.Equal(b.key(i), key)
}

// insert puts key with history h at position i.
func (b *block) insert(i int, key []byte, h hist) {
	ko, eo := int(b.koff[i]), int(b.eoff[i])
	b.keys = append(b.keys, key...) // room at the end, then shift up
	copy(b.keys[ko+len(key):], b.keys[ko:len(b.keys)-len(key)])
	copy(b.keys[ko:], key)
	b.evs = append(b.evs, h...)
	copy(b.evs[eo+len(h):], b.evs[eo:len(b.evs)-len(h)])
	copy(b.evs[eo:], h)
	b.koff = append(b.koff, 0)
	copy(b.koff[i+1:], b.koff[i:])
	b.eoff = append(b.eoff, 0)
	copy(b.eoff[i+1:], b.eoff[i:])
	for j := i + 1; j < len(b.koff); j++ {
		b.koff[j] += uint32(len(key))
		b.eoff[j] += uint32(len(h))
	}
}

// appendEvent appends e to the history of key i.
func (b *block) appendEvent(i int, e event) {
	at := b.eoff[i+1]
	b.evs = append(b.evs, 0)
	copy(b.evs[at+1:], b.evs[at:])
	b.evs[at] = e
	for j := i + 1; j < len(b.eoff); j++ {
		b.eoff[j]++
	}
}

// setHist replaces the history of key i.
func (b *block) setHist(i int, h hist) {
	lo, hi := b.eoff[i], b.eoff[i+1]
	tail := append(hist(nil), b.evs[hi:]...)
	b.evs = append(append(b.evs[:lo], h...), tail...)
	d := len(h) - int(hi-lo)
	for j := i + 1; j < len(b.eoff); j++ {
		b.eoff[j] = uint32(int(b.eoff[j]) + d)
	}
}

// remove deletes key i.
func (b *block) remove(i int) {
	kl, el := b.koff[i+1]-b.koff[i], b.eoff[i+1]-b.eoff[i]
	b.keys = append(b.keys[:b.koff[i]], b.keys[b.koff[i+1]:]...)
	b.evs = append(b.evs[:b.eoff[i]], b.evs[b.eoff[i+1]:]...)
	b.koff = append(b.koff[:i+1], b.koff[i+2:]...)
	b.eoff = append(b.eoff[:i+1], b.eoff[i+2:]...)
	for j := i + 1; j < len(b.koff); j++ {
		b.koff[j] -= kl
		b.eoff[j] -= el
	}
}

// splitOff moves the upper half of b into a new block, each sized to fit.
func (b *block) splitOff() *block {
	m := b.n() / 2
	nb := &block{
		keys: append([]byte(nil), b.keys[b.koff[m]:]...),
		evs:  append([]event(nil), b.evs[b.eoff[m]:]...),
		lo:   bytes.Clone(b.key(m)),
	}
	for j := m; j < len(b.koff); j++ {
		nb.koff = append(nb.koff, b.koff[j]-b.koff[m])
		nb.eoff = append(nb.eoff, b.eoff[j]-b.eoff[m])
	}
	b.keys = append([]byte(nil), b.keys[:b.koff[m]]...)
	b.evs = append([]event(nil), b.evs[:b.eoff[m]]...)
	b.koff = append([]uint32(nil), b.koff[:m+1]...)
	b.eoff = append([]uint32(nil), b.eoff[:m+1]...)
	return nb
}

// treeIndex maps each key to its history, ordered by key. Its methods
// that change it take the write lock; the others expect the caller to hold
// the read lock.
type treeIndex struct {
	mu   sync.RWMutex
	tree *btree.BTreeG[*block]
	// compacted is the revision of the last compaction, -1 before the
	// first: histories below it are gone. Changed under mu (and the
	// store's writer lock).
	compacted int64
}

func newTreeIndex() *treeIndex {
	return &treeIndex{tree: btree.NewG(16, blockLess), compacted: -1}
}

// locate returns the block that holds key or would, and its position
// there. b is nil only for an empty index.
func (ti *treeIndex) locate(key []byte) (b *block, i int, found bool) {
	ti.tree.DescendLessOrEqual(pivot(key), func(x *block) bool { b = x; return false })
	if b == nil {
		// Below every block's first key: the first block takes it.
		if b, _ = ti.tree.Min(); b == nil {
			return nil, 0, false
		}
		return b, 0, false
	}
	i, found = b.find(key)
	return b, i, found
}

// insert adds a new key with history h. Write lock held.
func (ti *treeIndex) insert(b *block, i int, key []byte, h hist) {
	if b == nil {
		b = newBlock(key)
		b.insert(0, key, h)
		ti.tree.ReplaceOrInsert(b)
		return
	}
	if bytes.Compare(key, b.lo) < 0 {
		// Only the first block takes keys below its bound (locate): it
		// stays first with the bound lowered.
		b.lo = bytes.Clone(key)
	}
	b.insert(i, key, h)
	if b.n() > maxBlockKeys {
		ti.tree.ReplaceOrInsert(b.splitOff())
	}
}

// put records a put of key at r and returns the key's state just before
// (ok false if it did not exist then), in one lookup.
func (ti *treeIndex) put(key []byte, r Revision) (prev keyState, ok bool) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	b, i, found := ti.locate(key)
	if found {
		prev, ok = b.hist(i).get(r.Main)
		b.appendEvent(i, mkEvent(r, false))
		return prev, ok
	}
	ti.insert(b, i, key, hist{mkEvent(r, false)})
	return keyState{}, false
}

// load fills an empty index with the histories of hs, in blocks three
// quarters full (room for the keys that come later) and sized to fit.
func (ti *treeIndex) load(hs map[string]hist) {
	keys := make([]string, 0, len(hs))
	for k := range hs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ti.mu.Lock()
	defer ti.mu.Unlock()
	const fill = maxBlockKeys * 3 / 4
	b := newBlock(nil)
	flush := func() {
		b.keys = append([]byte(nil), b.keys...)
		b.evs = append([]event(nil), b.evs...)
		b.lo = bytes.Clone(b.key(0))
		ti.tree.ReplaceOrInsert(b)
		b = newBlock(nil)
	}
	for _, k := range keys {
		b.keys = append(b.keys, k...)
		b.evs = append(b.evs, hs[k]...)
		b.koff = append(b.koff, uint32(len(b.keys)))
		b.eoff = append(b.eoff, uint32(len(b.evs)))
		if b.n() == fill {
			flush()
		}
	}
	if b.n() > 0 {
		flush()
	}
}

// tombstone records a delete of key at r; the key must be live.
func (ti *treeIndex) tombstone(key []byte, r Revision) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if b, i, found := ti.locate(key); found {
		b.appendEvent(i, mkEvent(r, true))
	}
}

// history returns key's history, nil if the index has none. Read lock held.
func (ti *treeIndex) history(key []byte) hist {
	if b, i, found := ti.locate(key); found {
		return b.hist(i)
	}
	return nil
}

// get returns key's state at atRev. Read lock held.
func (ti *treeIndex) get(key []byte, atRev int64) (keyState, bool) {
	return ti.history(key).get(atRev)
}

// ascendFrom calls fn for each key from key on (every key if key is nil),
// with its history, until fn returns false. The slices are valid until
// the index changes. Read lock held.
func (ti *treeIndex) ascendFrom(key []byte, fn func(key []byte, h hist) bool) {
	start := 0
	var from *block
	if key != nil {
		if from, start, _ = ti.locate(key); from == nil {
			return
		}
	} else if from, _ = ti.tree.Min(); from == nil {
		return
	}
	first := true
	ti.tree.AscendGreaterOrEqual(from, func(b *block) bool {
		i := 0
		if first {
			i, first = start, false
		}
		for ; i < b.n(); i++ {
			if !fn(b.key(i), b.hist(i)) {
				return false
			}
		}
		return true
	})
}

// visit calls fn for each key in [key, end) that exists at atRev, in key
// order, until fn returns false. end nil means key alone; an empty end
// means every key from key on. The key passed to fn is valid until the
// index changes. Read lock held.
func (ti *treeIndex) visit(key, end []byte, atRev int64, fn func(key []byte, st keyState) bool) {
	if end == nil {
		if st, ok := ti.get(key, atRev); ok {
			fn(key, st)
		}
		return
	}
	toEnd := isToEnd(end)
	ti.ascendFrom(key, func(k []byte, h hist) bool {
		if !toEnd && bytes.Compare(k, end) >= 0 {
			return false
		}
		if st, ok := h.get(atRev); ok {
			return fn(k, st)
		}
		return true
	})
}

// compact applies a compaction at atRev to every key. It takes the write
// lock for a bounded number of blocks at a time, so that readers and the
// writer are not held off for long.
func (ti *treeIndex) compact(atRev int64) {
	const chunk = 64 // blocks
	var next []byte  // the bound of the first block not compacted yet
	for first := true; first || next != nil; first = false {
		ti.mu.Lock()
		var from *block
		if first {
			from, _ = ti.tree.Min()
		} else {
			// The block holding next now. Look down, not up: when every
			// block before it was emptied and deleted, a put may since have
			// lowered its bound below next.
			ti.tree.DescendLessOrEqual(pivot(next), func(b *block) bool { from = b; return false })
			if from == nil {
				from, _ = ti.tree.Min()
			}
		}
		next = nil
		var empty []*block
		n := 0
		visit := func(b *block) bool {
			if n == chunk {
				next = bytes.Clone(b.lo)
				return false
			}
			n++
			for i := 0; i < b.n(); {
				h := b.hist(i)
				c := h.compacted(atRev)
				switch {
				case len(c) == 0:
					b.remove(i)
					continue
				case len(c) != len(h) || c[0] != h[0]:
					b.setHist(i, c)
				}
				i++
			}
			if b.n() == 0 {
				empty = append(empty, b)
			}
			return true
		}
		if from != nil {
			ti.tree.AscendGreaterOrEqual(from, visit)
		}
		for _, b := range empty {
			ti.tree.Delete(b)
		}
		ti.mu.Unlock()
		if next != nil && compactChunkHook != nil {
			compactChunkHook()
		}
	}
}

// compactChunkHook, if set by a test, runs between the chunks of an index
// compaction, with no lock held.
var compactChunkHook func()

// keptEvent reports whether the key's history keeps revision r after a
// compaction at atRev: r is the event compactKeeps picks. Read lock held.
func (ti *treeIndex) keptEvent(key []byte, r Revision, atRev int64) bool {
	h := ti.history(key)
	i, ok := h.compactKeeps(atRev)
	if !ok {
		return false
	}
	_, _, evs := h.split()
	return evs[i].rev() == r
}
