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

// Prefixed pages (format 2's branches and leaves, FlagPrefixed set): the
// header; at PrefixAt one byte, the length cp (at most MaxPrefix) of a
// prefix every key of the page starts with, then those cp bytes, zeros up
// to SlotsAt; then one slot of SlotSize bytes per element, in key order:
// the element's offset (uint32) and the four bytes of its key after the
// common prefix, zero-padded (compared as a big-endian uint32). Element
// bodies as in format 1's pages. Format 1's pages (branches still written
// so by builds of format 1, leaves FlagLeaf) have a uint32 offset per
// element after the header instead.
const (
	PrefixAt  = HeaderSize
	MaxPrefix = 23
	SlotsAt   = PrefixAt + 1 + MaxPrefix
	SlotSize  = 8
)

// prefixed reports whether page p (at least HeaderSize bytes) has slots.
func prefixed(p []byte) bool { return Flags(p)&FlagPrefixed != 0 }

// elemOffset returns the offset of element i of branch or leaf page p, of
// either layout; ok is false if the offset's bytes or the offset itself
// lie outside p.
func elemOffset(p []byte, i int) (int, bool) {
	at, size := HeaderSize+offsetSize*i, offsetSize
	if len(p) >= HeaderSize && prefixed(p) {
		at, size = SlotsAt+SlotSize*i, SlotSize
	}
	if i < 0 || at+size > len(p) {
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
	off, ok := elemOffset(p, i)
	if !ok {
		return 0, nil, nil, false
	}
	// Fast path: both lengths fit one varint byte, as for most keys and
	// small values.
	if off+3 <= len(p) {
		if ks, vs := int(p[off+1]), int(p[off+2]); ks|vs < 0x80 {
			k := off + 3
			if k+ks+vs <= len(p) {
				return p[off], p[k : k+ks : k+ks], p[k+ks : k+ks+vs : k+ks+vs], true
			}
			return 0, nil, nil, false
		}
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

// elemKey returns the key of element i of branch or leaf page p.
func elemKey(p []byte, i int) ([]byte, bool) {
	if IsLeaf(Flags(p)) {
		return LeafKey(p, i)
	}
	_, k, ok := BranchElem(p, i)
	return k, ok
}

// Search returns the index of the first element of branch or leaf page p
// whose key is not less than key, Count(p) if there is none. ok is false
// if an element it compared could not be read (it then counts as not
// less, so that the search of a corrupt page ends).
//
// On a prefixed page the search compares the slots' four key bytes and
// reads an element's key only where they tie with key's: one array, a few
// cache lines, where comparing keys touches a line per step.
func Search(p []byte, key []byte) (int, bool) {
	n := Count(p)
	ok := true
	if !prefixed(p) || SlotsAt+SlotSize*n > len(p) || int(p[PrefixAt]) > MaxPrefix {
		i := sort.Search(n, func(i int) bool {
			k, good := elemKey(p, i)
			ok = ok && good
			return !good || bytes.Compare(k, key) >= 0
		})
		return i, ok
	}
	cp := int(p[PrefixAt])
	if prefix := p[PrefixAt+1 : PrefixAt+1+cp]; !bytes.HasPrefix(key, prefix) {
		// Every key starts with prefix: key sorts before all or after all.
		if bytes.Compare(key, prefix) < 0 {
			return 0, true
		}
		return n, true
	}
	want := slotPrefix(key[cp:])
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		got := binary.BigEndian.Uint32(p[SlotsAt+SlotSize*m+4:])
		less := got < want
		if got == want {
			k, good := elemKey(p, m)
			ok = ok && good
			less = good && bytes.Compare(k, key) < 0
		}
		if less {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, ok
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
// MaxPrefix: for the first and last keys of a page, the prefix every key
// of it starts with.
func CommonPrefix(a, b []byte) int {
	n := min(len(a), len(b), MaxPrefix)
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// PutPrefix writes the common prefix of a prefixed page whose keys all
// start with prefix (at most MaxPrefix bytes), before its elements are put.
func PutPrefix(p []byte, prefix []byte) {
	p[PrefixAt] = byte(len(prefix))
	copy(p[PrefixAt+1:], prefix)
}

// putSlot writes element i's slot, or its format 1 offset, in page p.
func putSlot(p []byte, i, off int, key []byte) {
	if !prefixed(p) {
		binary.LittleEndian.PutUint32(p[HeaderSize+offsetSize*i:], uint32(off))
		return
	}
	at := SlotsAt + SlotSize*i
	binary.LittleEndian.PutUint32(p[at:], uint32(off))
	binary.BigEndian.PutUint32(p[at+4:], slotPrefix(key[min(len(key), int(p[PrefixAt])):]))
}

// CheckPrefixes reports the first element of prefixed page p whose key
// does not start with the page's common prefix or whose slot does not hold
// the key's next four bytes, or -1 if there is none (elements that cannot
// be read are the caller's to report). Searches trust both; Check verifies
// them.
func CheckPrefixes(p []byte) (int, bool) {
	if len(p) < HeaderSize || !prefixed(p) {
		return -1, true
	}
	if len(p) < SlotsAt || int(p[PrefixAt]) > MaxPrefix {
		return 0, false
	}
	cp := int(p[PrefixAt])
	prefix := p[PrefixAt+1 : PrefixAt+1+cp]
	for i := 0; i < Count(p); i++ {
		k, ok := elemKey(p, i)
		if !ok {
			continue
		}
		if !bytes.HasPrefix(k, prefix) || binary.BigEndian.Uint32(p[SlotsAt+SlotSize*i+4:]) != slotPrefix(k[cp:]) {
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

// LeafElemSize is the number of bytes a leaf element with a key of k
// bytes and a value of v bytes takes, its slot included.
func LeafElemSize(k, v int) int {
	return SlotSize + 1 + uvarintLen(k) + uvarintLen(v) + k + v
}

// BranchElemSize is the number of bytes a branch element with a key of k
// bytes takes, its slot included.
func BranchElemSize(k int) int {
	return SlotSize + 8 + uvarintLen(k) + k
}

// ElemsStart returns the offset at which element bodies start in a format
// 1 page of n elements.
func ElemsStart(n int) int { return HeaderSize + offsetSize*n }

// PrefixedElemsStart returns the offset at which element bodies start in a
// prefixed page of n elements.
func PrefixedElemsStart(n int) int { return SlotsAt + SlotSize*n }

// PutLeafElem writes element i of a leaf page at byte offset off of p and
// returns the offset after it, in the layout its header's flags name (a
// prefixed page's common prefix written first). p must be large enough.
func PutLeafElem(p []byte, i, off int, flags uint8, key, value []byte) int {
	putSlot(p, i, off, key)
	p[off] = flags
	off++
	off += binary.PutUvarint(p[off:], uint64(len(key)))
	off += binary.PutUvarint(p[off:], uint64(len(value)))
	off += copy(p[off:], key)
	off += copy(p[off:], value)
	return off
}

// PutBranchElem writes element i of a branch page at byte offset off of p
// and returns the offset after it, in the layout its header's flags name
// (a prefixed page's common prefix written first).
func PutBranchElem(p []byte, i, off int, child Pgid, key []byte) int {
	putSlot(p, i, off, key)
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
// header, the offsets or slots and the furthest element's end.
func Used(p []byte) int {
	n := Count(p)
	used := ElemsStart(n)
	if prefixed(p) {
		used = PrefixedElemsStart(n)
	}
	leaf := IsLeaf(Flags(p))
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
