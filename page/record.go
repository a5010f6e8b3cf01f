package page

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// Span is a run of N contiguous pages starting at ID.
type Span struct {
	ID Pgid
	N  uint64
}

// Written is one page span a commit wrote, with the checksum in its header.
type Written struct {
	ID       Pgid
	N        uint32
	Checksum uint64
}

// Record is a decoded commit record.
type Record struct {
	Txid      Txid
	Prev      Pgid // the previous record since the last checkpoint, 0 if none
	Written   []Written
	Freed     []Span
	Allocated []Span
}

const recordFixed = HeaderSize + 32

// RecordSize is the byte size of a record with the given list lengths.
func RecordSize(written, freed, allocated int) int {
	return recordFixed + 24*written + 16*(freed+allocated)
}

// PutRecord encodes r into b (zeroed, of at least RecordSize bytes rounded
// to whole pages) as page id and seals it.
func PutRecord(b []byte, id Pgid, pageSize int, r *Record) {
	PutHeader(b, id, r.Txid, FlagCommit, 0, uint32(len(b)/pageSize-1))
	le := binary.LittleEndian
	le.PutUint64(b[HeaderSize:], uint64(len(r.Written)))
	le.PutUint64(b[HeaderSize+8:], uint64(len(r.Freed)))
	le.PutUint64(b[HeaderSize+16:], uint64(len(r.Allocated)))
	le.PutUint64(b[HeaderSize+24:], uint64(r.Prev))
	off := recordFixed
	for _, w := range r.Written {
		le.PutUint64(b[off:], uint64(w.ID))
		le.PutUint32(b[off+8:], w.N)
		le.PutUint64(b[off+16:], w.Checksum)
		off += 24
	}
	for _, list := range [][]Span{r.Freed, r.Allocated} {
		for _, s := range list {
			le.PutUint64(b[off:], uint64(s.ID))
			le.PutUint64(b[off+8:], s.N)
			off += 16
		}
	}
	Seal(b)
}

// DecodeRecord decodes the commit record span b read for page id. The caller
// has verified the span (Verify).
func DecodeRecord(b []byte, id Pgid) (*Record, error) {
	if len(b) < recordFixed {
		return nil, Corruptf(id, "short commit record")
	}
	if Flags(b) != FlagCommit {
		return nil, Corruptf(id, "expected a commit record, found a %s page", FlagName(Flags(b)))
	}
	le := binary.LittleEndian
	nw, nf, na := le.Uint64(b[HeaderSize:]), le.Uint64(b[HeaderSize+8:]), le.Uint64(b[HeaderSize+16:])
	max := uint64(len(b))
	if nw > max/24 || nf > max/16 || na > max/16 || uint64(RecordSize(int(nw), int(nf), int(na))) > max {
		return nil, Corruptf(id, "commit record counts %d/%d/%d exceed its %d bytes", nw, nf, na, len(b))
	}
	r := &Record{Txid: TxidOf(b), Prev: Pgid(le.Uint64(b[HeaderSize+24:])), Written: make([]Written, nw), Freed: make([]Span, nf), Allocated: make([]Span, na)}
	off := recordFixed
	for i := range r.Written {
		r.Written[i] = Written{ID: Pgid(le.Uint64(b[off:])), N: le.Uint32(b[off+8:]), Checksum: le.Uint64(b[off+16:])}
		off += 24
	}
	for _, list := range [][]Span{r.Freed, r.Allocated} {
		for i := range list {
			list[i] = Span{ID: Pgid(le.Uint64(b[off:])), N: le.Uint64(b[off+8:])}
			off += 16
		}
	}
	return r, nil
}

// Replay applies the freelist deltas of records (oldest first) to the free
// spans of a checkpoint (ascending) and returns the free spans after them,
// ascending and joined. A record's allocations are applied before its
// frees. Every span a record lists sets the state of its pages, a later one
// overriding an earlier one, so the work is O(k log k) in the k spans the
// records list (a radix sort, then a sweep with a heap) plus linear in the
// checkpoint's spans, whatever the spans' lengths. Where base has the spare
// capacity, the result takes its array.
func Replay(base []Span, records []*Record) []Span {
	return merge(base, touchedBy(records))
}

// touchedBy returns the ranges records set, ascending and disjoint, each
// with the state the latest record gave it.
func touchedBy(records []*Record) []spanSet {
	n := 0
	for _, r := range records {
		n += len(r.Allocated) + len(r.Freed)
	}
	sets := make([]spanSet, 0, n)
	for _, r := range records {
		for _, sp := range r.Allocated {
			sets = append(sets, spanSet{id: sp.ID, end: sp.ID + Pgid(sp.N), free: false})
		}
		for _, sp := range r.Freed {
			sets = append(sets, spanSet{id: sp.ID, end: sp.ID + Pgid(sp.N), free: true})
		}
	}
	return latestSets(sets)
}

