package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverdb/quiver"
)

// Errors. Match them with errors.Is.
var (
	// ErrCompacted: the revision asked for is below the compacted one; its
	// history is gone.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev: the revision asked for is above the current one.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
	// ErrEmptyKey: an operation without a key.
	ErrEmptyKey = errors.New("mvcc: key is not provided")
	// ErrInvalidRange: a range whose end is below its key.
	ErrInvalidRange = errors.New("mvcc: range end is below the key")
	// ErrDuplicateKey: a transaction that changes one key twice (two puts,
	// or a put inside a deleted range).
	ErrDuplicateKey = errors.New("mvcc: duplicate key given in txn request")
	// ErrTooManyOps: a transaction of more than MaxTxnOps changes.
	ErrTooManyOps = errors.New("mvcc: too many changes in one transaction")
	// ErrReplicated: Compact on a store that takes its writes from a
	// replicated log (TxnIn).
	ErrReplicated = errors.New("mvcc: the store is replicated: compact it through its log")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("mvcc: store closed")
	// ErrFailed: an engine commit failed; the store refuses writes until
	// it is reopened, because what it holds in memory is no longer on disk.
	ErrFailed = errors.New("mvcc: a commit failed; reopen the store")
)

// Bucket names in the engine file.
var (
	revBucket  = []byte("mvcc.rev")
	metaBucket = []byte("mvcc.meta")
	// metaScheduled is the last compaction asked for; metaFinished the
	// last one whose old revisions are all deleted; metaCursor the last
	// revision key the running one has dealt with.
	metaScheduled = []byte("compact.scheduled")
	metaFinished  = []byte("compact.finished")
	metaCursor    = []byte("compact.cursor")
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// MaxBatchOps bounds the changes in one engine transaction of the
	// group commit; writers wait while that many are pending. Default
	// 10,000.
	MaxBatchOps int
	// BatchInterval is how long the committer waits, after a write
	// arrives, for others to join its engine transaction. Default 0: it
	// commits at once, and writes that arrive during a commit share the
	// next one.
	BatchInterval time.Duration
	// CompactionBatch is the number of old revisions a compaction deletes
	// per engine transaction, so that writes never wait long. Default 1,000.
	CompactionBatch int
	// CompactionPause is a pause between compaction batches. Default 0.
	CompactionPause time.Duration
}

// Store is a revisioned key space in a quiver database, etcd's data model:
// every change gets a revision, every key keeps its history until
// compacted, and reads may ask for any revision since the last compaction.
//
// Writes (Put, DeleteRange, Txn) are applied in memory in revision order
// and group-committed: many of them share one engine transaction. A write
// returns once its transaction is durable, unless it asked not to wait
// (Txn.NoWait). Reads see what is durable, never block on a commit and are
// never blocked by one. All methods are safe for concurrent use.
type Store struct {
	db    *quiver.DB
	opts  Options
	index *treeIndex

	// mu serializes writers: revision assignment, index changes and the
	// pending batch.
	mu          sync.Mutex
	room        *sync.Cond // signalled when the committer takes a batch
	rev         int64      // the last revision applied in memory
	pending     []pending
	uncommitted map[Revision][]byte // records of revisions not yet durable
	batch       *batch              // the batch pending writes join
	inflight    *batch              // the batch being committed, if any
	failed      error
	closed      bool
	wake        chan struct{}
	loopDone    chan struct{}

	committed atomic.Int64 // the last durable revision
	// commitc, once a reader waits (waitCompactionCommitted), is closed
	// when committed moves.
	commitMu sync.Mutex
	commitc  chan struct{}

	// The replicated mode (TxnIn): the write transaction holding changes
	// not yet committed, and their records, for the watchers.
	applyTx     *quiver.Tx
	applyWrites []pending
	replicated  bool // TxnIn was used: Compact refuses

	compactor compactor
	hub       hub
}

type pending struct {
	key [revKeyLen]byte
	rec []byte
}

