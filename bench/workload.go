package bench

import (
	"encoding/binary"
	"math/rand/v2"
)

// KeySize is the length of every workload key.
const KeySize = 16

// Keys holds the n keys of a data set, key i at i*KeySize. Key i is the
// big-endian i followed by a mix of i: keys sort in index order, so loading
// them by index is a sequential load, and they are distinct.
type Keys struct {
	buf []byte
	n   int
}

// NewKeys returns the n keys of the data set.
func NewKeys(n int) *Keys {
	k := &Keys{buf: make([]byte, n*KeySize), n: n}
	for i := 0; i < n; i++ {
		PutKey(k.buf[i*KeySize:], uint64(i))
	}
	return k
}

// Len returns the number of keys.
func (k *Keys) Len() int { return k.n }

// Key returns key i; the slice must not be changed.
func (k *Keys) Key(i int) []byte { return k.buf[i*KeySize : (i+1)*KeySize : (i+1)*KeySize] }

// PutKey writes the key of index i into dst[:KeySize].
func PutKey(dst []byte, i uint64) {
	binary.BigEndian.PutUint64(dst, i)
	binary.BigEndian.PutUint64(dst[8:], mix(i))
}

// mix is a bijective scrambler (splitmix64's finaliser), so that the second
// half of a key is not a copy of the first.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Values hands out values of one size, cut at varying offsets from a block
// of seeded random bytes, so that they differ without costing an allocation
// each. The slices stay valid and unchanged for the life of Values, which
// bbolt needs: its Put keeps the value slice until the commit.
type Values struct {
	block []byte
	size  int
}

const valueBlock = 64 << 10

// NewValues returns values of size bytes drawn from a block seeded by seed.
func NewValues(size int, seed uint64) *Values {
	r := rand.New(rand.NewPCG(seed, 0x76616c756573))
	block := make([]byte, valueBlock+size)
	for i := range block {
		block[i] = byte(r.Uint32())
	}
	return &Values{block: block, size: size}
}

// Value returns the value for key index i.
func (v *Values) Value(i int) []byte {
	off := int(mix(uint64(i)) % valueBlock)
	return v.block[off : off+v.size : off+v.size]
}

// Load puts the keys of k into e, batch pairs per write transaction, in
// index order or, if order is not nil, in the order of the indexes it lists.
func Load(e Engine, k *Keys, v *Values, order []int, batch int) error {
	n := k.Len()
	for lo := 0; lo < n; lo += batch {
		m := min(batch, n-lo)
		err := e.PutBatch(m, func(i int) ([]byte, []byte) {
			idx := lo + i
			if order != nil {
				idx = order[idx]
			}
			return k.Key(idx), v.Value(idx)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
