package page

import (
	"encoding/binary"
)

const freelistFixed = HeaderSize + 16

// PutFreelist encodes a freelist checkpoint into the zeroed span b for page
// id. each must call its argument once per free span in ascending order.
func PutFreelist(b []byte, id Pgid, txid Txid, pageSize int, each func(yield func(id Pgid, n uint64))) {
	le := binary.LittleEndian
	var count, total uint64
	var end Pgid
	off := freelistFixed
	each(func(s Pgid, n uint64) {
		off += binary.PutUvarint(b[off:], uint64(s-end))
		off += binary.PutUvarint(b[off:], n-1)
		end = s + Pgid(n)
		count++
		total += n
	})
	PutHeader(b, id, txid, FlagFreelist, 0, uint32(len(b)/pageSize-1))
	le.PutUint64(b[HeaderSize:], count)
	le.PutUint64(b[HeaderSize+8:], total)
	Seal(b)
}

// DecodeFreelist calls fn for each span of the freelist checkpoint b (read
// for page id, already verified). Spans are checked to be ascending,
// non-overlapping and below highWater.
func DecodeFreelist(b []byte, id Pgid, highWater Pgid, fn func(id Pgid, n uint64)) error {
	if len(b) < freelistFixed {
		return Corruptf(id, "short freelist page")
	}
	if Flags(b) != FlagFreelist {
		return Corruptf(id, "expected a freelist page, found a %s page", FlagName(Flags(b)))
	}
	le := binary.LittleEndian
	count, total := le.Uint64(b[HeaderSize:]), le.Uint64(b[HeaderSize+8:])
	off := freelistFixed
	var end Pgid
	var sum uint64
	for i := uint64(0); i < count; i++ {
		gap, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return Corruptf(id, "bad span %d", i)
		}
		off += n
		l, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return Corruptf(id, "bad span %d", i)
		}
		off += n
		start := end + Pgid(gap)
		if start < end || l >= uint64(highWater) || start+Pgid(l)+1 > highWater || start < 2 {
			return Corruptf(id, "span %d (%d+%d) out of order or range", i, start, l+1)
		}
		fn(start, l+1)
		end = start + Pgid(l) + 1
		sum += l + 1
	}
	if sum != total {
		return Corruptf(id, "freelist total %d differs from its spans' %d", total, sum)
	}
	return nil
}

// freelistSpans returns the span count b's header gives, bounded by what
// its bytes can hold (two varint bytes a span at least), for sizing a
// slice before DecodeFreelist checks the page.
func freelistSpans(b []byte) int {
	if len(b) < freelistFixed {
		return 0
	}
	return int(min(binary.LittleEndian.Uint64(b[HeaderSize:]), uint64(len(b)-freelistFixed)/2))
}

// FreelistSize returns the exact size in bytes of the checkpoint PutFreelist
// writes for the spans each yields.
func FreelistSize(each func(yield func(id Pgid, n uint64))) int {
	size := freelistFixed
	var end Pgid
	each(func(s Pgid, n uint64) {
		size += uvarintLen64(uint64(s-end)) + uvarintLen64(n-1)
		end = s + Pgid(n)
	})
	return size
}

func uvarintLen64(v uint64) int {
	l := 1
	for v >= 0x80 {
		v >>= 7
		l++
	}
	return l
}
