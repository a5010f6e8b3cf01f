package freelisttest

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/page"
)

// FreeSizes are the numbers of free pages the benchmarks fragment.
var FreeSizes = []int{1e4, 1e5, 1e6, 1e7}

// fragmented returns ascending spans holding about free pages: runs of 1
// to 8 pages separated by one used page, so that most runs are short and
// every allocation size needs a search.
func fragmented(free int) []page.Span {
	r := rand.New(rand.NewPCG(uint64(free), 3))
	var spans []page.Span
	id := page.Pgid(2)
	for n := 0; n < free; {
		l := 1 + r.IntN(8)
		spans = append(spans, page.Span{ID: id, N: uint64(l)})
		id += page.Pgid(l + 1)
		n += l
	}
	return spans
}

// Benchmark runs the freelist benchmarks over fragmented free space of each
// size in FreeSizes, as sub-benchmarks free=1e4 ... free=1e7:
//
//	alloc/n=N   allocate N contiguous pages and free them again
//	free        free the used page between two free runs (coalescing
//	              with both)
//	release     free and release a commit's worth of pages (100 spans)
//	load        build the index from a sorted checkpoint (one op = all)
//	spans       list every span in order, as a checkpoint does (one op =
//	              all; ns/span metric)
//	memory      heap bytes per free span (B/span metric)
func Benchmark(b *testing.B, newIndex func() freelist.Freelist) {
	for _, free := range FreeSizes {
		spans := fragmented(free)
		name := fmt.Sprintf("free=1e%d", len(fmt.Sprint(free))-1)
		b.Run(name, func(b *testing.B) {
			idx := newIndex()
			idx.Free(spans)
			for _, n := range []int{1, 4, 64} {
				b.Run(fmt.Sprintf("alloc/n=%d", n), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						id := idx.Allocate(n)
						if id == 0 {
							continue // no run of n: the failure is what is timed
						}
						idx.Free([]page.Span{{ID: id, N: uint64(n)}})
					}
				})
			}
			b.Run("free", func(b *testing.B) {
				// Free the used pages between runs, each joining two runs.
				var x freelist.Freelist
				g := len(spans) - 1 // build at the first iteration
				for i := 0; i < b.N; i++ {
					if g == len(spans)-1 {
						b.StopTimer()
						x = newIndex()
						x.Free(spans)
						g = 0
						b.StartTimer()
					}
					gap := spans[g].ID + page.Pgid(spans[g].N)
					x.Free([]page.Span{{ID: gap, N: 1}})
					g++
				}
			})
			b.Run("release", func(b *testing.B) {
				f := freelist.New(idx)
				txid := page.Txid(10)
				for i := 0; i < b.N; i++ {
					txid++
					var got []page.Pgid
					for k := 0; k < 100; k++ {
						if id := f.Allocate(txid, 1); id != 0 {
							got = append(got, id)
						}
					}
					f.Commit(txid)
					txid++
					for _, id := range got {
						f.Free(txid, txid-1, id, 1)
					}
					f.Commit(txid)
					f.Release(nil)
				}
			})
			b.Run("load", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					x := newIndex()
					x.Free(spans)
				}
			})
			b.Run("spans", func(b *testing.B) {
				n := 0
				for i := 0; i < b.N; i++ {
					n = 0
					idx.Spans(func(page.Pgid, uint64) { n++ })
				}
				if n != len(spans) {
					b.Fatalf("listed %d spans, want %d", n, len(spans))
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/span")
			})
			b.Run("memory", func(b *testing.B) {
				var before, after runtime.MemStats
				for i := 0; i < b.N; i++ {
					runtime.GC()
					runtime.ReadMemStats(&before)
					x := newIndex()
					x.Free(spans)
					runtime.GC()
					runtime.ReadMemStats(&after)
					b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(spans)), "B/span")
					runtime.KeepAlive(x)
				}
			})
		})
	}
}
