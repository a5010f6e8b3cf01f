package main

import (
	"bytes"
	"testing"

	"github.com/quiverdb/quiver/bench"
	"github.com/quiverdb/quiver/page"
)

// Both layouts find every key of the data set in its leaf, and place keys
// that are not in it (between, before and after the stored ones, sharing
// more or less of a leaf's common prefix) where a search over the sorted
// keys would.
func TestSearchesAgree(t *testing.T) {
	const n = 5000
	for _, fill := range []float64{0.3, 1} {
		off, pre := layouts(n, 20, fill, 1)
		for _, l := range []*leaves{off, pre} {
			for j := 0; j < n; j++ {
				key := make([]byte, bench.KeySize)
				bench.PutKey(key, uint64(j))
				p := l.page(int(l.leafOf[j]))
				_, ok := l.search(p, key)
				if !ok {
					t.Fatalf("fill %v: key %d not found", fill, j)
				}
				// Keys that are not there: one byte more, one less, a
				// lower and a higher byte in the prefix's range.
				probes := [][]byte{append(key[:len(key):len(key)], 0), key[:len(key)-1]}
				for _, at := range []int{3, 6, 8, 12} {
					for _, d := range []int{-1, 1} {
						k := bytes.Clone(key)
						k[at] = byte(int(k[at]) + d)
						probes = append(probes, k)
					}
				}
				for _, k := range probes {
					if got, found := l.search(p, k); got != linear(l, p, k) || found {
						t.Fatalf("fill %v, near key %d, probe %x: search says %d (found %v), a scan %d", fill, j, k, got, found, linear(l, p, k))
					}
				}
			}
		}
	}
}

// linear returns the index of the first key of leaf p not less than k.
func linear(l *leaves, p, k []byte) int {
	n := page.Count(p)
	for i := 0; i < n; i++ {
		if bytes.Compare(l.key(p, i), k) >= 0 {
			return i
		}
	}
	return n
}
