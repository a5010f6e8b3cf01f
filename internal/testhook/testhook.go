// Package testhook holds the testing knobs through which tests anywhere in
// the module step into a database at points no public API exposes. Knobs
// belong to one database, found by its path, as pebble keeps its testing
// knobs in per-DB options: a test sets them for the path of its own
// database, so tests that use them can run in parallel and none leaks
// into another. Outside tests no database has any, and looking them up
// costs an atomic load.
package testhook

import (
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Hooks are the testing knobs of one database. A zero field is the
// engine's default.
type Hooks struct {
	// Compact, if set, is called by DB.Compact at each stage with the
	// database's path: "copy" (before the copy), "round" (before each
	// catch-up round, writers running), "final" (before writers are
	// blocked for the last round) and "switched" (after the switch to the
	// new file). It runs on Compact's goroutine, so it may commit
	// transactions, but not while holding a write transaction of its own
	// at "final".
	Compact func(path, stage string)
	// Open, if set, is called by Open with the path and the attempt's
	// number (from 0) each time it has opened the file and is about to
	// lock it. Open opens again when the file at the path was replaced
	// while it waited for the lock.
	Open func(path string, attempt int)
	// MinReservation lowers the least size of a mapping (default 1 GiB),
	// so that small files remap (new epochs).
	MinReservation int
	// CompactQuietChanges and CompactMaxFinalChanges replace DB.Compact's
	// limits: the changes under which a catch-up round is quiet, and the
	// most the final round may have to apply.
	CompactQuietChanges, CompactMaxFinalChanges int
}

var (
	mu     sync.RWMutex
	byPath = map[string]*Hooks{}
	count  atomic.Int64
)

func key(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// Set installs h for the database at path until remove is called (which
// may be called more than once). A later Set for the same path replaces
// it.
func Set(path string, h *Hooks) (remove func()) {
	k := key(path)
	mu.Lock()
	if _, ok := byPath[k]; !ok {
		count.Add(1)
	}
	byPath[k] = h
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			if byPath[k] == h {
				delete(byPath, k)
				count.Add(-1)
			}
			mu.Unlock()
		})
	}
}

// For returns the hooks of the database at path, or nil.
func For(path string) *Hooks {
	if count.Load() == 0 {
		return nil
	}
	mu.RLock()
	defer mu.RUnlock()
	return byPath[key(path)]
}