// mergeRoom is the capacity beyond its spans that base needs for merge to
// work in place.
func mergeRoom(touched []spanSet) int { return 2*len(touched) + 1 }

// merge returns base's spans less the touched ranges, with the free touched
// ranges added, ascending and joined. When base has mergeRoom spare
// capacity, the result takes base's array (base's spans are then gone).
func merge(base []Span, touched []spanSet) []Span {
	var out []Span
	if room := mergeRoom(touched); cap(base)-len(base) >= room {
		// In place: base moves up by room and out grows from the front.
		// Once merge has read base span j, it has written at most j+1
		// spans for base spans and two (a gap and a free range) for each
		// touched range, at most 2*len(touched) in all: it never writes
		// over a span it has yet to read.
		buf := base[:len(base)+room]
		copy(buf[room:], base)
		base, out = buf[room:], buf[:0]
	} else {
		out = make([]Span, 0, len(base)+len(touched))
	}
	emit := func(id Pgid, n uint64) {
		if n == 0 {
			return
		}
		if k := len(out); k > 0 && out[k-1].ID+Pgid(out[k-1].N) == id {
			out[k-1].N += n
			return
		}
		out = append(out, Span{ID: id, N: n})
	}
	t := 0
	covered := Pgid(0) // end of the last touched range merged
	for _, sp := range base {
		cur, end := max(sp.ID, covered), sp.ID+Pgid(sp.N)
		for ; t < len(touched) && touched[t].id < end; t++ {
			g := touched[t]
			if g.id > cur {
				emit(cur, uint64(g.id-cur))
			}
			if g.free {
				emit(g.id, uint64(g.end-g.id))
			}
			covered = g.end
			cur = max(cur, g.end)
		}
		if cur < end {
			emit(cur, uint64(end-cur))
		}
	}
	for ; t < len(touched); t++ {
		if g := touched[t]; g.free {
			emit(g.id, uint64(g.end-g.id))
		}
	}
	return out
}

// spanSet sets pages [id, end) free or used.
type spanSet struct {
	id, end Pgid
	free    bool
}

// latestSets returns the ranges that sets cover, ascending and disjoint,
// each with the state the latest set covering it gave it: a sweep over the
// sets' ends with a heap of the sets open at each point, latest on top.
func latestSets(sets []spanSet) []spanSet {
	bounds := make([]bound, 0, 2*len(sets))
	for i, s := range sets {
		if s.end > s.id {
			bounds = append(bounds, bound{s.id, int32(i), true}, bound{s.end, int32(i), false})
		}
	}
	// Bounds at one point are taken together, so their order among
	// themselves does not matter.
	sortBounds(bounds)
	out := make([]spanSet, 0, len(sets))
	var open latestHeap
	closed := make([]bool, len(sets))
	prev := Pgid(0)
	for i := 0; i < len(bounds); {
		at := bounds[i].at
		for len(open) > 0 && closed[open[0]] {
			open.pop()
		}
		if len(open) > 0 && at > prev {
			free := sets[open[0]].free
			if k := len(out); k > 0 && out[k-1].end == prev && out[k-1].free == free {
				out[k-1].end = at
			} else {
				out = append(out, spanSet{id: prev, end: at, free: free})
			}
		}
		for ; i < len(bounds) && bounds[i].at == at; i++ {
			if b := bounds[i]; b.start {
				open.push(int(b.set))
			} else {
				closed[b.set] = true
			}
		}
		prev = at
	}
	return out
}

// bound is where a set starts or ends, for latestSets' sweep: 16 bytes, a
// set's index in 32 bits (2^31 sets would take 48 GiB before their bounds).
type bound struct {
	at    Pgid
	set   int32
	start bool
}

