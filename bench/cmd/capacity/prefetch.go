package main

import (
	"errors"
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

// readIn looks up every live key of w's hot set from n goroutines, so that
// the hot set's pages are in the page cache before a measurement, as a
// long-running database's working set would be.
func readIn(e bench.Engine, w *bench.FragmentedWorkload, n int) error {
	const batch = 4096
	keys := make([]byte, 0, batch*bench.KeySize)
	flush := func() error {
		var wg sync.WaitGroup
		errs := make([]error, n)
		count := len(keys) / bench.KeySize
		for g := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < count; i += n {
					if _, err := e.Get(keys[i*bench.KeySize : (i+1)*bench.KeySize]); err != nil {
						errs[g] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		keys = keys[:0]
		return errors.Join(errs...)
	}
	err := w.HotKeys(func(k []byte) error {
		keys = append(keys, k...)
		if len(keys) == cap(keys) {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}
