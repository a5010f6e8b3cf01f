package page

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// Element accessors for branch and leaf pages. p is the whole page span
// (header included, all overflow pages). They do every bounds check the
// format needs and report ok == false for bytes that cannot be an element;
// the caller turns that into a corruption error for the page. Returned
// slices alias p.

func elemOffset(p []byte, i int) (int, bool) {
	at := HeaderSize + offsetSize*i
	if i < 0 || at+offsetSize > len(p) {
		return 0, false
	}
	off := int(binary.LittleEndian.Uint32(p[at:]))
	return off, off >= HeaderSize && off < len(p)
}

// uvarint decodes a uvarint at p[off:], fast for one-byte values.
func uvarint(p []byte, off int) (v int, next int, ok bool) {
	if off < len(p) && p[off] < 0x80 {
		return int(p[off]), off + 1, true
	}
	u, n := binary.Uvarint(p[off:])
	if n <= 0 || u > 1<<31 {
		return 0, 0, false
	}
	return int(u), off + n, true
}

// Prefixed leaves (FlagLeafPrefixed): the header; at LeafPrefixAt one
// byte, the length cp (at most MaxLeafPrefix) of a prefix every key of the
// page starts with, then those cp bytes, zeros up to LeafSlotsAt; then one
// slot of LeafSlotSize bytes per element, in key order: the element's
// offset (uint32) and the four bytes of its key after the common prefix,
// zero-padded (compared as a big-endian uint32). Element bodies as in
// format 1's leaves.
const (
	LeafPrefixAt  = HeaderSize
	MaxLeafPrefix = 23
	LeafSlotsAt   = LeafPrefixAt + 1 + MaxLeafPrefix
	LeafSlotSize  = 8
)

// leafOffset returns the offset of element i of leaf page p, of either
// layout.
func leafOffset(p []byte, i int) (int, bool) {
	at, size := HeaderSize+offsetSize*i, offsetSize
	if len(p) >= HeaderSize && Flags(p) == FlagLeafPrefixed {
		at, size = LeafSlotsAt+LeafSlotSize*i, LeafSlotSize
	}
	if i < 0 || at+size > len(p) {
		return 0, false
	}
	return int(binary.LittleEndian.Uint32(p[at:])), true
}

// LeafElem returns element i of leaf page p.
func LeafElem(p []byte, i int) (flags uint8, key, value []byte, ok bool) {
	off, ok := leafOffset(p, i)
	if !ok {
		return 0, nil, nil, false
	}
	// Fast path: both lengths fit one varint byte, as for most keys and
	// small values.
	if off >= HeaderSize && off+3 <= len(p) {
		if ks, vs := int(p[off+1]), int(p[off+2]); ks|vs < 0x80 {
			k := off + 3
			if k+ks+vs <= len(p) {
				return p[off], p[k : k+ks : k+ks], p[k+ks : k+ks+vs : k+ks+vs], true
			}
			return 0, nil, nil, false
		}
	}
	if off < HeaderSize || off >= len(p) {
		return 0, nil, nil, false
	}
	flags = p[off]
	ks, off, ok := uvarint(p, off+1)
	if !ok {
		return 0, nil, nil, false
	}
	vs, off, ok := uvarint(p, off)
	if !ok || off+ks+vs > len(p) || off+ks+vs < off {
		return 0, nil, nil, false
	}
	key = p[off : off+ks : off+ks]
	value = p[off+ks : off+ks+vs : off+ks+vs]
	return flags, key, value, true
}

// LeafKey returns the key of element i of leaf page p.
func LeafKey(p []byte, i int) ([]byte, bool) {
	_, k, _, ok := LeafElem(p, i)
	return k, ok
}

