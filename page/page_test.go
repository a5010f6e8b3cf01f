package page_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/quiverdb/quiver/internal/testutil"
	"github.com/quiverdb/quiver/page"
)

const ps = 4096

func TestMetaRoundTrip(t *testing.T) {
	m := &page.Meta{PageSize: ps, Root: 7, Sequence: 9, Freelist: 3, HighWater: 100, Txid: 42, Record: 5}
	b := make([]byte, ps)
	page.PutMeta(b, 0, m)
	got, err := page.DecodeMeta(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *m {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	if _, err := page.DecodeMeta(b, 1); err == nil {
		t.Fatal("meta of slot 0 decoded as slot 1")
	}
	// Every single-byte change inside the checksummed range is detected.
	for i := 0; i < page.MetaEnd; i++ {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := page.DecodeMeta(c, 0); err == nil {
			t.Fatalf("flip at byte %d not detected", i)
		}
	}
}

func TestMetaRejectsBadFields(t *testing.T) {
	for _, m := range []page.Meta{
		{PageSize: 1000, Freelist: 2, HighWater: 3},
		{PageSize: ps, Freelist: 2, HighWater: 1},
		{PageSize: ps, Freelist: 9, HighWater: 3},
		{PageSize: ps, Root: 1, Freelist: 2, HighWater: 3},
		{PageSize: ps, Freelist: 2, HighWater: 3, Record: 3},
	} {
		b := make([]byte, ps)
		page.PutMeta(b, 0, &m)
		if _, err := page.DecodeMeta(b, 0); !errors.Is(err, page.ErrCorrupt) {
			t.Errorf("meta %+v: %v, want a corruption error", m, err)
		}
	}
	b := make([]byte, ps)
	if _, err := page.DecodeMeta(b, 0); !errors.Is(err, page.ErrInvalid) {
		t.Errorf("zero page: %v, want ErrInvalid", err)
	}
}

func TestLeafAndBranchElements(t *testing.T) {
	keys := [][]byte{[]byte("a"), bytes.Repeat([]byte("k"), 300), []byte("zz")}
	vals := [][]byte{{}, []byte("value"), bytes.Repeat([]byte("v"), 200)}
	leaf := make([]byte, ps)
	page.PutHeader(leaf, 9, 3, page.FlagLeaf, len(keys), 0)
	off := page.ElemsStart(len(keys))
	for i := range keys {
		off = page.PutLeafElem(leaf, i, off, uint8(i%2), keys[i], vals[i])
	}
	page.Seal(leaf)
	if err := page.Verify(leaf, 9, ps); err != nil {
		t.Fatal(err)
	}
	size := page.HeaderSize
	for i := range keys {
		f, k, v, ok := page.LeafElem(leaf, i)
		if !ok || f != uint8(i%2) || !bytes.Equal(k, keys[i]) || !bytes.Equal(v, vals[i]) {
			t.Fatalf("leaf element %d: %v %q %q %v", i, f, k, v, ok)
		}
		size += page.LeafElemSize(len(keys[i]), len(vals[i]))
	}
	if page.Used(leaf) != size {
		t.Fatalf("Used %d, sizes add to %d", page.Used(leaf), size)
	}
	if _, _, _, ok := page.LeafElem(leaf, 3); ok {
		t.Fatal("element past the count decoded")
	}
	branch := make([]byte, ps)
	page.PutHeader(branch, 10, 3, page.FlagBranch, len(keys), 0)
	off = page.ElemsStart(len(keys))
	for i := range keys {
		off = page.PutBranchElem(branch, i, off, page.Pgid(100+i), keys[i])
	}
	for i := range keys {
		c, k, ok := page.BranchElem(branch, i)
		if !ok || c != page.Pgid(100+i) || !bytes.Equal(k, keys[i]) {
			t.Fatalf("branch element %d: %d %q", i, c, k)
		}
	}
	// A flipped byte fails Verify with the page named.
	leaf[2000] ^= 1
	var ce *page.CorruptionError
	if err := page.Verify(leaf, 9, ps); !errors.As(err, &ce) || ce.Pgid != 9 {
		t.Fatalf("Verify of a damaged page: %v", err)
	}
	if err := page.CheckHeader(leaf, 8, ps); !errors.Is(err, page.ErrCorrupt) {
		t.Fatalf("header read for another id: %v", err)
	}
}

func TestRecordAndFreelistRoundTrip(t *testing.T) {
	r := &page.Record{
		Txid:      77,
		Written:   []page.Written{{ID: 5, N: 1, Checksum: 123}, {ID: 9, N: 3, Checksum: 456}},
		Freed:     []page.Span{{ID: 2, N: 1}},
		Allocated: []page.Span{{ID: 5, N: 1}, {ID: 9, N: 3}},
	}
	b := make([]byte, page.Pages(page.RecordSize(2, 1, 2), ps)*ps)
	page.PutRecord(b, 12, ps, r)
	if err := page.Verify(b, 12, ps); err != nil {
		t.Fatal(err)
	}
	got, err := page.DecodeRecord(b, 12)
	if err != nil {
		t.Fatal(err)
	}
	if got.Txid != 77 || len(got.Written) != 2 || got.Written[1] != r.Written[1] || got.Freed[0] != r.Freed[0] || got.Allocated[1] != r.Allocated[1] {
		t.Fatalf("record %+v", got)
	}

	spans := []page.Span{{ID: 3, N: 1}, {ID: 10, N: 5}, {ID: 1000000, N: 300}}
	each := func(yield func(page.Pgid, uint64)) {
		for _, s := range spans {
			yield(s.ID, s.N)
		}
	}
	fb := make([]byte, page.Pages(page.FreelistSize(each), ps)*ps)
	page.PutFreelist(fb, 4, 1, ps, each)
	var back []page.Span
	if err := page.DecodeFreelist(fb, 4, 2000000, func(id page.Pgid, n uint64) { back = append(back, page.Span{ID: id, N: n}) }); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || back[2] != spans[2] {
		t.Fatalf("freelist %v", back)
	}
	// Spans beyond the high-water mark are corruption.
	if err := page.DecodeFreelist(fb, 4, 1000, func(page.Pgid, uint64) {}); !errors.Is(err, page.ErrCorrupt) {
		t.Fatalf("freelist past high water: %v", err)
	}
}

// TestDecodersNeverPanic feeds random and mutated bytes to every decoder.
func TestDecodersNeverPanic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		n := page.HeaderSize + r.IntN(2*ps)
		b := make([]byte, n)
		for j := range b {
			if r.IntN(3) == 0 {
				b[j] = byte(r.Uint32())
			}
		}
		if r.IntN(2) == 0 {
			b[24] = []byte{1, 2, 4, 0x10, 0x20}[r.IntN(5)]
		}
		id := page.Pgid(r.IntN(10))
		_ = page.Verify(b, id, ps)
		_, _ = page.DecodeMeta(b, id)
		_, _ = page.DecodeRecord(b, id)
		_ = page.DecodeFreelist(b, id, page.Pgid(r.IntN(1<<20)), func(page.Pgid, uint64) {})
		for e := 0; e < page.Count(b) && e < 50; e++ {
			page.LeafElem(b, e)
			page.BranchElem(b, e)
		}
		_ = page.Used(b)
	}
}

