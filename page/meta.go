package page

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic identifies a quiver file; Version is the format version this code
// writes and reads.
const (
	Magic   uint32 = 0x31525651 // "QVR1" little endian
	Version uint32 = 1
	// MetaEnd is the end of the meta fields; the meta checksum covers
	// bytes [8, MetaEnd).
	MetaEnd = 104
)

// ErrInvalid reports that a file is not a quiver database.
var ErrInvalid = errors.New("quiver: invalid database (not a quiver file)")

// ErrVersionMismatch reports a quiver file of a format this code does not read.
var ErrVersionMismatch = errors.New("quiver: version mismatch")

// Meta is the decoded content of a meta page.
type Meta struct {
	PageSize  uint32
	Root      Pgid   // root page of the root bucket, 0 if empty
	Sequence  uint64 // root bucket sequence
	Freelist  Pgid   // first page of the freelist checkpoint
	HighWater Pgid   // pages in use
	Txid      Txid
	Record    Pgid   // commit record, 0 if none
	RecordSum uint64 // the commit record's checksum: ties this meta to it
}

// PutMeta encodes m into the meta page buffer b (at least MetaEnd bytes,
// zeroed by the caller) for slot id and seals it.
func PutMeta(b []byte, id Pgid, m *Meta) {
	PutHeader(b, id, m.Txid, FlagMeta, 0, 0)
	le := binary.LittleEndian
	le.PutUint32(b[32:], Magic)
	le.PutUint32(b[36:], Version)
	le.PutUint32(b[40:], m.PageSize)
	le.PutUint32(b[44:], 0)
	le.PutUint64(b[48:], uint64(m.Root))
	le.PutUint64(b[56:], m.Sequence)
	le.PutUint64(b[64:], uint64(m.Freelist))
	le.PutUint64(b[72:], uint64(m.HighWater))
	le.PutUint64(b[80:], uint64(m.Txid))
	le.PutUint64(b[88:], uint64(m.Record))
	le.PutUint64(b[96:], m.RecordSum)
	Seal(b)
}

// DecodeMeta decodes and validates the meta page in b, read from slot id.
// It returns ErrInvalid (wrapped) for bytes that are not a quiver meta,
// ErrVersionMismatch for another format version, and a corruption error for
// a meta whose checksum or fields are wrong.
func DecodeMeta(b []byte, id Pgid) (*Meta, error) {
	if len(b) < MetaEnd {
		return nil, fmt.Errorf("%w: meta page %d is short", ErrInvalid, id)
	}
	le := binary.LittleEndian
	if le.Uint32(b[32:]) != Magic {
		return nil, fmt.Errorf("%w: bad magic in meta page %d", ErrInvalid, id)
	}
	if v := le.Uint32(b[36:]); v != Version {
		return nil, fmt.Errorf("%w: file version %d, this build reads %d", ErrVersionMismatch, v, Version)
	}
	if Flags(b) != FlagMeta || ID(b) != id {
		return nil, Corruptf(id, "meta header has flags %#x id %d", Flags(b), ID(b))
	}
	if Sum(b) != Checksum(b) {
		return nil, Corruptf(id, "meta checksum mismatch")
	}
	m := &Meta{
		PageSize:  le.Uint32(b[40:]),
		Root:      Pgid(le.Uint64(b[48:])),
		Sequence:  le.Uint64(b[56:]),
		Freelist:  Pgid(le.Uint64(b[64:])),
		HighWater: Pgid(le.Uint64(b[72:])),
		Txid:      Txid(le.Uint64(b[80:])),
		Record:    Pgid(le.Uint64(b[88:])),
		RecordSum: le.Uint64(b[96:]),
	}
	if m.Txid != TxidOf(b) {
		return nil, Corruptf(id, "meta txid %d differs from header txid %d", m.Txid, TxidOf(b))
	}
	if !ValidPageSize(int(m.PageSize)) {
		return nil, Corruptf(id, "meta page size %d", m.PageSize)
	}
	if m.HighWater < 2 || m.Root >= m.HighWater || m.Freelist < 2 || m.Freelist >= m.HighWater || m.Record >= m.HighWater || (m.Root != 0 && m.Root < 2) || (m.Record != 0 && m.Record < 2) {
		return nil, Corruptf(id, "meta page ids out of range (root %d freelist %d record %d high water %d)", m.Root, m.Freelist, m.Record, m.HighWater)
	}
	return m, nil
}

// ValidPageSize reports whether n is a page size the format allows.
func ValidPageSize(n int) bool {
	return n >= MinPageSize && n <= MaxPageSize && n&(n-1) == 0
}
