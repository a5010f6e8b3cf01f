package main

import (
	"sync"

	"github.com/quiverdb/quiver/bench"
)

// prefetcher is an engine whose Apply first looks up every key of the
// commit from n goroutines, each in read transactions of its own, so that
// the page faults on the leaves the commit will change overlap (a queue of
// n reads at the device) instead of coming one at a time inside the write
// transaction. Past the page cache, growth commits of random keys wait on
// those faults; this only shortens the growth phases. Measured commits do
// not go through it.
type prefetcher struct {
	bench.Engine
	n int
}

func (p prefetcher) Apply(ops []bench.Op) error {
	if p.n > 1 && len(ops) >= p.n {
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