func TestReplay(t *testing.T) {
	base := []page.Span{{ID: 10, N: 5}, {ID: 20, N: 3}}
	recs := []*page.Record{
		// Allocate 10-11 and 20-22, free 30.
		{Allocated: []page.Span{{ID: 10, N: 2}, {ID: 20, N: 3}}, Freed: []page.Span{{ID: 30, N: 1}}},
		// Free 11 again and 15 (joins 12-14), allocate 30.
		{Allocated: []page.Span{{ID: 30, N: 1}}, Freed: []page.Span{{ID: 11, N: 1}, {ID: 15, N: 1}}},
	}
	got := page.Replay(base, recs)
	want := []page.Span{{ID: 11, N: 5}}
	if len(got) != len(want) || got[0] != want[0] {
		t.Fatalf("Replay = %v, want %v", got, want)
	}
	if got := page.Replay(base, nil); len(got) != 2 || got[0] != base[0] || got[1] != base[1] {
		t.Fatalf("Replay without records = %v", got)
	}
}

// replayByPage is the plain model of Replay: a map from each touched page
// to whether it ends free.
func replayByPage(base []page.Span, records []*page.Record) map[page.Pgid]bool {
	free := map[page.Pgid]bool{}
	for _, s := range base {
		for i := uint64(0); i < s.N; i++ {
			free[s.ID+page.Pgid(i)] = true
		}
	}
	for _, r := range records {
		for _, s := range r.Allocated {
			for i := uint64(0); i < s.N; i++ {
				delete(free, s.ID+page.Pgid(i))
			}
		}
		for _, s := range r.Freed {
			for i := uint64(0); i < s.N; i++ {
				free[s.ID+page.Pgid(i)] = true
			}
		}
	}
	return free
}

