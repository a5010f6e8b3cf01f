package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/quiverdb/quiver"
)

// Compact discards the history before revision rev: reads below rev fail
// with ErrCompacted from now on, and for each key only its state at rev
// (unless deleted by then) and what came after are kept. The compaction is
// recorded durably and the index compacted before Compact returns; the old
// revisions are then deleted from the engine in the background, in
// transactions of Options.CompactionBatch revisions so that writes never
// wait long, and their pages go back to the freelist. The returned channel
// is closed when that is done (or the store closed). A crash leaves the
// deletion to resume at the next Open.
//
// It fails with ErrCompacted if rev is not above the last compaction and
// ErrFutureRev if it is above the current revision.
func (s *Store) Compact(rev int64) (<-chan struct{}, error) {
	s.compactor.serial.Lock()
	defer s.compactor.serial.Unlock()
	s.mu.Lock()
	if err := s.writable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	compacted, cur := s.CompactRev(), s.committed.Load()
	switch {
	case rev <= compacted:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %d (compacted at %d)", ErrCompacted, rev, compacted)
	case rev > cur:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %d (current %d)", ErrFutureRev, rev, cur)
	}
	err := s.db.Update(func(tx *quiver.Tx) error { return putInt(tx.Bucket(metaBucket), metaScheduled, rev) })
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.index.mu.Lock()
	s.index.compacted = rev
	s.index.mu.Unlock()
	s.mu.Unlock()
	// Writers go on meanwhile: their events are above rev, which the
	// index compaction does not touch.
	s.index.compact(rev)
	return s.compactor.schedule(rev), nil
}

// compactor deletes the revisions compactions no longer need, one
// compaction after the other, in a goroutine of its own.
type compactor struct {
	s      *Store
	serial sync.Mutex // one Compact call at a time

	mu       sync.Mutex
	target   int64 // the last compaction asked for
	finished int64 // the last one whose deletion is done
	waiters  []compactWaiter
	stopped  bool

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

type compactWaiter struct {
	rev  int64
	done chan struct{}
}

func (c *compactor) init(s *Store, scheduled, finished int64) {
	c.s, c.target, c.finished = s, scheduled, finished
	c.kick, c.quit, c.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go c.loop()
	if scheduled > finished {
		c.kick <- struct{}{}
	}
}

// schedule asks for the deletion up to rev and returns a channel closed
// when it is done.
func (c *compactor) schedule(rev int64) <-chan struct{} {
	ch := make(chan struct{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		close(ch)
		return ch
	}
	c.target = max(c.target, rev)
	c.waiters = append(c.waiters, compactWaiter{rev, ch})
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return ch
}

// stop ends the goroutine after its current batch; a deletion left
// unfinished resumes at the next Open.
func (c *compactor) stop() {
	close(c.quit)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	for _, w := range c.waiters {
		close(w.done)
	}
	c.waiters = nil
}

func (c *compactor) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		}
		c.mu.Lock()
		target, finished := c.target, c.finished
		c.mu.Unlock()
		if target > finished {
			if err := c.run(target); err != nil {
				// Left for the next Open (or the next Compact) to resume.
				continue
			}
		}
		c.mu.Lock()
		c.finished = max(c.finished, target)
		kept := c.waiters[:0]
		for _, w := range c.waiters {
			if w.rev <= c.finished {
				close(w.done)
			} else {
				kept = append(kept, w)
			}
		}
		c.waiters = kept
		c.mu.Unlock()
	}
}

// run deletes, batch by batch, the revisions up to target that the index
// no longer keeps, recording its progress with each batch.
func (c *compactor) run(target int64) error {
	s := c.s
	var cursor []byte
	err := s.db.View(func(tx *quiver.Tx) error {
		// A cursor saved by an interrupted run for the same target.
		if v := tx.Bucket(metaBucket).Get(metaCursor); len(v) == 8+revKeyLen && int64(binary.BigEndian.Uint64(v)) == target {
			cursor = bytes.Clone(v[8:])
		}
		return nil
	})
	if err != nil {
		return err
	}
	for {
		select {
		case <-c.quit:
			return errStopped
		default:
		}
		done := false
		err := s.db.Update(func(tx *quiver.Tx) error {
			revs, meta := tx.Bucket(revBucket), tx.Bucket(metaBucket)
			cur := revs.Cursor()
			var k, v []byte
			if cursor == nil {
				k, v = cur.First()
			} else if k, v = cur.Seek(cursor); k != nil && bytes.Equal(k, cursor) {
				k, v = cur.Next()
			}
			var dels [][]byte
			s.index.mu.RLock()
			for n := 0; ; n++ {
				if k == nil {
					done = true
					break
				}
				r, ok := revOfKey(k)
				if !ok || r.Main > target {
					done = true
					break
				}
				if n == s.opts.CompactionBatch {
					break
				}
				kv, _, err := decodeRecord(v, r)
				if err != nil {
					s.index.mu.RUnlock()
					return fmt.Errorf("revision %v: %w", r, err)
				}
				if !s.index.keptEvent(kv.Key, r, target) {
					dels = append(dels, bytes.Clone(k))
				}
				cursor = bytes.Clone(k)
				k, v = cur.Next()
			}
			s.index.mu.RUnlock()
			for _, d := range dels {
				if err := revs.Delete(d); err != nil {
					return err
				}
			}
			if done {
				if err := putInt(meta, metaFinished, target); err != nil {
					return err
				}
				return meta.Delete(metaCursor)
			}
			if cursor == nil {
				return nil
			}
			return meta.Put(metaCursor, append(binary.BigEndian.AppendUint64(nil, uint64(target)), cursor...))
		})
		if err != nil || done {
			return err
		}
		if s.opts.CompactionPause > 0 {
			time.Sleep(s.opts.CompactionPause)
		}
	}
}

var errStopped = fmt.Errorf("mvcc: compaction stopped")
