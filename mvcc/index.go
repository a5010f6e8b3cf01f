package mvcc

import (
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
	// maxMain is the largest main revision an event holds: at a million
	// revisions a second, two years.
	maxMain = 1<<(63-subBits) - 1
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

// keyIndex is the history of one key: its events in revision order. A
// generation is a run of puts ended by a tombstone, or by the end of the
// history (the live generation). Compaction drops the oldest events; when
// it drops puts of a generation that survives, the history starts with a
// two-word header giving that generation's create revision and the number
// of its puts dropped (so that versions stay right): hdrMark|created,
// dropped.
type keyIndex struct {
	key string
	ev  []event
}

func (ki *keyIndex) less(o *keyIndex) bool { return ki.key < o.key }

// split returns the header (created revision and dropped puts of the first
// generation, if any) and the events.
func (ki *keyIndex) split() (created, dropped int64, events []event) {
	if len(ki.ev) >= 2 && ki.ev[0]&hdrMark != 0 {
		return int64(ki.ev[0] &^ hdrMark), int64(ki.ev[1]), ki.ev[2:]
	}
	if len(ki.ev) == 0 {
		return 0, 0, nil
	}
	return ki.ev[0].main(), 0, ki.ev
}

// live reports whether the key exists at the end of its history.
func (ki *keyIndex) live() bool {
	_, _, evs := ki.split()
	return len(evs) > 0 && !evs[len(evs)-1].tomb()
}

// put appends a put at r.
func (ki *keyIndex) put(r Revision) { ki.ev = append(ki.ev, mkEvent(r, false)) }

// tombstone appends a delete at r; the key must be live.
func (ki *keyIndex) tombstone(r Revision) { ki.ev = append(ki.ev, mkEvent(r, true)) }

// keyState is a key's state at a revision.
type keyState struct {
	mod     Revision
	created int64
	version int64
}

// get returns the key's state at revision atRev; ok is false if the key
// did not exist then (never created, deleted, or compacted away).
func (ki *keyIndex) get(atRev int64) (st keyState, ok bool) {
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
func (ki *keyIndex) lastAt(atRev int64) (idx int, ok bool) {
	_, _, evs := ki.split()
	n := sort.Search(len(evs), func(i int) bool { return evs[i].main() > atRev })
	return n - 1, n > 0
}

// compactKeeps returns the event a compaction at atRev keeps of the key,
// etcd's rule: its last event at or before atRev, unless that is a
// tombstone before atRev (a tombstone at atRev itself is kept). ok is
// false when nothing is kept.
func (ki *keyIndex) compactKeeps(atRev int64) (idx int, ok bool) {
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
func (ki *keyIndex) hashKeeps(atRev int64) (idx int, ok bool) {
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

// compact drops the events a compaction at atRev no longer needs: every
// event before the one compactKeeps picks (all of them at or before atRev
// if it picks none). It reports whether the key is gone from the index.
func (ki *keyIndex) compact(atRev int64) (gone bool) {
	created, dropped, evs := ki.split()
	last, any := ki.lastAt(atRev)
	if !any {
		return len(evs) == 0
	}
	keep, ok := ki.compactKeeps(atRev)
	if !ok {
		keep = last + 1
	}
	if keep == 0 {
		return false
	}
	if keep == len(evs) {
		ki.ev = nil
		return true
	}
	// The generation of the first kept event, and how many of its puts go.
	start := keep
	for start > 0 && !evs[start-1].tomb() {
		start--
	}
	if start == keep {
		// A whole generation begins there: no header needed.
		ki.ev = append(ki.ev[:0:0], evs[keep:]...)
		return false
	}
	if start > 0 {
		created, dropped = evs[start].main(), 0
	}
	dropped += int64(keep - start)
	out := make([]event, 0, 2+len(evs)-keep)
	out = append(out, event(uint64(created)|hdrMark), event(dropped))
	ki.ev = append(out, evs[keep:]...)
	return false
}

// treeIndex maps each key to its history, ordered by key. Its methods are
// safe for concurrent use; writers (one at a time, the store's) take the
// write lock only to change the tree.
type treeIndex struct {
	mu   sync.RWMutex
	tree *btree.BTreeG[*keyIndex]
	// compacted is the revision of the last compaction, -1 before the
	// first: histories below it are gone. Changed under mu (and the
	// store's writer lock).
	compacted int64
}

func newTreeIndex() *treeIndex {
	return &treeIndex{tree: btree.NewG(32, (*keyIndex).less), compacted: -1}
}

func (ti *treeIndex) lookup(key []byte) *keyIndex {
	ki, _ := ti.tree.Get(&keyIndex{key: string(key)})
	return ki
}

// put records a put of key at r and returns the key's state just before
// (ok false if it did not exist then), in one lookup.
func (ti *treeIndex) put(key []byte, r Revision) (prev keyState, ok bool) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ki := ti.lookup(key); ki != nil {
		prev, ok = ki.get(r.Main)
		ki.put(r)
		return prev, ok
	}
	ki := &keyIndex{key: string(key)}
	ki.put(r)
	ti.tree.ReplaceOrInsert(ki)
	return keyState{}, false
}

// restorePut records, while restoring, a put at r that continues a
// generation whose earlier revisions were compacted: it was created at
// created and r is its version-th put.
func (ti *treeIndex) restorePut(key []byte, r Revision, created, version int64) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ki := ti.lookup(key); ki != nil {
		ki.put(r)
		return
	}
	ki := &keyIndex{key: string(key), ev: []event{event(uint64(created) | hdrMark), event(version - 1), mkEvent(r, false)}}
	ti.tree.ReplaceOrInsert(ki)
}

// tombstone records a delete of key at r; the key must be live.
func (ti *treeIndex) tombstone(key []byte, r Revision) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ki := ti.lookup(key); ki != nil {
		ki.tombstone(r)
	}
}

// get returns key's state at atRev. Read lock held by the caller.
func (ti *treeIndex) get(key []byte, atRev int64) (keyState, bool) {
	ki := ti.lookup(key)
	if ki == nil {
		return keyState{}, false
	}
	return ki.get(atRev)
}

// visit calls fn for each key in [key, end) that exists at atRev, in key
// order, until fn returns false. end nil means key alone; an empty end
// means every key from key on. Read lock held by the caller.
func (ti *treeIndex) visit(key, end []byte, atRev int64, fn func(key string, st keyState) bool) {
	if end == nil {
		if st, ok := ti.get(key, atRev); ok {
			fn(string(key), st)
		}
		return
	}
	toEnd := isToEnd(end)
	ti.tree.AscendGreaterOrEqual(&keyIndex{key: string(key)}, func(ki *keyIndex) bool {
		if !toEnd && ki.key >= string(end) {
			return false
		}
		if st, ok := ki.get(atRev); ok {
			return fn(ki.key, st)
		}
		return true
	})
}

// compact applies a compaction at atRev to every key. It takes the write
// lock for a bounded number of keys at a time, so that readers and the
// writer are not held off for long.
func (ti *treeIndex) compact(atRev int64) {
	const chunk = 4096
	var from string
	for {
		ti.mu.Lock()
		var gone []*keyIndex
		n := 0
		next, more := "", false
		ti.tree.AscendGreaterOrEqual(&keyIndex{key: from}, func(ki *keyIndex) bool {
			if n == chunk {
				next, more = ki.key, true
				return false
			}
			n++
			if ki.compact(atRev) {
				gone = append(gone, ki)
			}
			return true
		})
		for _, ki := range gone {
			ti.tree.Delete(ki)
		}
		ti.mu.Unlock()
		if !more {
			return
		}
		from = next // not compacted yet
	}
}

// keptEvent reports whether the key's history keeps revision r after a
// compaction at atRev: r is the event compactKeeps picks. Read lock held by the
// caller.
func (ti *treeIndex) keptEvent(key []byte, r Revision, atRev int64) bool {
	ki := ti.lookup(key)
	if ki == nil {
		return false
	}
	i, ok := ki.compactKeeps(atRev)
	if !ok {
		return false
	}
	_, _, evs := ki.split()
	return evs[i].rev() == r
}
