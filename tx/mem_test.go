package tx_test

import (
	"fmt"
	"testing"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/freelist/hashmap"
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// memStore is a Backend over memory: the tree can be tested without a
// file, a mapping or the root package. Each commit writes a whole freelist
// checkpoint and a commit record that starts a new chain, so that every
// committed state passes Check. It is for one goroutine.
type memStore struct {
	ps       int
	data     []byte // the whole "file"; never reallocated
	fl       *freelist.Tracker
	cur      *memSnap
	hw       page.Pgid         // including the open writer's growth
	readers  map[page.Txid]int // open readers and pins per snapshot txid
	cpPages  int               // the open commit's checkpoint pages
	allocate func(txid page.Txid, n int, grow bool) (page.Pgid, error)
}

type memSnap struct {
	meta page.Meta
	data []byte
}

func (s *memSnap) Meta() *page.Meta { return &s.meta }
func (s *memSnap) Data() []byte     { return s.data }

// newMemStore returns an empty store of size bytes, pages of ps bytes.
func newMemStore(ps, size int) *memStore {
	m := &memStore{ps: ps, data: make([]byte, size), fl: freelist.New(hashmap.New()), readers: map[page.Txid]int{}}
	page.PutFreelist(m.data[2*ps:3*ps], 2, 1, ps, func(func(page.Pgid, uint64)) {})
	m.cur = &memSnap{meta: page.Meta{PageSize: uint32(ps), Freelist: 2, HighWater: 3, Txid: 1}, data: m.data}
	m.hw = 3
	return m
}

func (m *memStore) begin(writable bool) *tx.Tx {
	if writable {
		var rs []page.Txid
		for txid, n := range m.readers {
			if n > 0 {
				rs = append(rs, txid)
			}
		}
		sortTxids(rs)
		m.fl.Release(rs)
		m.hw = m.cur.meta.HighWater
	}
	m.readers[m.cur.meta.Txid]++
	return tx.Begin(m, m.cur, writable)
}

func sortTxids(a []page.Txid) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func (m *memStore) update(fn func(*tx.Tx) error) error { return tx.Run(m.begin(true), fn) }
func (m *memStore) view(fn func(*tx.Tx) error) error   { return tx.Run(m.begin(false), fn) }

func (m *memStore) Allocate(txid page.Txid, n int, grow bool) (page.Pgid, error) {
	if m.allocate != nil {
		return m.allocate(txid, n, grow)
	}
	if !grow {
		return m.fl.Allocate(txid, n), nil
	}
	if int(m.hw)+n > len(m.data)/m.ps {
		return 0, fmt.Errorf("memStore: full (%d pages)", len(m.data)/m.ps)
	}
	id := m.hw
	m.hw += page.Pgid(n)
	m.fl.NoteAllocated(txid, id, n)
	return id, nil
}

func (m *memStore) Free(txid, alloc page.Txid, id page.Pgid, n int) { m.fl.Free(txid, alloc, id, n) }

// spans lists the free set (free and pending: what is free once no reader
// is left).
func (m *memStore) spans() []page.Span {
	var out []page.Span
	m.fl.Spans(func(id page.Pgid, n uint64) { out = append(out, page.Span{ID: id, N: n}) })
	return out
}

func each(spans []page.Span) func(func(page.Pgid, uint64)) {
	return func(yield func(page.Pgid, uint64)) {
		for _, s := range spans {
			yield(s.ID, s.N)
		}
	}
}

func (m *memStore) Reserve(t *tx.Tx, nodes int) int {
	base := tx.SnapshotOf(t).Meta()
	txid := base.Txid + 1
	// The previous checkpoint and record are replaced.
	cp := m.data[int(base.Freelist)*m.ps:]
	m.fl.Free(txid, page.TxidOf(cp), base.Freelist, int(page.Overflow(cp))+1)
	if base.Record != 0 {
		rec := m.data[int(base.Record)*m.ps:]
		m.fl.Free(txid, page.TxidOf(rec), base.Record, int(page.Overflow(rec))+1)
	}
	// Allocations only shrink the set's spans; each may add a few bytes.
	m.cpPages = page.Pages(page.FreelistSize(each(m.spans()))+4*(nodes+2), m.ps)
	return m.cpPages + page.Pages(page.RecordSize(nodes+1, len(m.fl.TxFreed()), nodes+3), m.ps)
}

func (m *memStore) Commit(t *tx.Tx, cp tx.CommitPages, root page.BucketHeader) error {
	base := tx.SnapshotOf(t).Meta()
	txid := base.Txid + 1
	ps := m.ps
	sys := cp.Sys.Buf
	flID, recID := cp.Sys.ID, cp.Sys.ID+page.Pgid(m.cpPages)
	page.PutFreelist(sys[:m.cpPages*ps], flID, txid, ps, each(m.spans()))
	written := append(cp.Written, page.Written{ID: flID, N: uint32(m.cpPages), Checksum: page.Checksum(sys)})
	rec := sys[m.cpPages*ps:]
	page.PutRecord(rec, recID, ps, &page.Record{Txid: txid, Written: written, Freed: m.fl.TxFreed(), Allocated: m.fl.TxAllocated()})
	for _, w := range cp.Writes {
		copy(m.data[int(w.ID)*ps:], w.Buf)
	}
	m.fl.Commit(txid)
	m.cur = &memSnap{data: m.data, meta: page.Meta{
		PageSize: uint32(ps), Root: root.Root, Sequence: root.Sequence, Freelist: flID,
		HighWater: m.hw, Txid: txid, Record: recID, RecordSum: page.Checksum(rec),
	}}
	return nil
}

func (m *memStore) End(t *tx.Tx, committed bool) {
	base := tx.SnapshotOf(t).Meta()
	m.readers[base.Txid]--
	if t.Writable() && !committed {
		m.fl.Rollback(base.Txid + 1)
		m.hw = m.cur.meta.HighWater
	}
}

func (m *memStore) WriteBuffer(size int) []byte { return make([]byte, size) }

func (m *memStore) Pin(t *tx.Tx) (release func()) {
	txid := tx.SnapshotOf(t).Meta().Txid
	m.readers[txid]++
	return func() { m.readers[txid]-- }
}

func (m *memStore) DB() tx.DB { return nil }

var _ tx.Backend = (*memStore)(nil)

// check runs Check on the store's current state and fails the test on any
// problem.
func (m *memStore) check(t *testing.T) {
	t.Helper()
	err := m.view(func(x *tx.Tx) error {
		for err := range x.Check() {
			t.Errorf("check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
