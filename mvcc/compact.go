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
// ErrFutureRev if it is above the current revision. As etcd, the deletion
// pass also hashes the contents at rev under the previous compaction (see
// HashKV), for replicas to compare.
func (s *Store) Compact(rev int64) (<-chan struct{}, error) {
	s.compactor.serial.Lock()
	defer s.compactor.serial.Unlock()
	s.mu.Lock()
	if err := s.writable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if s.replicated {
		// Its replicas would compact at other revisions, and answer
		// reads of old revisions differently.
		s.mu.Unlock()
		return nil, ErrReplicated
	}
	s.index.mu.RLock()
	compacted, cur := s.index.compacted, s.committed.Load()
	s.index.mu.RUnlock()
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
	return s.compactor.schedule(compacted, rev), nil
}

// compactor deletes the revisions compactions no longer need, one
// compaction after the other, in a goroutine of its own.
type compactor struct {
	s      *Store
	serial sync.Mutex // one Compact call at a time

	mu      sync.Mutex
	jobs    []compactJob // scheduled, oldest first
	hashes  []compactHash
	stopped bool

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

// compactJob is one compaction's deletion pass: at rev, after the one at
// prev (-1: none; -2: unknown, for a pass resumed at Open, which hashes
// nothing).
type compactJob struct {
	prev, rev int64
	done      chan struct{}
}

// compactHash is the hash of the contents at rev, under the compaction at
// prev, that a deletion pass computed: etcd's hash at compaction.
type compactHash struct {
	rev, prev int64
	hash      uint32
}

// maxCompactHashes is how many compaction hashes are kept, as etcd.
const maxCompactHashes = 10

// init starts the compactor, at Open, or again after stop when the store
// reloads (Store.Reload).
func (c *compactor) init(s *Store, scheduled, finished int64) {
	c.mu.Lock()
	c.s = s
	c.stopped, c.jobs, c.hashes = false, nil, nil
	c.kick, c.quit, c.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	if scheduled > finished {
		// Interrupted: resume it (its hash is lost with the pass).
		c.jobs = append(c.jobs, compactJob{prev: -2, rev: scheduled, done: make(chan struct{})})
		c.kick <- struct{}{}
	}
	c.mu.Unlock()
	go c.loop()
}

// schedule queues the deletion pass of the compaction at rev (after the
// one at prev) and returns a channel closed when it is done.
func (c *compactor) schedule(prev, rev int64) <-chan struct{} {
	ch := make(chan struct{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		close(ch)
		return ch
	}
	c.jobs = append(c.jobs, compactJob{prev: prev, rev: rev, done: ch})
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return ch
}

// hashAt returns the hash a deletion pass computed at rev, if it is among
// the last ones.
func (c *compactor) hashAt(rev int64) (compactHash, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hashes {
		if h.rev == rev {
			return h, true
		}
	}
	return compactHash{}, false
}

// stop ends the goroutine after its current batch; a deletion left
// unfinished resumes at the next Open.
func (c *compactor) stop() {
	close(c.quit)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	for _, j := range c.jobs {
		close(j.done)
	}
	c.jobs = nil
}

func (c *compactor) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		}
		for {
			c.mu.Lock()
			if len(c.jobs) == 0 {
				c.mu.Unlock()
				break
			}
			j := c.jobs[0]
			c.mu.Unlock()
			h, whole, err := c.run(j)
			if err != nil {
				// Stopped, or the engine failed: left for the next Open.
				break
			}
			c.mu.Lock()
			c.jobs = c.jobs[1:]
			if whole && j.prev >= -1 {
				c.hashes = append(c.hashes, compactHash{rev: j.rev, prev: j.prev, hash: h})
				if len(c.hashes) > maxCompactHashes {
					c.hashes = c.hashes[1:]
				}
			}
			c.mu.Unlock()
			close(j.done)
		}
	}
}

// run deletes, batch by batch, the revisions up to j.rev that the index
// no longer keeps, recording its progress with each batch. A pass that
// started from the first revision (whole) also returns the hash of what it
// saw, etcd's hash at compaction.
func (c *compactor) run(j compactJob) (hash uint32, whole bool, err error) {
	s := c.s
	target := j.rev
	var cursor []byte
	err = s.db.View(func(tx *quiver.Tx) error {
		// A cursor saved by an interrupted pass for the same target.
		if v := tx.Bucket(metaBucket).Get(metaCursor); len(v) == 8+revKeyLen && int64(binary.BigEndian.Uint64(v)) == target {
			cursor = bytes.Clone(v[8:])
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	whole = cursor == nil && j.prev >= -1
	// Whether the compaction keeps anything at all (see hasher).
	keepAny := false
	s.index.mu.RLock()
	s.index.ascendFrom(nil, func(_ []byte, h hist) bool {
		_, keepAny = h.compactKeeps(target)
		return !keepAny
	})
	s.index.mu.RUnlock()
	h := newHasher(j.prev, target, keepAny)
	for {
		select {
		case <-c.quit:
			return 0, false, errStopped
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
				kv, tomb, err := decodeRecord(v, r)
				if err != nil {
					s.index.mu.RUnlock()
					return fmt.Errorf("revision %v: %w", r, err)
				}
				kept := s.index.keptEvent(kv.Key, r, target)
				if whole {
					h.add(r, kv, tomb, kept)
				}
				if !kept {
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
		if err != nil {
			return 0, false, err
		}
		if done {
			return h.sum(), whole, nil
		}
		if s.opts.CompactionPause > 0 {
			time.Sleep(s.opts.CompactionPause)
		}
	}
}

var errStopped = fmt.Errorf("mvcc: compaction stopped")
