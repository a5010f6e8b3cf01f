package hashmap

import "math/bits"

// bitset is a hierarchical bitset over integers: level 0 holds one bit per
// integer, and bit w of level k+1 says whether word w of level k is
// non-zero. The top level is a single word. Finding the smallest member
// reads one word per level: 5 levels cover 2^30 integers.
type bitset struct {
	levels [][]uint64
}

func (b *bitset) capacity() uint64 {
	return 1 << (6 * uint(len(b.levels)))
}

func (b *bitset) set(i uint64) {
	if len(b.levels) == 0 {
		b.levels = [][]uint64{{0}}
	}
	for i >= b.capacity() {
		// Add a level on top, summarising the old top word.
		var top uint64
		if b.levels[len(b.levels)-1][0] != 0 {
			top = 1
		}
		b.levels = append(b.levels, []uint64{top})
	}
	for l := range b.levels {
		w := i / 64
		for uint64(len(b.levels[l])) <= w {
			b.levels[l] = append(b.levels[l], 0)
		}
		was := b.levels[l][w]
		b.levels[l][w] |= 1 << (i % 64)
		if was != 0 {
			return
		}
		i = w
	}
}

func (b *bitset) clear(i uint64) {
	if len(b.levels) == 0 || i >= b.capacity() {
		return
	}
	for l := range b.levels {
		w := i / 64
		if uint64(len(b.levels[l])) <= w {
			return
		}
		b.levels[l][w] &^= 1 << (i % 64)
		if b.levels[l][w] != 0 {
			return
		}
		i = w
	}
}

// first returns the smallest member, or false if the set is empty.
func (b *bitset) first() (uint64, bool) {
	if len(b.levels) == 0 || b.levels[len(b.levels)-1][0] == 0 {
		return 0, false
	}
	var i uint64
	for l := len(b.levels) - 1; l >= 0; l-- {
		i = i*64 + uint64(bits.TrailingZeros64(b.levels[l][i]))
	}
	return i, true
}
