package page

import (
	"encoding/binary"
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

// LeafElem returns element i of leaf page p.
func LeafElem(p []byte, i int) (flags uint8, key, value []byte, ok bool) {
	at := HeaderSize + offsetSize*i
	if i < 0 || at+offsetSize > len(p) {
		return 0, nil, nil, false
	}
	off := int(binary.LittleEndian.Uint32(p[at:]))
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

// LeafElemSize is the number of bytes a leaf element with a key of k bytes
// and a value of v bytes takes, its offset included.
func LeafElemSize(k, v int) int {
	return offsetSize + 1 + uvarintLen(k) + uvarintLen(v) + k + v
}

// BranchElemSize is the number of bytes a branch element with a key of k
// bytes takes, its offset included.
func BranchElemSize(k int) int {
	return offsetSize + 8 + uvarintLen(k) + k
}

// ElemsStart returns the offset at which element bodies start in a page of
// n elements.
func ElemsStart(n int) int { return HeaderSize + offsetSize*n }

// PutLeafElem writes element i of a leaf page at byte offset off of p and
// returns the offset after it. p must be large enough.
func PutLeafElem(p []byte, i, off int, flags uint8, key, value []byte) int {
	binary.LittleEndian.PutUint32(p[HeaderSize+offsetSize*i:], uint32(off))
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
	leaf := Flags(p) == FlagLeaf
	for i := 0; i < n; i++ {
		off, ok := elemOffset(p, i)
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