// TestReplayRandom checks Replay against the page model on random
// checkpoints and records whose spans overlap each other and the
// checkpoint's in every way, including long spans and spans that a later
// record sets again.
func TestReplayRandom(t *testing.T) {
	seed := testutil.Seed(t)
	r := rand.New(rand.NewPCG(seed, 7))
	span := func(limit int) page.Span {
		n := 1 + r.IntN(4)
		if r.IntN(8) == 0 {
			n = 1 + r.IntN(64)
		}
		return page.Span{ID: page.Pgid(2 + r.IntN(limit)), N: uint64(n)}
	}
	for iter := 0; iter < 2000; iter++ {
		limit := 8 + r.IntN(300)
		// An ascending checkpoint; neighbours may touch (not joined).
		var base []page.Span
		for id := page.Pgid(2 + r.IntN(4)); int(id) < limit; {
			n := uint64(1 + r.IntN(6))
			base = append(base, page.Span{ID: id, N: n})
			id += page.Pgid(n) + page.Pgid(r.IntN(5))
		}
		// Every 50th state has a long chain, whose bounds Replay sorts by
		// radix rather than by comparison.
		nrec, nspan := r.IntN(6), 5
		if iter%50 == 0 {
			nrec, nspan = 40+r.IntN(40), 12
		}
		var recs []*page.Record
		for k := nrec; k > 0; k-- {
			rec := &page.Record{}
			for j := r.IntN(nspan); j > 0; j-- {
				rec.Allocated = append(rec.Allocated, span(limit))
			}
			for j := r.IntN(nspan); j > 0; j-- {
				rec.Freed = append(rec.Freed, span(limit))
			}
			recs = append(recs, rec)
		}
		want := replayByPage(base, recs)
		if iter%2 == 0 {
			// Room to merge in place (Replay then takes base's array).
			base = slices.Grow(base, 8*len(recs)*nspan+1)
		}
		base0 := slices.Clone(base)
		got := page.Replay(base, recs)
		base = base0
		n := 0
		for i, s := range got {
			if s.N == 0 || (i > 0 && got[i-1].ID+page.Pgid(got[i-1].N) >= s.ID) {
				t.Fatalf("iteration %d: spans not ascending, joined and non-empty: %v", iter, got)
			}
			for p := s.ID; p < s.ID+page.Pgid(s.N); p++ {
				if !want[p] {
					t.Fatalf("iteration %d: page %d free in %v, not in the model\nbase %v\nrecords %v", iter, p, got, base, recordsString(recs))
				}
				n++
			}
		}
		if n != len(want) {
			t.Fatalf("iteration %d: %d free pages, the model has %d\nbase %v\nrecords %v\ngot %v", iter, n, len(want), base, recordsString(recs), got)
		}
	}
}

func recordsString(recs []*page.Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "[alloc %v free %v] ", r.Allocated, r.Freed)
	}
	return b.String()
}

// TestFreeSetRejectsBadDeltas builds a checkpoint and a chained record in a
// page map and checks that FreeSet replays the record, and that a record
// whose sealed deltas name a meta page, a page past the high-water mark or
// a span that wraps around is reported as corruption rather than dropped or
// applied.
func TestFreeSetRejectsBadDeltas(t *testing.T) {
	const hw = 100
	build := func(freed, allocated []page.Span) (*page.Meta, func(page.Pgid) ([]byte, error)) {
		pages := map[page.Pgid][]byte{}
		base := []page.Span{{ID: 10, N: 5}}
		each := func(yield func(page.Pgid, uint64)) {
			for _, s := range base {
				yield(s.ID, s.N)
			}
		}
		cp := make([]byte, page.Pages(page.FreelistSize(each), ps)*ps)
		page.PutFreelist(cp, 3, 7, ps, each)
		pages[3] = cp
		first := make([]byte, page.Pages(page.RecordSize(0, 0, 0), ps)*ps)
		page.PutRecord(first, 4, ps, &page.Record{Txid: 7})
		pages[4] = first
		r := &page.Record{Txid: 8, Prev: 4, Freed: freed, Allocated: allocated}
		rb := make([]byte, page.Pages(page.RecordSize(0, len(freed), len(allocated)), ps)*ps)
		page.PutRecord(rb, 5, ps, r)
		pages[5] = rb
		m := &page.Meta{PageSize: ps, Freelist: 3, HighWater: hw, Txid: 8, Record: 5}
		return m, func(id page.Pgid) ([]byte, error) {
			b, ok := pages[id]
			if !ok {
				return nil, fmt.Errorf("no page %d", id)
			}
			return b, page.Verify(b, id, ps)
		}
	}

	m, read := build([]page.Span{{ID: 50, N: 2}}, []page.Span{{ID: 10, N: 1}})
	free, chain, err := page.FreeSet(m, read)
	if err != nil {
		t.Fatal(err)
	}
	if want := []page.Span{{ID: 11, N: 4}, {ID: 50, N: 2}}; fmt.Sprint(free) != fmt.Sprint(want) || len(chain) != 2 {
		t.Fatalf("FreeSet = %v (chain of %d), want %v (chain of 2)", free, len(chain), want)
	}

	for _, tc := range []struct {
		name             string
		freed, allocated []page.Span
	}{
		{"freed meta page", []page.Span{{ID: 1, N: 1}}, nil},
		{"allocated meta page", nil, []page.Span{{ID: 0, N: 3}}},
		{"freed past high water", []page.Span{{ID: hw - 1, N: 2}}, nil},
		{"allocated at high water", nil, []page.Span{{ID: hw, N: 1}}},
		{"freed span wraps", []page.Span{{ID: 50, N: ^uint64(0) - 20}}, nil},
		{"allocated span wraps", nil, []page.Span{{ID: 50, N: 1 << 63}}},
	} {
		m, read := build(tc.freed, tc.allocated)
		if _, _, err := page.FreeSet(m, read); !errors.Is(err, page.ErrCorrupt) {
			t.Errorf("%s: FreeSet error %v, want corruption", tc.name, err)
		}
	}
}
