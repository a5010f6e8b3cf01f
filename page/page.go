package page

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Pgid is a page id: the page's byte offset divided by the page size.
type Pgid uint64

// Txid identifies a committed transaction. Txids grow by one per commit.
type Txid uint64

// Page kinds, stored in the header's Flags field.
const (
	FlagBranch   uint16 = 0x01
	FlagLeaf     uint16 = 0x02
	FlagMeta     uint16 = 0x04
	FlagFreelist uint16 = 0x10
	FlagCommit   uint16 = 0x20
)

// Leaf element flags.
const (
	// LeafBucket marks a leaf element whose value is a bucket header.
	LeafBucket uint8 = 0x01
)

// Sizes and limits of the format.
const (
	HeaderSize  = 32
	MinPageSize = 1024
	MaxPageSize = 1 << 24 // 16 MiB, as bbolt's largest
	// MaxCount is the most elements a branch or leaf page holds: the
	// header's count has 16 bits. Only pages of 512 KiB and more can hold
	// that many of the smallest elements.
	MaxCount = 1<<16 - 1
	// DefaultPageSize is used when Options.PageSize is zero.
	DefaultPageSize = 4096
	// BucketHeaderSize is the size of a bucket header value.
	BucketHeaderSize = 16
	// offsetSize is the size of one element offset in branch and leaf pages.
	offsetSize = 4
)

// FlagName returns a short name of a page kind, for tools and errors.
func FlagName(f uint16) string {
	switch f {
	case FlagBranch:
		return "branch"
	case FlagLeaf:
		return "leaf"
	case FlagMeta:
		return "meta"
	case FlagFreelist:
		return "freelist"
	case FlagCommit:
		return "commit"
	}
	return "unknown"
}

// Header accessors. b must hold at least HeaderSize bytes.

func Checksum(b []byte) uint64 { return binary.LittleEndian.Uint64(b[0:]) }
func ID(b []byte) Pgid         { return Pgid(binary.LittleEndian.Uint64(b[8:])) }
func TxidOf(b []byte) Txid     { return Txid(binary.LittleEndian.Uint64(b[16:])) }
func Flags(b []byte) uint16    { return binary.LittleEndian.Uint16(b[24:]) }
func Count(b []byte) int       { return int(binary.LittleEndian.Uint16(b[26:])) }
func Overflow(b []byte) uint32 { return binary.LittleEndian.Uint32(b[28:]) }

// PutHeader writes a header (all fields but the checksum) at the start of b.
func PutHeader(b []byte, id Pgid, txid Txid, flags uint16, count int, overflow uint32) {
	binary.LittleEndian.PutUint64(b[8:], uint64(id))
	binary.LittleEndian.PutUint64(b[16:], uint64(txid))
	binary.LittleEndian.PutUint16(b[24:], flags)
	binary.LittleEndian.PutUint16(b[26:], uint16(count))
	binary.LittleEndian.PutUint32(b[28:], overflow)
}

// Sum computes the checksum of the page span b as the format defines it.
func Sum(b []byte) uint64 {
	if Flags(b) == FlagMeta && len(b) >= MetaEnd {
		return xxhash.Sum64(b[8:MetaEnd])
	}
	return xxhash.Sum64(b[8:])
}

// Seal computes the checksum of the page span b and stores it in the
// header. It returns the checksum.
func Seal(b []byte) uint64 {
	s := Sum(b)
	binary.LittleEndian.PutUint64(b[0:], s)
	return s
}

// Verify checks that b is the complete span of page id: its header names id,
// its span length matches its overflow, and its checksum matches its bytes.
func Verify(b []byte, id Pgid, pageSize int) error {
	if err := CheckHeader(b, id, pageSize); err != nil {
		return err
	}
	if Flags(b) == FlagMeta && len(b) < MetaEnd {
		return Corruptf(id, "short meta page")
	}
	if Flags(b) != FlagMeta && len(b) != (int(Overflow(b))+1)*pageSize {
		return Corruptf(id, "span is %d bytes, header says %d pages", len(b), Overflow(b)+1)
	}
	if Sum(b) != Checksum(b) {
		return Corruptf(id, "checksum mismatch")
	}
	return nil
}

// CheckHeader does the cheap checks that every page read goes through: the
// header exists, names the page id it was read for, and has a known kind.
func CheckHeader(b []byte, id Pgid, pageSize int) error {
	if len(b) < HeaderSize {
		return Corruptf(id, "short page (%d bytes)", len(b))
	}
	if got := ID(b); got != id {
		return Corruptf(id, "header names page %d", got)
	}
	switch Flags(b) {
	case FlagBranch, FlagLeaf, FlagMeta, FlagFreelist, FlagCommit:
	default:
		return Corruptf(id, "unknown page flags %#x", Flags(b))
	}
	return nil
}

// ReadSpan returns the span of page id (the page and its overflow pages) in
// data, a mapping of the file from offset 0, in a state whose high-water
// mark is hw: id must lie in [2, hw), its header must name it and carry
// known flags, and its overflow must end at or below hw. With verify, the
// span's checksum is checked too. The slice aliases data. It is the one
// checked read of a mapped page: transactions, Check and the freelist's
// loading all read through it.
func ReadSpan(data []byte, id Pgid, pageSize int, hw Pgid, verify bool) ([]byte, error) {
	if id < 2 || id >= hw {
		return nil, Corruptf(id, "page id out of range (high water %d)", hw)
	}
	off := uint64(id) * uint64(pageSize)
	if off+uint64(pageSize) > uint64(len(data)) {
		return nil, Corruptf(id, "page beyond the mapping (%d bytes)", len(data))
	}
	first := data[off : off+uint64(pageSize)]
	if err := CheckHeader(first, id, pageSize); err != nil {
		return nil, err
	}
	n := uint64(Overflow(first)) + 1
	if uint64(id)+n > uint64(hw) {
		return nil, Corruptf(id, "overflow %d runs past the high water mark %d", n-1, hw)
	}
	end := off + n*uint64(pageSize)
	if end > uint64(len(data)) {
		return nil, Corruptf(id, "overflow %d runs beyond the mapping", n-1)
	}
	p := data[off:end]
	if verify {
		if err := Verify(p, id, pageSize); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Pages returns how many pages a span of size bytes occupies.
func Pages(size, pageSize int) int {
	return (size + pageSize - 1) / pageSize
}
