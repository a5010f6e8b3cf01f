package bench

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestEngines runs every available engine through the operations the
// benchmarks use and checks that they agree, so that a benchmark never times
// an adapter that silently does less work than the others.
func TestEngines(t *testing.T) {
	const n = 2500
	keys := NewKeys(n)
	values := NewValues(100, 1)
	for _, spec := range Engines {
		t.Run(spec.Name, func(t *testing.T) {
			if err := Available(spec); err != nil {
				t.Skipf("engine not available: %v", err)
			}
			path := filepath.Join(t.TempDir(), "test.db")
			e, err := spec.Open(path, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Even keys in order, then odd keys in random order.
			even := make([]int, 0, n/2+1)
			odd := make([]int, 0, n/2)
			for i := 0; i < n; i++ {
				if i%2 == 0 {
					even = append(even, i)
				} else {
					odd = append(odd, i)
				}
			}
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(odd), func(i, j int) { odd[i], odd[j] = odd[j], odd[i] })
			order := append(even, odd...)
			if err := Load(e, keys, values, order, 1000); err != nil {
				t.Fatal(err)
			}
			check := func() {
				t.Helper()
				for _, i := range []int{0, 1, n / 2, n - 1} {
					if ok, err := e.Get(keys.Key(i)); err != nil || !ok {
						t.Fatalf("Get(key %d) = %v, %v; want true", i, ok, err)
					}
				}
				missing := make([]byte, KeySize)
				PutKey(missing, n)
				if ok, err := e.Get(missing); err != nil || ok {
					t.Fatalf("Get(missing key) = %v, %v; want false", ok, err)
				}
				found, err := e.GetInTx(n+1, func(i int) []byte {
					if i == n {
						return missing
					}
					return keys.Key(i)
				})
				if err != nil || found != n {
					t.Fatalf("GetInTx found %d, %v; want %d", found, err, n)
				}
				if count, err := e.Scan(); err != nil || count != n {
					t.Fatalf("Scan = %d, %v; want %d", count, err, n)
				}
				if size, err := e.FileSize(); err != nil || size < n*(KeySize+100) {
					t.Fatalf("FileSize = %d, %v; want at least the raw data", size, err)
				}
			}
			check()
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if e, err = spec.Open(path, OpenOptions{}); err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			check()
		})
	}
}
