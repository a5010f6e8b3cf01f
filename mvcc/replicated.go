package mvcc

import (
	"errors"
	"fmt"

	"github.com/google/btree"
	"github.com/quiverdb/quiver"
)

// The replicated mode. A replica applies committed log entries in the
// engine transaction that also records its applied index (so that a
// restart applies each entry exactly once), instead of group-committing
// writes of its own: TxnIn runs a Txn inside that transaction, and Reload
// rebuilds the store's memory when the database's contents are replaced
// by a snapshot. Replicas that apply the same Txns in the same order hold
// the same revisions, and HashKV gives the same hash on each.
//
// A store used this way takes its writes from TxnIn only: a Put or Txn of
// its own would give it revisions the other replicas do not have. Reads
// and watches work as usual; they see a change once its transaction has
// committed.

// errTxnInRolledBack fails a store whose TxnIn changes did not commit.
var errTxnInRolledBack = errors.New("mvcc: a transaction given to TxnIn ended without committing its changes")

// TxnIn runs t inside tx, a write transaction of the store's database
// that the caller commits. Its revision follows the store's last one, as
// a Txn's would; its changes become visible to reads and watchers when tx
// commits. Several TxnIn calls may share one tx. If tx rolls back after
// changes, the store's memory is ahead of its file: the store then fails
// every write (ErrFailed) until it is reopened or reloaded. An error that
// matches ErrFailed is the engine's, and leaves the store failed; any other
// is t's own (an invalid range, a compacted revision) and changed nothing:
// every replica gives the same for the same entry.
func (s *Store) TxnIn(tx *quiver.Tx, t *Txn) (*TxnResult, error) {
	if !tx.Writable() {
		return nil, errors.New("mvcc: TxnIn needs a write transaction")
	}
	if err := checkTxn(t); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applyTx != nil && s.applyTx != tx {
		// The transaction of an earlier TxnIn never committed.
		s.failed = errTxnInRolledBack
	}
	if err := s.writable(); err != nil {
		return nil, err
	}
	if len(s.pending) > 0 {
		return nil, errors.New("mvcc: TxnIn while writes of the store's own are pending")
	}
	s.replicated = true
	revs := tx.Bucket(revBucket)
	if revs == nil {
		return nil, fmt.Errorf("mvcc: bucket %q is missing: %w", revBucket, quiver.ErrCorrupt)
	}
	res, _, err := s.apply(&reader{revs: revs, uncommitted: s.uncommitted}, t)
	writes := s.pending
	s.pending = nil
	for i := range writes {
		r, _ := revOfKey(writes[i].key[:])
		delete(s.uncommitted, r) // tx itself holds them now
		if perr := revs.Put(writes[i].key[:], writes[i].rec); perr != nil {
			s.failed = perr
			return nil, fmt.Errorf("%w: %w", ErrFailed, perr)
		}
	}
	if err != nil || len(writes) == 0 {
		return res, err
	}
	if s.applyTx == nil {
		s.applyTx = tx
		tx.OnCommit(s.txnInCommitted)
	}
	s.applyWrites = append(s.applyWrites, writes...)
	return res, nil
}

// txnInCommitted publishes the changes TxnIn made in a transaction that
// has committed.
func (s *Store) txnInCommitted() {
	s.mu.Lock()
	writes, top := s.applyWrites, s.rev
	s.applyTx, s.applyWrites = nil, nil
	s.publishCommitted(top)
	s.mu.Unlock()
	s.hub.notify(writes, top)
}

// Reload rebuilds the store's memory (its index, revision and compaction
// state) from its database, whose contents were replaced: a replica that
// installed its leader's snapshot (DB.Restore). Watchers catch up from the
// new contents, and those behind its compaction get the compacted
// response. Reads between the switch of the file and Reload may see the
// new contents with the old index.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.pending) > 0 || s.inflightBusy() {
		return errors.New("mvcc: Reload while writes of the store's own are pending")
	}
	s.compactor.stop()
	s.index.mu.Lock()
	s.index.tree, s.index.compacted = btree.NewG(16, blockLess), -1
	s.index.mu.Unlock()
	s.applyTx, s.applyWrites = nil, nil
	s.uncommitted = map[Revision][]byte{}
	scheduled, finished, err := s.restore()
	if err != nil {
		// The compactor runs again (so that Close works), with nothing to
		// do; the store refuses writes.
		s.failed = fmt.Errorf("mvcc: Reload: %w", err)
		s.compactor.init(s, -1, -1)
		return s.failed
	}
	s.failed = nil
	s.publishCommitted(s.rev)
	s.compactor.init(s, scheduled, finished)
	s.hub.resync(s.rev)
	return nil
}

// inflightBusy reports whether the committer is writing a batch. s.mu held.
func (s *Store) inflightBusy() bool {
	if s.inflight == nil {
		return false
	}
	select {
	case <-s.inflight.done:
		return false
	default:
		return true
	}
}

// resync makes every watcher catch up from the store's contents from its
// next revision, after the contents were replaced, and sets the revision
// notified to rev.
func (h *hub) resync(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = rev
	for ws := range h.streams {
		for _, w := range ws.ws {
			w.synced = false
			h.unsynced[w] = struct{}{}
		}
	}
	h.poke()
}

// CompactIn compacts the store at revision rev inside tx, a write
// transaction the caller commits (the replicated mode): the compaction is
// recorded in tx and the index compacted at once, so that later TxnIn
// calls see it; the deletion of the old revisions starts when tx commits,
// in the background as Compact's. The returned channel is closed when that
// deletion is done (or the store closed). Its errors are Compact's:
// ErrCompacted at or below the last compaction, ErrFutureRev above the
// store's revision; like TxnIn's, they are the same on every replica.
func (s *Store) CompactIn(tx *quiver.Tx, rev int64) (<-chan struct{}, error) {
	if !tx.Writable() {
		return nil, errors.New("mvcc: CompactIn needs a write transaction")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applyTx != nil && s.applyTx != tx {
		s.failed = errTxnInRolledBack
	}
	if err := s.writable(); err != nil {
		return nil, err
	}
	s.index.mu.RLock()
	compacted := s.index.compacted
	s.index.mu.RUnlock()
	switch {
	case rev <= compacted:
		return nil, fmt.Errorf("%w: %d (compacted at %d)", ErrCompacted, rev, compacted)
	case rev > s.rev:
		return nil, fmt.Errorf("%w: %d (current %d)", ErrFutureRev, rev, s.rev)
	}
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		return nil, fmt.Errorf("mvcc: bucket %q is missing: %w", metaBucket, quiver.ErrCorrupt)
	}
	if err := putInt(meta, metaScheduled, rev); err != nil {
		s.failed = err
		return nil, fmt.Errorf("%w: %w", ErrFailed, err)
	}
	s.replicated = true
	s.index.mu.Lock()
	s.index.compacted = rev
	s.index.mu.Unlock()
	s.index.compact(rev)
	if s.applyTx == nil {
		s.applyTx = tx
		tx.OnCommit(s.txnInCommitted)
	}
	done := make(chan struct{})
	tx.OnCommit(func() {
		ch := s.compactor.schedule(compacted, rev)
		go func() {
			<-ch
			close(done)
		}()
	})
	return done, nil
}