// LeafSearch returns the index of the first element of leaf page p whose
// key is not less than key, Count(p) if there is none. An element that
// cannot be read counts as not less, so that a search of a corrupt page
// ends; reading that element reports it.
//
// On a prefixed leaf the search compares the slots' four key bytes and
// reads an element's key only where they tie with key's: one array, a few
// cache lines, where comparing keys would touch a line per step.
func LeafSearch(p []byte, key []byte) int {
	n := Count(p)
	if Flags(p) != FlagLeafPrefixed || LeafSlotsAt+LeafSlotSize*n > len(p) || int(p[LeafPrefixAt]) > MaxLeafPrefix {
		return sort.Search(n, func(i int) bool {
			k, ok := LeafKey(p, i)
			return !ok || bytes.Compare(k, key) >= 0
		})
	}
	cp := int(p[LeafPrefixAt])
	if prefix := p[LeafPrefixAt+1 : LeafPrefixAt+1+cp]; !bytes.HasPrefix(key, prefix) {
		// Every key starts with prefix: key sorts before all or after all.
		if bytes.Compare(key, prefix) < 0 {
			return 0
		}
		return n
	}
	want := slotPrefix(key[cp:])
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		got := binary.BigEndian.Uint32(p[LeafSlotsAt+LeafSlotSize*m+4:])
		less := got < want
		if got == want {
			k, ok := LeafKey(p, m)
			less = ok && bytes.Compare(k, key) < 0
		}
		if less {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// slotPrefix returns the first four bytes of b, zero-padded, as a
// big-endian number: a key that is less in these is less.
func slotPrefix(b []byte) uint32 {
	if len(b) >= 4 {
		return binary.BigEndian.Uint32(b)
	}
	var four [4]byte
	copy(four[:], b)
	return binary.BigEndian.Uint32(four[:])
}

// CommonPrefix returns how many leading bytes a and b share, at most
// MaxLeafPrefix: for the first and last keys of a leaf, the prefix every
// key of it starts with.
func CommonPrefix(a, b []byte) int {
	n := min(len(a), len(b), MaxLeafPrefix)
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// PutLeafPrefix writes the common prefix of a prefixed leaf whose keys
// all start with prefix (at most MaxLeafPrefix bytes), before its
// elements are put.
func PutLeafPrefix(p []byte, prefix []byte) {
	p[LeafPrefixAt] = byte(len(prefix))
	copy(p[LeafPrefixAt+1:], prefix)
}

// CheckLeafPrefixes reports the first element of prefixed leaf p whose key
// does not start with the page's common prefix or whose slot does not hold
// the key's next four bytes, or -1 if there is none (elements that cannot
// be read are the caller's to report). Searches trust both; Check verifies
// them.
func CheckLeafPrefixes(p []byte) (int, bool) {
	if len(p) < HeaderSize || Flags(p) != FlagLeafPrefixed {
		return -1, true
	}
	if len(p) < LeafSlotsAt || int(p[LeafPrefixAt]) > MaxLeafPrefix {
		return 0, false
	}
	cp := int(p[LeafPrefixAt])
	prefix := p[LeafPrefixAt+1 : LeafPrefixAt+1+cp]
	for i := 0; i < Count(p); i++ {
		k, ok := LeafKey(p, i)
		if !ok {
			continue
		}
		if !bytes.HasPrefix(k, prefix) || binary.BigEndian.Uint32(p[LeafSlotsAt+LeafSlotSize*i+4:]) != slotPrefix(k[cp:]) {
			return i, false
		}
	}
	return -1, true
}

// BranchElem returns element i of branch page p.
func BranchElem(p []byte, i int) (child Pgid, key []byte, ok bool) {
	off, ok := elemOffset(p, i)
	if !ok || off+8 > len(p) {
		return 0, nil, false
	}
	child = Pgid(binary.LittleEndian.Uint64(p[off:]))
	ks, off, ok := uvarint(p, off+8)
	if !ok || off+ks > len(p) {
		return 0, nil, false
	}
	return child, p[off : off+ks : off+ks], true
}

func uvarintLen(n int) int { return uvarintLen64(uint64(n)) }

// LeafElemSize is the number of bytes a prefixed leaf element with a key
// of k bytes and a value of v bytes takes, its slot included.
func LeafElemSize(k, v int) int {
	return LeafSlotSize + 1 + uvarintLen(k) + uvarintLen(v) + k + v
}

// BranchElemSize is the number of bytes a branch element with a key of k
// bytes takes, its offset included.
func BranchElemSize(k int) int {
	return offsetSize + 8 + uvarintLen(k) + k
}

// ElemsStart returns the offset at which element bodies start in a branch
// page, or a format 1 leaf, of n elements.
func ElemsStart(n int) int { return HeaderSize + offsetSize*n }

// LeafElemsStart returns the offset at which element bodies start in a
// prefixed leaf of n elements.
func LeafElemsStart(n int) int { return LeafSlotsAt + LeafSlotSize*n }

// PutLeafElem writes element i of a leaf page at byte offset off of p and
// returns the offset after it, in the layout its header's flags name (a
// prefixed leaf's common prefix written first). p must be large enough.
func PutLeafElem(p []byte, i, off int, flags uint8, key, value []byte) int {
	if Flags(p) == FlagLeafPrefixed {
		at := LeafSlotsAt + LeafSlotSize*i
		binary.LittleEndian.PutUint32(p[at:], uint32(off))
		binary.BigEndian.PutUint32(p[at+4:], slotPrefix(key[min(len(key), int(p[LeafPrefixAt])):]))
	} else {
		binary.LittleEndian.PutUint32(p[HeaderSize+offsetSize*i:], uint32(off))
	}
	p[off] = flags
	off++
	off += binary.PutUvarint(p[off:], uint64(len(key)))
	off += binary.PutUvarint(p[off:], uint64(len(value)))
	off += copy(p[off:], key)
	off += copy(p[off:], value)
	return off
}

// PutBranchElem writes element i of a branch page at byte offset off of p and
// returns the offset after it.
func PutBranchElem(p []byte, i, off int, child Pgid, key []byte) int {
	binary.LittleEndian.PutUint32(p[HeaderSize+offsetSize*i:], uint32(off))
	binary.LittleEndian.PutUint64(p[off:], uint64(child))
	off += 8
	off += binary.PutUvarint(p[off:], uint64(len(key)))
	off += copy(p[off:], key)
	return off
}

// BucketHeader is the value stored for a bucket in its parent's leaf.
type BucketHeader struct {
	Root     Pgid
	Sequence uint64
}

// DecodeBucketHeader decodes a bucket value; ok is false if v is malformed.
func DecodeBucketHeader(v []byte) (BucketHeader, bool) {
	if len(v) != BucketHeaderSize {
		return BucketHeader{}, false
	}
	return BucketHeader{
		Root:     Pgid(binary.LittleEndian.Uint64(v)),
		Sequence: binary.LittleEndian.Uint64(v[8:]),
	}, true
}

// Encode returns the 16-byte value for h.
func (h BucketHeader) Encode() []byte {
	b := make([]byte, BucketHeaderSize)
	binary.LittleEndian.PutUint64(b, uint64(h.Root))
	binary.LittleEndian.PutUint64(b[8:], h.Sequence)
	return b
}

// Used returns the bytes of branch or leaf page p that hold data: the
// header, the offsets and the furthest element's end.
func Used(p []byte) int {
	n := Count(p)
	used := ElemsStart(n)
	leaf := IsLeaf(Flags(p))
	if Flags(p) == FlagLeafPrefixed {
		used = LeafElemsStart(n)
	}
	for i := 0; i < n; i++ {
		off, ok := elemOffset(p, i)
		if leaf {
			off, ok = leafOffset(p, i)
			ok = ok && off >= HeaderSize && off < len(p)
		}
		if !ok {
			continue
		}
		var ks, vs int
		if leaf {
			if ks, off, ok = uvarint(p, off+1); !ok {
				continue
			}
			if vs, off, ok = uvarint(p, off); !ok {
				continue
			}
		} else if off+8 > len(p) {
			continue
		} else if ks, off, ok = uvarint(p, off+8); !ok {
			continue
		}
		if end := off + ks + vs; end > used && end <= len(p) {
			used = end
		}
	}
	return used
}