// batch is one engine transaction of the group commit; done is closed when
// it is committed, with err set before.
type batch struct {
	done chan struct{}
	err  error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Open opens the store kept in db, creating its buckets if needed, and
// rebuilds its index from the revisions. A compaction interrupted by a
// crash resumes in the background. db stays the caller's: close the store,
// then the database.
func Open(db *quiver.DB, opts *Options) (*Store, error) {
	s := &Store{db: db, index: newTreeIndex(), uncommitted: map[Revision][]byte{}, batch: newBatch(),
		wake: make(chan struct{}, 1), loopDone: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.MaxBatchOps <= 0 {
		s.opts.MaxBatchOps = 10000
	}
	if s.opts.CompactionBatch <= 0 {
		s.opts.CompactionBatch = 1000
	}
	s.room = sync.NewCond(&s.mu)
	err := db.Update(func(tx *quiver.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(revBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(metaBucket)
		return err
	})
	if err != nil {
		return nil, err
	}
	scheduled, finished, err := s.restore()
	if err != nil {
		return nil, err
	}
	s.committed.Store(s.rev)
	s.compactor.init(s, scheduled, finished)
	s.hub.init(s, s.rev)
	go s.commitLoop()
	return s, nil
}

// restore rebuilds the index from every stored revision and returns the
// compaction state.
func (s *Store) restore() (scheduled, finished int64, err error) {
	s.rev = 1 // an empty store is at revision 1, as etcd's
	// Histories are gathered per key first, then loaded into the index in
	// key order: far cheaper than inserting keys in revision order.
	hs := map[string]hist{}
	err = s.db.View(func(tx *quiver.Tx) error {
		meta := tx.Bucket(metaBucket)
		scheduled, finished = getInt(meta, metaScheduled), getInt(meta, metaFinished)
		c := tx.Bucket(revBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, ok := revOfKey(k)
			if !ok {
				return fmt.Errorf("%w: revision key %x", errBadRecord, k)
			}
			kv, tomb, err := decodeRecord(v, r)
			if err != nil {
				return fmt.Errorf("revision %v: %w", r, err)
			}
			h, known := hs[string(kv.Key)]
			switch {
			case known:
				hs[string(kv.Key)] = append(h, mkEvent(r, tomb))
			case tomb:
				// A deletion whose puts a compaction removed, which it
				// will remove too.
			case kv.Version > 1 || kv.CreateRevision != r.Main:
				// The first record left of a compacted generation.
				hs[string(kv.Key)] = hist{event(uint64(kv.CreateRevision) | hdrMark), event(kv.Version - 1), mkEvent(r, false)}
			default:
				hs[string(kv.Key)] = hist{mkEvent(r, false)}
			}
			s.rev = max(s.rev, r.Main)
		}
		return tx.Err()
	})
	if err != nil {
		return 0, 0, err
	}
	s.index.load(hs)
	// A compaction may have deleted every revision up to its own.
	s.rev = max(s.rev, scheduled)
	s.index.mu.Lock()
	s.index.compacted = scheduled
	s.index.mu.Unlock()
	if scheduled >= 0 {
		s.index.compact(scheduled)
	}
	return scheduled, finished, nil
}

// getInt reads an int64 of the meta bucket; -1 if it is not there.
func getInt(b *quiver.Bucket, key []byte) int64 {
	if v := b.Get(key); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return -1
}

func putInt(b *quiver.Bucket, key []byte, v int64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	return b.Put(key, buf[:])
}

// Rev returns the current revision: the last one that is durable.
func (s *Store) Rev() int64 { return s.committed.Load() }

// CompactRev returns the revision of the last compaction asked for, 0 if
// none: reads below it fail with ErrCompacted.
func (s *Store) CompactRev() int64 {
	s.index.mu.RLock()
	defer s.index.mu.RUnlock()
	return max(s.index.compacted, 0)
}

// Close commits what is pending, stops the committer and the compaction
// (which resumes at the next Open), closes the watch streams and returns.
// The database stays open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.poke()
	<-s.loopDone
	s.compactor.stop()
	s.hub.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *Store) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// commitLoop writes pending batches, one engine transaction each.
func (s *Store) commitLoop() {
	defer close(s.loopDone)
	for range s.wake {
		if s.opts.BatchInterval > 0 {
			time.Sleep(s.opts.BatchInterval)
		}
		for {
			s.mu.Lock()
			if len(s.pending) == 0 {
				closed := s.closed
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			writes, b, top := s.pending, s.batch, s.rev
			s.pending, s.batch, s.inflight = nil, newBatch(), b
			s.room.Broadcast()
			failed := s.failed
			s.mu.Unlock()

			// After a failed commit no later batch may commit: its
			// revisions would follow ones that are not in the store.
			err := failed
			if err == nil {
				err = s.commit(writes)
			}
			s.mu.Lock()
			if err != nil {
				if s.failed == nil {
					s.failed = err
				}
				s.room.Broadcast() // writers waiting for room fail now
			} else {
				s.publishCommitted(top)
				for i := range writes {
					r, _ := revOfKey(writes[i].key[:])
					delete(s.uncommitted, r)
				}
			}
			s.mu.Unlock()
			if err == nil {
				s.hub.notify(writes, top)
			}
			b.err = err
			close(b.done)
		}
	}
}

// commitFault, set only by tests, runs before each batch's commit; an
// error it returns fails the commit.
var commitFault func() error

// commit writes one batch's revisions in one engine transaction.
func (s *Store) commit(writes []pending) error {
	if commitFault != nil {
		if err := commitFault(); err != nil {
			return err
		}
	}
	return s.db.Update(func(tx *quiver.Tx) error {
		bk := tx.Bucket(revBucket)
		bk.FillPercent = 0.95 // revisions only ever append
		for i := range writes {
			if err := bk.Put(writes[i].key[:], writes[i].rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// RangeOptions tune a Range.
type RangeOptions struct {
	// Rev is the revision to read at; 0 means the current one.
	Rev int64
	// Limit bounds the keys returned (Count still counts them all); 0
	// means no limit.
	Limit int64
	// CountOnly returns the count and no keys.
	CountOnly bool
	// KeysOnly returns the keys and their revisions and versions, read
	// from the index alone: no values, no leases.
	KeysOnly bool
}

// RangeResult is what a Range found.
type RangeResult struct {
	KVs []KeyValue
	// Count is the number of keys in the range at the revision, whatever
	// the limit.
	Count int
	// Rev is the store's revision when the range was read (not the
	// revision asked for), as in etcd.
	Rev int64
}

// checkRange validates a key and range end: end nil is key alone, an empty
// end or "\x00" (etcd's convention) is every key from key on, otherwise
// [key, end).
func checkRange(key, end []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if isToEnd(end) {
		return nil
	}
	if len(end) > 0 && bytes.Compare(end, key) < 0 {
		return ErrInvalidRange
	}
	return nil
}

// Range returns the keys in [key, end) at a revision: end nil means key
// alone, an empty non-nil end every key from key on (Prefix gives the end
// of a prefix). It reads the durable state, in a read transaction of the
// engine, so it never waits for a commit.
func (s *Store) Range(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	if err := checkRange(key, end); err != nil {
		return nil, err
	}
	// The current revision is read before the engine snapshot is taken,
	// so that every revision up to it is in the snapshot (the other order
	// could miss a commit made between them). The snapshot is taken before
	// the compaction check: a compaction that deletes revisions this range
	// needs has raised the compacted revision before its first deletion
	// commits.
	//
	// A read of the latest revision can find it compacted when a
	// compaction to a later revision ran since cur was read. It reads
	// again at a fresh one, once the compaction's revision is committed:
	// a replicated store compacts its index as it applies (CompactIn),
	// which may be before the transaction holding that revision commits.
	for attempt := 0; ; attempt++ {
		res, err := s.rangeAt(key, end, ro)
		if ro.Rev > 0 || attempt == 8 || !errors.Is(err, ErrCompacted) || !s.waitCompactionCommitted() {
			return res, err
		}
	}
}

// publishCommitted makes top the committed revision and wakes the readers
// waiting for it.
func (s *Store) publishCommitted(top int64) {
	s.committed.Store(top)
	s.commitMu.Lock()
	if s.commitc != nil {
		close(s.commitc)
		s.commitc = nil
	}
	s.commitMu.Unlock()
}

// waitCompactionCommitted waits until the committed revision reaches the
// index's compaction, for at most a second, and reports whether it did (a
// transaction that never commits: the store failed or closed, and the
// read's error stands).
func (s *Store) waitCompactionCommitted() bool {
	s.index.mu.RLock()
	rev := s.index.compacted
	s.index.mu.RUnlock()
	deadline := time.Now().Add(time.Second)
	for s.committed.Load() < rev {
		s.commitMu.Lock()
		if s.commitc == nil {
			s.commitc = make(chan struct{})
		}
		c := s.commitc
		s.commitMu.Unlock()
		if s.committed.Load() >= rev { // published before c was made
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		t := time.NewTimer(left)
		select {
		case <-c:
		case <-t.C:
		}
		t.Stop()
	}
	return true
}

// readAtHook, if set by a test, runs in reads after they take the
// current revision.
var readAtHook func()

func (s *Store) rangeAt(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	cur := s.committed.Load()
	if readAtHook != nil {
		readAtHook()
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	r := &reader{revs: tx.Bucket(revBucket)}
	res, err := s.rangeKeys(r, key, end, ro, cur)
	if err == nil {
		err = tx.Err()
	}
	return res, err
}

// reader fetches revision records, from the engine or, inside a write,
// from the revisions not yet durable.
type reader struct {
	revs        *quiver.Bucket
	uncommitted map[Revision][]byte
	buf         [revKeyLen]byte
}

func (r *reader) record(rev Revision) ([]byte, bool) {
	if v, ok := r.uncommitted[rev]; ok {
		return v, true
	}
	v := r.revs.Get(putRevKey(r.buf[:], rev))
	return v, v != nil
}

// rangeKeys reads [key, end) at ro.Rev as seen at revision cur.
func (s *Store) rangeKeys(r *reader, key, end []byte, ro RangeOptions, cur int64) (*RangeResult, error) {
	rev := ro.Rev
	if rev <= 0 {
		rev = cur
	}
	res := &RangeResult{Rev: cur}
	type hit struct {
		key []byte
		st  keyState
	}
	var hits []hit
	s.index.mu.RLock()
	if err := s.checkRevLocked(ro.Rev, cur); err != nil {
		s.index.mu.RUnlock()
		return nil, err
	}
	s.index.visit(key, end, rev, func(k []byte, st keyState) bool {
		res.Count++
		if !ro.CountOnly && (ro.Limit <= 0 || int64(len(hits)) < ro.Limit) {
			hits = append(hits, hit{bytes.Clone(k), st})
		}
		return true
	})
	s.index.mu.RUnlock()
	if ro.CountOnly {
		return res, nil
	}
	res.KVs = make([]KeyValue, len(hits))
	for i, h := range hits {
		out := &res.KVs[i]
		*out = KeyValue{Key: h.key, CreateRevision: h.st.created, ModRevision: h.st.mod.Main, Version: h.st.version}
		if ro.KeysOnly {
			continue // from the index alone, as etcd's: no value, no lease
		}
		v, ok := r.record(h.st.mod)
		if !ok {
			return nil, fmt.Errorf("mvcc: revision %v of key %q is missing from the store: %w", h.st.mod, h.key, quiver.ErrCorrupt)
		}
		kv, _, err := decodeRecord(v, h.st.mod)
		if err != nil {
			return nil, err
		}
		out.Lease, out.Value = kv.Lease, bytes.Clone(nonNil(kv.Value))
	}
	return res, nil
}

// checkRev checks that revision rev (0: cur) can be read at cur.
func (s *Store) checkRev(rev, cur int64) error {
	s.index.mu.RLock()
	defer s.index.mu.RUnlock()
	return s.checkRevLocked(rev, cur)
}

func (s *Store) checkRevLocked(rev, cur int64) error {
	if rev > cur {
		return fmt.Errorf("%w: %d (current %d)", ErrFutureRev, rev, cur)
	}
	if rev <= 0 {
		rev = cur
	}
	if rev < s.index.compacted {
		return fmt.Errorf("%w: %d (compacted at %d)", ErrCompacted, rev, s.index.compacted)
	}
	return nil
}

func isToEnd(end []byte) bool { return end != nil && (len(end) == 0 || len(end) == 1 && end[0] == 0) }

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Prefix returns the range end that, with key, covers every key that
// starts with key.
func Prefix(key []byte) []byte {
	end := bytes.Clone(key)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{} // all 0xff: every key from key on
}

// Put sets key to value with a lease (0: none) and returns the revision
// of the change, once durable.
func (s *Store) Put(key, value []byte, lease int64) (int64, error) {
	res, err := s.Txn(&Txn{Then: []Op{OpPut(key, value, lease)}})
	if err != nil {
		return 0, err
	}
	return res.Rev, nil
}

// DeleteRange deletes the keys in [key, end) (see Range for end) and
// returns how many there were and the revision of the change; when there
// were none, nothing changes and the revision is the current one.
func (s *Store) DeleteRange(key, end []byte) (deleted, rev int64, err error) {
	res, err := s.Txn(&Txn{Then: []Op{OpDelete(key, end)}})
	if err != nil {
		return 0, 0, err
	}
	return res.Results[0].Deleted, res.Rev, nil
}
