package mmap

import "sync/atomic"

// Refs counts the holders of something that is freed when the last of
// them lets go. Once the count has dropped to zero it stays there, and
// Acquire fails: the thing is gone. Readers take and drop references
// without a lock.
type Refs struct{ n atomic.Int64 }

// Set sets the count, before the counted thing is shared.
func (r *Refs) Set(n int64) { r.n.Store(n) }

// Load returns the count.
func (r *Refs) Load() int64 { return r.n.Load() }

// Acquire takes a reference. It fails only once the count has dropped to
// zero.
func (r *Refs) Acquire() bool {
	for {
		n := r.n.Load()
		if n <= 0 {
			return false
		}
		if r.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release drops a reference and reports whether it was the last.
func (r *Refs) Release() bool { return r.n.Add(-1) == 0 }

// Epoch is one mapping of the file, shared by every snapshot that began
// while it was current. It is unmapped when the last holder releases it.
type Epoch struct {
	data []byte
	refs Refs
}

// NewEpoch wraps a mapping with one reference held by the caller.
func NewEpoch(data []byte) *Epoch {
	e := &Epoch{data: data}
	e.refs.Set(1)
	return e
}

// Data returns the mapped bytes. Valid while the caller holds a reference.
func (e *Epoch) Data() []byte { return e.data }

// Acquire takes a reference. It fails only on an epoch already released by
// its last holder, which must not be used.
func (e *Epoch) Acquire() bool { return e.refs.Acquire() }

// Release drops a reference and unmaps the epoch when it was the last.
func (e *Epoch) Release() error {
	if e.refs.Release() {
		d := e.data
		e.data = nil
		return Unmap(d)
	}
	return nil
}
