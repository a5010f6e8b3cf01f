package hashmap

// idTable maps the first and the last page of every free span to the span's
// slot: open addressing with linear probing over parallel arrays, keyed by
// the low 32 bits of the page id (8 bytes a slot). A hit is confirmed by the
// caller against the span table, so ids that share their low bits only cost
// an extra probe. Capacity is any integer (the hash is scaled, not masked)
// and grows by half when 7/8 full, so that memory tracks the number of
// spans closely.
type idTable struct {
	keys  []uint32
	slots []int32 // -1: empty
	n     int
}

func hash32(k uint32, size int) int {
	h := uint64(k) * 0x9e3779b97f4a7c15
	return int((h >> 32) * uint64(size) >> 32)
}

// reserve makes room for n entries in all.
func (t *idTable) reserve(n int) {
	if want := n + n/7 + 8; want > len(t.slots) {
		t.rehash(want)
	}
}

func (t *idTable) rehash(size int) {
	oldKeys, oldSlots := t.keys, t.slots
	t.keys = make([]uint32, size)
	t.slots = make([]int32, size)
	for i := range t.slots {
		t.slots[i] = none
	}
	t.n = 0
	for i, s := range oldSlots {
		if s != none {
			t.put(oldKeys[i], s)
		}
	}
}

func (t *idTable) put(k uint32, slot int32) {
	if (t.n+1)*8 > len(t.slots)*7 {
		t.rehash(len(t.slots) + len(t.slots)/2 + 16)
	}
	i := hash32(k, len(t.slots))
	for t.slots[i] != none {
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	t.keys[i], t.slots[i] = k, slot
	t.n++
}

// find calls match for each entry with key k until it returns true, and
// returns that entry's position, or -1.
func (t *idTable) find(k uint32, match func(slot int32) bool) int {
	if len(t.slots) == 0 {
		return -1
	}
	for i := hash32(k, len(t.slots)); t.slots[i] != none; {
		if t.keys[i] == k && match(t.slots[i]) {
			return i
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	return -1
}

// del removes the entry at position i, shifting later entries of the probe
// run back so that no tombstones are needed.
func (t *idTable) del(i int) {
	size := len(t.slots)
	t.slots[i] = none
	t.n--
	j := i
	for {
		if j++; j == size {
			j = 0
		}
		if t.slots[j] == none {
			return
		}
		h := hash32(t.keys[j], size)
		// The entry at j may move to i if i lies cyclically in [h, j).
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			t.keys[i], t.slots[i] = t.keys[j], t.slots[j]
			t.slots[j] = none
			i = j
		}
	}
}
