package mmap

import "sync/atomic"

// Epoch is one mapping of the file, shared by every snapshot that began
// while it was current. It is unmapped when the last holder releases it.
type Epoch struct {
	data []byte
	refs atomic.Int64
}

// NewEpoch wraps a mapping with one reference held by the caller.
func NewEpoch(data []byte) *Epoch {
	e := &Epoch{data: data}
	e.refs.Store(1)
	return e
}

// Data returns the mapped bytes. Valid while the caller holds a reference.
func (e *Epoch) Data() []byte { return e.data }

// Acquire takes a reference. It fails only on an epoch already released by
// its last holder, which must not be used.
func (e *Epoch) Acquire() bool {
	for {
		n := e.refs.Load()
		if n <= 0 {
			return false
		}
		if e.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release drops a reference and unmaps the epoch when it was the last.
func (e *Epoch) Release() error {
	if e.refs.Add(-1) == 0 {
		d := e.data
		e.data = nil
		return Unmap(d)
	}
	return nil
}
