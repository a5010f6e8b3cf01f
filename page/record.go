package page

import (
	"encoding/binary"
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
	Written   []Written
	Freed     []Span
	Allocated []Span
}

const recordFixed = HeaderSize + 24

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
	if Flags(b) != FlagCommit {
		return nil, Corruptf(id, "expected a commit record, found a %s page", FlagName(Flags(b)))
	}
	if len(b) < recordFixed {
		return nil, Corruptf(id, "short commit record")
	}
	le := binary.LittleEndian
	nw, nf, na := le.Uint64(b[HeaderSize:]), le.Uint64(b[HeaderSize+8:]), le.Uint64(b[HeaderSize+16:])
	max := uint64(len(b))
	if nw > max/24 || nf > max/16 || na > max/16 || uint64(RecordSize(int(nw), int(nf), int(na))) > max {
		return nil, Corruptf(id, "commit record counts %d/%d/%d exceed its %d bytes", nw, nf, na, len(b))
	}
	r := &Record{Txid: TxidOf(b), Written: make([]Written, nw), Freed: make([]Span, nf), Allocated: make([]Span, na)}
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