// sortBounds sorts b by at: a least-significant-digit radix sort, a byte
// a pass over the bytes the largest at uses, where a comparison sort of
// the few thousand bounds of a long chain took a millisecond of an open.
func sortBounds(b []bound) {
	if len(b) < 256 {
		slices.SortFunc(b, func(x, y bound) int { return cmp.Compare(x.at, y.at) })
		return
	}
	var top Pgid
	for _, x := range b {
		top = max(top, x.at)
	}
	src, dst := b, make([]bound, len(b))
	for shift := 0; shift < 64 && top>>shift != 0; shift += 8 {
		var next [256]int
		for _, x := range src {
			next[byte(x.at>>shift)]++
		}
		at := 0
		for d, n := range next {
			next[d] = at
			at += n
		}
		for _, x := range src {
			d := byte(x.at >> shift)
			dst[next[d]] = x
			next[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &b[0] {
		copy(b, src)
	}
}

// latestHeap is a max-heap of set indices: the latest set on top.
type latestHeap []int

func (h *latestHeap) push(v int) {
	*h = append(*h, v)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p] >= a[i] {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *latestHeap) pop() {
	a := *h
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && a[c+1] > a[c] {
			c++
		}
		if a[i] >= a[c] {
			break
		}
		a[i], a[c] = a[c], a[i]
		i = c
	}
	*h = a
}

// maxChain bounds the records a free-set walk follows, so that a damaged
// file with a cycle of Prev links ends.
const maxChain = 1 << 16

// ChainRecord is a commit record in the chain of a state.
type ChainRecord struct {
	ID     Pgid
	Pages  int
	Record *Record
}

// FreeSet reads the free spans of the state meta m describes: its freelist
// checkpoint with the deltas of the chained records newer than the
// checkpoint replayed in order. read returns the verified span of a page,
// which FreeSet is done with before it calls read again. It also returns the whole chain, oldest first: those records stay
// allocated until a checkpoint supersedes them.
func FreeSet(m *Meta, read func(id Pgid) ([]byte, error)) (free []Span, chain []ChainRecord, err error) {
	cp, err := read(m.Freelist)
	if err != nil {
		return nil, nil, err
	}
	since, spans := TxidOf(cp), freelistSpans(cp)
	last := m.Txid + 1
	for id := m.Record; id != 0; {
		if len(chain) == maxChain {
			return nil, nil, Corruptf(id, "commit record chain longer than %d", maxChain)
		}
		b, err := read(id)
		if err != nil {
			return nil, nil, err
		}
		r, err := DecodeRecord(b, id)
		if err != nil {
			return nil, nil, err
		}
		if r.Txid >= last {
			return nil, nil, Corruptf(id, "commit record of tx %d follows tx %d in the chain", r.Txid, last)
		}
		last = r.Txid
		chain = append(chain, ChainRecord{ID: id, Pages: int(Overflow(b)) + 1, Record: r})
		id = r.Prev
	}
	// The walk must end at the record of the commit that wrote the
	// checkpoint, or, after the checkpoint of a new file (txid 0), at the
	// first commit's record.
	if n := len(chain); n > 0 {
		oldest := chain[n-1].Record.Txid
		if oldest < since || (oldest > since && since != 0) {
			return nil, nil, Corruptf(chain[n-1].ID, "commit record chain ends at tx %d, the checkpoint is of tx %d", oldest, since)
		}
	}
	// Oldest first.
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	var newer []*Record
	for _, c := range chain {
		if c.Record.Txid > since {
			if err := checkDeltas(c, m.HighWater); err != nil {
				return nil, nil, err
			}
			newer = append(newer, c.Record)
		}
	}
	touched := touchedBy(newer)
	// The checkpoint once more (the records may have taken its bytes),
	// decoded with room for merge to work in place: a free set of tens
	// of thousands of spans is then allocated once, not twice.
	if len(chain) > 0 {
		if cp, err = read(m.Freelist); err != nil {
			return nil, nil, err
		}
	}
	base := make([]Span, 0, spans+mergeRoom(touched))
	if err := DecodeFreelist(cp, m.Freelist, m.HighWater, func(id Pgid, n uint64) {
		base = append(base, Span{ID: id, N: n})
	}); err != nil {
		return nil, nil, err
	}
	return merge(base, touched), chain, nil
}

// checkDeltas reports a span of c's freelist deltas that wraps around or
// lies outside the pages [2, highWater) a freelist may hold: Replay would
// otherwise drop it or free a meta page or one past the file's end.
func checkDeltas(c ChainRecord, highWater Pgid) error {
	for _, list := range []struct {
		name  string
		spans []Span
	}{{"freed", c.Record.Freed}, {"allocated", c.Record.Allocated}} {
		for i, sp := range list.spans {
			if sp.ID < 2 || sp.N > uint64(highWater) || sp.ID > highWater-Pgid(sp.N) {
				return Corruptf(c.ID, "%s span %d (%d+%d) of the commit record is outside pages [2, %d)", list.name, i, sp.ID, sp.N, highWater)
			}
		}
	}
	return nil
}
