package main

import (
	"runtime"
	"sync"

	"github.com/quiverdb/quiver/bench"
)

// prefetcher is an engine whose Apply first looks up every key of the
// commit from n goroutines, each in read transactions of its own, so that
// the page faults on the leaves the commit will change overlap instead of
// coming one at a time inside the write transaction. Past the page cache,
// growth commits of random keys wait on those faults; this only shortens
// the growth phases. Measured commits do not go through it.
//
// A thread that faults on a mapped page keeps its P, so at most GOMAXPROCS
// faults are in flight: withProcs raises it for the growth phases.
type prefetcher struct {
	bench.Engine
	n int
}

// withProcs runs fn with GOMAXPROCS at least n+1 (the goroutines blocked
// in page faults use no CPU), then restores it.
func withProcs(n int, fn func() error) error {
	old := runtime.GOMAXPROCS(0)
	if n+1 > old {
		runtime.GOMAXPROCS(n + 1)
		defer runtime.GOMAXPROCS(old)
	}
	return fn()
}

func (p prefetcher) Apply(ops []bench.Op) error {
	if p.n > 0 && len(ops) >= p.n {
		var wg sync.WaitGroup
		errs := make([]error, p.n)
		for g := range p.n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < len(ops); i += p.n {
					if _, err := p.Get(ops[i].Key); err != nil {
						errs[g] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return p.Engine.Apply(ops)
}
