package hashmap

// idTable maps the first and the last page of every free span to the span's
// slot: open addressing with linear probing, keyed by the low 32 bits of the
// page id (8 bytes an entry, key and slot side by side so that a probe
// touches one cache line). A hit is confirmed by the caller against the
// span table, so ids that share their low bits only cost an extra probe.
// Capacity is any integer (the hash is scaled, not masked) and grows by
// half when 7/8 full, so that memory tracks the number of spans closely.
type idTable struct {
	entries []idEntry
	n       int

	touched int32 // see fill
}

// idEntry holds a key and its slot plus one, so that the zero entry is
// empty and a new table needs no initialising pass.
type idEntry struct {
	key   uint32
	slot1 int32
}

func hash32(k uint32, size int) int {
	h := uint64(k) * 0x9e3779b97f4a7c15
	return int((h >> 32) * uint64(size) >> 32)
}

// reserve makes room for n entries in all.
func (t *idTable) reserve(n int) {
	if want := n + n/7 + 8; want > len(t.entries) {
		t.rehash(want)
	}
}

func (t *idTable) rehash(size int) {
	old := t.entries
	t.entries = make([]idEntry, size)
	t.n = 0
	for _, e := range old {
		if e.slot1 != 0 {
			t.put(e.key, e.slot1-1)
		}
	}
}

// grow makes room for n more entries.
func (t *idTable) grow(n int) {
	if (t.n+n)*8 > len(t.entries)*7 {
		t.rehash(max(len(t.entries)+len(t.entries)/2+16, (t.n+n)*8/7+8))
	}
}

func (t *idTable) put(k uint32, slot int32) {
	t.grow(1)
	t.place(hash32(k, len(t.entries)), k, slot)
}

// place stores an entry at the first empty position from home on.
func (t *idTable) place(home int, k uint32, slot int32) {
	i := home
	for t.entries[i].slot1 != 0 {
		if i++; i == len(t.entries) {
			i = 0
		}
	}
	t.entries[i] = idEntry{k, slot + 1}
	t.n++
}

// fill puts many entries, each an opaque payload from which key derives
// the entry's key and slot. Put one by one, each entry costs a cache miss
// that the next cannot overlap, since the probe of one put waits for the
// load before it; fill works in batches instead, first touching every
// batch entry's home position (independent loads that the processor
// overlaps), then placing the batch into lines now cached.
func (t *idTable) fill(payloads []uint32, key func(p uint32) (uint32, int32)) {
	const batch = 32
	var home [batch]int
	for len(payloads) > 0 {
		n := min(len(payloads), batch)
		t.grow(n)
		size := len(t.entries)
		var sink int32
		for i, p := range payloads[:n] {
			k, _ := key(p)
			home[i] = hash32(k, size)
			sink |= t.entries[home[i]].slot1
		}
		for i, p := range payloads[:n] {
			k, s := key(p)
			t.place(home[i], k, s)
		}
		payloads = payloads[n:]
		t.touched = sink // keeps the touching loads
	}
}

// find calls match for each entry with key k until it returns true, and
// returns that entry's position, or -1.
func (t *idTable) find(k uint32, match func(slot int32) bool) int {
	if len(t.entries) == 0 {
		return -1
	}
	for i := hash32(k, len(t.entries)); t.entries[i].slot1 != 0; {
		if t.entries[i].key == k && match(t.entries[i].slot1-1) {
			return i
		}
		if i++; i == len(t.entries) {
			i = 0
		}
	}
	return -1
}

// slot returns the slot of the entry at position i.
func (t *idTable) slot(i int) int32 { return t.entries[i].slot1 - 1 }

// del removes the entry at position i, shifting later entries of the probe
// run back so that no tombstones are needed.
func (t *idTable) del(i int) {
	size := len(t.entries)
	t.entries[i].slot1 = 0
	t.n--
	j := i
	for {
		if j++; j == size {
			j = 0
		}
		if t.entries[j].slot1 == 0 {
			return
		}
		h := hash32(t.entries[j].key, size)
		// The entry at j may move to i if i lies cyclically in [h, j).
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			t.entries[i] = t.entries[j]
			t.entries[j].slot1 = 0
			i = j
		}
	}
}
