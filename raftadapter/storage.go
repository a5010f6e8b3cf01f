package raftadapter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/quiverdb/quiver"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The adapter's bucket and keys. The state machine owns every other
// top-level bucket of the file.
var (
	bucketName   = []byte("raftadapter")
	logBucket    = []byte("log") // nested: 8-byte big-endian index -> entry
	hardStateKey = []byte("hardstate")
	confStateKey = []byte("confstate")
	snapshotKey  = []byte("snapshot") // SnapshotMetadata: the log starts after it
	appliedKey   = []byte("applied")  // 8-byte big-endian: the last entry applied to the state machine
)

// entryVersion is the first byte of a stored entry.
const entryVersion = 1

// DefaultCacheBytes is the default bound of the entries Storage keeps in
// memory.
const DefaultCacheBytes = 16 << 20

// StorageOptions configure OpenStorage. The zero value is usable.
type StorageOptions struct {
	// CacheBytes bounds the bytes of the newest entries kept in memory
	// (default DefaultCacheBytes). Entries outside the cache are read from
	// the file. At least the newest entry is kept, whatever its size.
	CacheBytes int
}

// Storage is raft.Storage on a quiver database. Its reads (the methods of
// raft.Storage) are safe for concurrent use; changes go through a Writer.
type Storage struct {
	db     *quiver.DB
	budget int

	mu    sync.Mutex
	state logState
	// cache holds the entries [cacheFirst, state.last] of the committed
	// log, at most budget bytes of them (cacheBytes).
	cache      []*pb.Entry
	cacheFirst uint64
	cacheBytes int
	published  uint64 // the txid of the last commit published
	// engine is the state in the database as of commit published (state
	// without what was staged since): a Writer of the next commit starts
	// from it instead of reading it. Entries after engine.last were staged
	// (durable in the node's write-ahead file, not yet in the database):
	// the cache holds them all, whatever its budget.
	engine logState
}

// logState is the committed state of the log and of raft's persistent
// state, as published to raft's reads.
type logState struct {
	snap  *pb.SnapshotMetadata // never nil; index 0 before any snapshot or compaction
	first uint64               // snap.Index + 1
	last  uint64               // snap.Index when the log is empty
	hard  *pb.HardState        // nil before the first Save of one
	conf  *pb.ConfState        // never nil
	// applied is the index of the last entry applied to the state
	// machine, written in the same transaction as the entry's changes; it
	// is at least snap.Index.
	applied uint64
}

var _ raft.Storage = (*Storage)(nil)

// corruptf reports damage in the stored raft state: it matches
// quiver.ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("raftadapter: %s: %w", fmt.Sprintf(format, args...), quiver.ErrCorrupt)
}

// OpenStorage opens the raft state stored in db, creating its bucket on
// first use.
func OpenStorage(db *quiver.DB, opts *StorageOptions) (*Storage, error) {
	s := &Storage{db: db, budget: DefaultCacheBytes}
	if opts != nil && opts.CacheBytes > 0 {
		s.budget = opts.CacheBytes
	}
	if !db.IsReadOnly() {
		if err := db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketName)
			if err != nil {
				return err
			}
			_, err = b.CreateBucketIfNotExists(logBucket)
			return err
		}); err != nil {
			return nil, err
		}
	}
	err := db.View(func(tx *quiver.Tx) error {
		st, err := loadState(tx)
		s.state, s.engine, s.published = st, st, uint64(tx.ID())
		return err
	})
	if err != nil {
		return nil, err
	}
	// raft refuses, with a panic, a commit index outside the log it has.
	st := s.state
	if hs := st.hard; hs != nil && hs.GetCommit() != 0 && (hs.GetCommit() > st.last || hs.GetCommit() < st.snap.GetIndex()) {
		return nil, corruptf("HardState commit %d is outside the log [%d, %d]", hs.GetCommit(), st.snap.GetIndex(), st.last)
	}
	return s, nil
}

// loadState reads the committed raft state from tx.
func loadState(tx *quiver.Tx) (logState, error) {
	st := logState{snap: &pb.SnapshotMetadata{ConfState: &pb.ConfState{}}, conf: &pb.ConfState{}}
	b := tx.Bucket(bucketName)
	if b == nil {
		return st, corruptf("bucket %q is missing", bucketName)
	}
	if v := b.Get(hardStateKey); v != nil {
		hs := &pb.HardState{}
		if err := proto.Unmarshal(v, hs); err != nil {
			return st, corruptf("HardState does not decode: %v", err)
		}
		st.hard = hs
	}
	if v := b.Get(confStateKey); v != nil {
		if err := proto.Unmarshal(v, st.conf); err != nil {
			return st, corruptf("ConfState does not decode: %v", err)
		}
	}
	if v := b.Get(snapshotKey); v != nil {
		m := &pb.SnapshotMetadata{}
		if err := proto.Unmarshal(v, m); err != nil {
			return st, corruptf("snapshot metadata does not decode: %v", err)
		}
		st.snap = pb.EnsureSnapshotMetadata(m)
	}
	if v := b.Get(appliedKey); v != nil {
		if len(v) != 8 {
			return st, corruptf("the applied index is %d bytes, not 8", len(v))
		}
		st.applied = binary.BigEndian.Uint64(v)
	}
	st.applied = max(st.applied, st.snap.GetIndex())
	st.first = st.snap.GetIndex() + 1
	st.last = st.snap.GetIndex()
	lb := b.Bucket(logBucket)
	if lb == nil {
		return st, corruptf("bucket %q/%q is missing", bucketName, logBucket)
	}
	c := lb.Cursor()
	if k, _ := c.First(); k != nil {
		i, err := indexOf(k)
		if err != nil {
			return st, err
		}
		if i != st.first {
			return st, corruptf("the log starts at entry %d, after snapshot %d", i, st.snap.GetIndex())
		}
		k, _ = c.Last()
		if st.last, err = indexOf(k); err != nil {
			return st, err
		}
	}
	return st, nil
}

func indexKey(i uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, i)
	return k
}

func indexOf(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, corruptf("log key %x is not an 8-byte index", k)
	}
	return binary.BigEndian.Uint64(k), nil
}

// encodeEntry is the stored form of e: a version byte, the term and the
// type as uvarints, then the data. The index is the key.
func encodeEntry(e *pb.Entry) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(e.GetData()))
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, e.GetTerm())
	b = binary.AppendUvarint(b, uint64(e.GetType()))
	return append(b, e.GetData()...)
}

// decodeEntry decodes the stored entry v of index i. The data is copied:
// v lives in the mapping only as long as its transaction.
func decodeEntry(i uint64, v []byte) (*pb.Entry, error) {
	if len(v) < 3 || v[0] != entryVersion {
		return nil, corruptf("log entry %d: %d bytes, version %v", i, len(v), v[:min(len(v), 1)])
	}
	term, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return nil, corruptf("log entry %d: the term does not decode", i)
	}
	typ, m := binary.Uvarint(v[1+n:])
	if m <= 0 || typ > uint64(pb.EntryType_EntryConfChangeV2) {
		return nil, corruptf("log entry %d: bad entry type", i)
	}
	t := pb.EntryType(typ)
	e := &pb.Entry{Index: new(i), Term: new(term), Type: &t}
	if data := v[1+n+m:]; len(data) > 0 {
		e.Data = append([]byte(nil), data...)
	}
	return e, nil
}

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hs *pb.HardState
	if s.state.hard != nil {
		hs = proto.Clone(s.state.hard).(*pb.HardState)
	}
	return hs, proto.Clone(s.state.conf).(*pb.ConfState), nil
}

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.first, nil
}

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.last, nil
}

// Snapshot implements raft.Storage. The state itself is the database, so
// a snapshot can be taken at any applied index: this returns the metadata
// of the state as applied now (the index, its term and the configuration
// as of it), or of the snapshot the log starts after if nothing was
// applied since. Its data is not in the message: the node streams the
// database from a read transaction beside it (Transport.SendSnapshot),
// and the metadata sent is the one that transaction holds.
func (s *Storage) Snapshot() (*pb.Snapshot, error) {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if st.applied <= st.snap.GetIndex() {
		return &pb.Snapshot{Metadata: proto.Clone(st.snap).(*pb.SnapshotMetadata)}, nil
	}
	term, err := s.Term(st.applied)
	if errors.Is(err, raft.ErrCompacted) {
		// A compaction published meanwhile: its snapshot is newer.
		return s.Snapshot()
	}
	if err != nil {
		// raft panics on any other error here. The node's stream reads
		// the same state again and reports damage itself.
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index:     new(st.applied),
		Term:      new(term),
		ConfState: proto.Clone(st.conf).(*pb.ConfState),
	}}, nil
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	st := s.state
	if i+1 < st.first {
		s.mu.Unlock()
		return 0, raft.ErrCompacted
	}
	if i+1 == st.first {
		s.mu.Unlock()
		return st.snap.GetTerm(), nil
	}
	if i > st.last {
		s.mu.Unlock()
		return 0, raft.ErrUnavailable
	}
	if i >= s.cacheFirst && len(s.cache) > 0 {
		t := s.cache[i-s.cacheFirst].GetTerm()
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	ents, err := s.read(i, i+1, math.MaxUint64)
	if err != nil {
		return 0, err
	}
	return ents[0].GetTerm(), nil
}

// Entries implements raft.Storage.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	st := s.state
	switch {
	case lo < st.first:
		s.mu.Unlock()
		return nil, raft.ErrCompacted
	case hi > st.last+1 || lo >= hi:
		s.mu.Unlock()
		return nil, raft.ErrUnavailable
	}
	if len(s.cache) > 0 && lo >= s.cacheFirst {
		ents := limitSize(s.cache[lo-s.cacheFirst:hi-s.cacheFirst], maxSize)
		s.mu.Unlock()
		return ents[:len(ents):len(ents)], nil
	}
	// The older ones from the file, then the cache's (staged entries are
	// only there).
	cut := hi
	var tail []*pb.Entry
	if len(s.cache) > 0 && hi > s.cacheFirst {
		cut, tail = s.cacheFirst, s.cache[:hi-s.cacheFirst]
	}
	s.mu.Unlock()
	ents, err := s.read(lo, cut, maxSize)
	if err != nil || uint64(len(ents)) < cut-lo {
		return ents, err
	}
	size := uint64(0)
	for _, e := range ents {
		size += uint64(proto.Size(e))
	}
	for _, e := range tail {
		if size += uint64(proto.Size(e)); size > maxSize {
			break
		}
		ents = append(ents, e)
	}
	return ents, nil
}

// read reads entries [lo, hi) from the file, at most maxSize bytes of them
// (at least one).
func (s *Storage) read(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	var ents []*pb.Entry
	err := s.db.View(func(tx *quiver.Tx) error {
		lb := tx.Bucket(bucketName).Bucket(logBucket)
		c := lb.Cursor()
		var size uint64
		next := lo
		for k, v := c.Seek(indexKey(lo)); next < hi; k, v = c.Next() {
			if k == nil {
				return corruptf("log entry %d is missing (the log ends before it)", next)
			}
			i, err := indexOf(k)
			if err != nil {
				return err
			}
			if i != next {
				return corruptf("log entry %d is missing (found %d)", next, i)
			}
			e, err := decodeEntry(i, v)
			if err != nil {
				return err
			}
			size += uint64(proto.Size(e))
			if len(ents) > 0 && size > maxSize {
				break
			}
			ents = append(ents, e)
			next++
		}
		return nil
	})
	if err != nil {
		// A compaction may have removed entries while we read: tell raft.
		s.mu.Lock()
		first := s.state.first
		s.mu.Unlock()
		if lo < first {
			return nil, raft.ErrCompacted
		}
		return nil, err
	}
	return ents, nil
}

// limitSize returns the longest prefix of ents of at most maxSize bytes
// (proto size), and at least one entry, as raft's own storage does.
func limitSize(ents []*pb.Entry, maxSize uint64) []*pb.Entry {
	if len(ents) == 0 {
		return ents
	}
	size := uint64(proto.Size(ents[0]))
	for n := 1; n < len(ents); n++ {
		size += uint64(proto.Size(ents[n]))
		if size > maxSize {
			return ents[:n]
		}
	}
	return ents
}

// CacheBytes returns the bytes of entries held in memory.
func (s *Storage) CacheBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cacheBytes
}

// Writer changes the raft state inside one write transaction of the
// database; the changes reach raft's reads when it commits.
type Writer struct {
	s     *Storage
	tx    *quiver.Tx
	b, lb *quiver.Bucket
	state logState    // as the transaction leaves it
	added []*pb.Entry // entries appended in the transaction, in order
	cut   uint64      // the cache is cut at this index (state.last+1 if not)
	reset bool        // the log was replaced by a snapshot: drop the cache
}

// ErrNotWritable is returned by Storage.Writer for a read-only
// transaction.
var ErrNotWritable = errors.New("raftadapter: the transaction is not writable")

// Writer returns the writer of tx, a write transaction of the storage's
// database. Use one Writer per transaction.
func (s *Storage) Writer(tx *quiver.Tx) (*Writer, error) {
	if !tx.Writable() {
		return nil, ErrNotWritable
	}
	b := tx.Bucket(bucketName)
	if b == nil {
		return nil, corruptf("bucket %q is missing", bucketName)
	}
	lb := b.Bucket(logBucket)
	if lb == nil {
		return nil, corruptf("bucket %q/%q is missing", bucketName, logBucket)
	}
	// The state as this transaction sees it: the one published if the
	// commit before was the last published, else read (a commit may not
	// have published yet: commit handlers run after the writer lock is
	// released; or another wrote the database).
	s.mu.Lock()
	st, known := s.engine, s.published == uint64(tx.ID())-1
	s.mu.Unlock()
	if !known {
		var err error
		if st, err = loadState(tx); err != nil {
			return nil, err
		}
	}
	w := &Writer{s: s, tx: tx, b: b, lb: lb, state: st}
	w.cut = w.state.last + 1
	tx.OnCommit(w.publish)
	return w, nil
}

// SetHardState stores hs (an empty one is ignored, as raft sends it when
// nothing changed).
func (w *Writer) SetHardState(hs *pb.HardState) error {
	if raft.IsEmptyHardState(hs) {
		return nil
	}
	v, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	if err := w.b.Put(hardStateKey, v); err != nil {
		return err
	}
	w.state.hard = proto.Clone(hs).(*pb.HardState)
	return nil
}

// SetConfState stores the configuration raft applied last.
func (w *Writer) SetConfState(cs *pb.ConfState) error {
	v, err := proto.Marshal(cs)
	if err != nil {
		return err
	}
	if err := w.b.Put(confStateKey, v); err != nil {
		return err
	}
	w.state.conf = proto.Clone(cs).(*pb.ConfState)
	return nil
}

// Append stores ents, consecutive entries from raft's Ready. Entries
// already in the log from ents[0]'s index on are replaced (raft truncates
// a conflicting suffix); entries below the first index are skipped.
func (w *Writer) Append(ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	for k := 1; k < len(ents); k++ {
		if ents[k].GetIndex() != ents[k-1].GetIndex()+1 {
			return fmt.Errorf("raftadapter: Append: entries %d and %d are not consecutive", ents[k-1].GetIndex(), ents[k].GetIndex())
		}
	}
	st := &w.state
	if last := ents[len(ents)-1].GetIndex(); last < st.first {
		return nil
	}
	if ents[0].GetIndex() < st.first {
		ents = ents[st.first-ents[0].GetIndex():]
	}
	from := ents[0].GetIndex()
	if from > st.last+1 {
		return fmt.Errorf("raftadapter: Append: entry %d leaves a gap after the last entry %d", from, st.last)
	}
	// Drop the conflicting suffix, in the file and in what this writer
	// added.
	for i := from; i <= st.last; i++ {
		if err := w.lb.Delete(indexKey(i)); err != nil {
			return err
		}
	}
	if from <= st.last {
		w.cut = min(w.cut, from)
		for len(w.added) > 0 && w.added[len(w.added)-1].GetIndex() >= from {
			w.added = w.added[:len(w.added)-1]
		}
	}
	for _, e := range ents {
		if err := w.lb.Put(indexKey(e.GetIndex()), encodeEntry(e)); err != nil {
			return err
		}
	}
	w.added = append(w.added, ents...)
	st.last = ents[len(ents)-1].GetIndex()
	return nil
}

// SetApplied records that the entries up to index are applied: call it in
// the transaction that applies them.
func (w *Writer) SetApplied(index uint64) error {
	if err := w.b.Put(appliedKey, binary.BigEndian.AppendUint64(nil, index)); err != nil {
		return err
	}
	w.state.applied = index
	return nil
}

// Applied returns the applied index as the transaction sees it.
func (w *Writer) Applied() uint64 { return w.state.applied }

// Compact discards the entries up to index, which must be in the log: the
// log then starts after it, and its term is kept for raft's matching.
// cs is the configuration as of index (nil: the stored one). Entries are
// only dropped from the file; the state they produced is in the database.
func (w *Writer) Compact(index uint64, cs *pb.ConfState) error {
	st := &w.state
	if index < st.first {
		return raft.ErrCompacted
	}
	if index > st.last {
		return fmt.Errorf("raftadapter: Compact: index %d is past the last entry %d", index, st.last)
	}
	term, err := w.term(index)
	if err != nil {
		return err
	}
	for i := st.first; i <= index; i++ {
		if err := w.lb.Delete(indexKey(i)); err != nil {
			return err
		}
	}
	if cs == nil {
		cs = st.conf
	}
	return w.setSnapshot(&pb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: proto.Clone(cs).(*pb.ConfState)}, st.last)
}

// Trim compacts the log down to a catch-up window: it keeps the newest
// entries whose stored bytes reach keep, and never drops an entry above
// upTo (the applied index: a snapshot is taken at it). It drops at most
// max entries, so that one transaction stays small, and reports whether
// more would go.
func (w *Writer) Trim(keep int64, upTo uint64, max int) (more bool, err error) {
	st := &w.state
	if st.last < st.first || max <= 0 {
		return false, nil
	}
	// Walk back from the newest entry until the window is full: the
	// entries below the one that fills it can go.
	var size int64
	c := w.lb.Cursor()
	to := uint64(0)
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		size += int64(len(k) + len(v))
		if size >= keep {
			i, err := indexOf(k)
			if err != nil {
				return false, err
			}
			to = i - 1
			break
		}
	}
	to = min(to, upTo)
	if to < st.first {
		return false, nil
	}
	if to-st.first >= uint64(max) {
		to, more = st.first+uint64(max)-1, true
	}
	return more, w.Compact(to, nil)
}

// ApplySnapshot records that the database now holds the state of snapshot
// meta (installed by the caller): the log is emptied and starts after the
// snapshot's index, as raft's MemoryStorage does, and the entries up to it
// count as applied. An older snapshot is
// refused with raft.ErrSnapOutOfDate.
func (w *Writer) ApplySnapshot(meta *pb.SnapshotMetadata) error {
	st := &w.state
	if meta.GetIndex() <= st.snap.GetIndex() && st.snap.GetIndex() != 0 {
		return raft.ErrSnapOutOfDate
	}
	for i := st.first; i <= st.last; i++ {
		if err := w.lb.Delete(indexKey(i)); err != nil {
			return err
		}
	}
	w.reset = true
	if err := w.SetConfState(pb.EnsureConfState(meta.ConfState)); err != nil {
		return err
	}
	if err := w.SetApplied(meta.GetIndex()); err != nil {
		return err
	}
	return w.setSnapshot(proto.Clone(meta).(*pb.SnapshotMetadata), meta.GetIndex())
}

func (w *Writer) setSnapshot(meta *pb.SnapshotMetadata, last uint64) error {
	v, err := proto.Marshal(meta)
	if err != nil {
		return err
	}
	if err := w.b.Put(snapshotKey, v); err != nil {
		return err
	}
	st := &w.state
	st.snap = pb.EnsureSnapshotMetadata(meta)
	st.first = meta.GetIndex() + 1
	st.last = last
	if w.reset {
		w.added = nil
	} else {
		for len(w.added) > 0 && w.added[0].GetIndex() < st.first {
			w.added = w.added[1:]
		}
	}
	return nil
}

// term returns the term of entry i as the transaction sees it.
func (w *Writer) term(i uint64) (uint64, error) {
	if i+1 == w.state.first {
		return w.state.snap.GetTerm(), nil
	}
	v := w.lb.Get(indexKey(i))
	if v == nil {
		return 0, corruptf("log entry %d is missing", i)
	}
	e, err := decodeEntry(i, v)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

// publish makes the transaction's changes visible to raft's reads, once
// it has committed, and keeps the cache a suffix of the log: entries the
// transaction replaced or compacted away leave it, the ones it appended
// join it, and the oldest leave it while it holds more than the budget.
func (w *Writer) publish() {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	txid := uint64(w.tx.ID())
	if txid <= s.published {
		return // a later commit published first: this state is older
	}
	// The cache is updated from the commit before this one; if another
	// commit came between (the database's own writes, or a Writer whose
	// publish is still to run), it starts again from this one's entries.
	consecutive := s.published == txid-1
	s.published = txid
	st := w.state
	s.state, s.engine = st, st
	if w.reset || !consecutive {
		s.cache, s.cacheBytes = nil, 0
	}
	// Cut what was replaced. The capacity is cut too, so that appending
	// copies rather than overwrite entries handed out by Entries.
	keepBelow := w.cut
	added := w.added
	if len(added) > 0 {
		keepBelow = min(keepBelow, added[0].GetIndex())
	}
	// The entries this commit appended after staging them (stage) are in
	// the cache already, the same ones: they stay, and only what follows
	// them joins.
	if n := len(s.cache); n > 0 && len(added) > 0 && keepBelow == added[0].GetIndex() && keepBelow >= s.cacheFirst {
		k := int(keepBelow - s.cacheFirst)
		same := 0
		for same < len(added) && k+same < n && s.cache[k+same] == added[same] {
			same++
		}
		if k+same == n {
			keepBelow, added = s.cacheFirst+uint64(n), added[same:]
		}
	}
	if n := len(s.cache); n > 0 && keepBelow < s.cacheFirst+uint64(n) {
		k := 0
		if keepBelow > s.cacheFirst {
			k = int(keepBelow - s.cacheFirst)
		}
		for _, e := range s.cache[k:] {
			s.cacheBytes -= proto.Size(e)
		}
		s.cache = s.cache[:k:k]
	}
	for _, e := range added {
		if len(s.cache) == 0 {
			s.cacheFirst = e.GetIndex()
		}
		s.cache = append(s.cache, e)
		s.cacheBytes += proto.Size(e)
	}
	if len(s.cache) > 0 && s.cacheFirst+uint64(len(s.cache))-1 != st.last {
		s.cache, s.cacheBytes = nil, 0 // not the newest entries: start again
	}
	drop := 0
	for drop < len(s.cache) && (s.cacheFirst+uint64(drop) < st.first || (drop < len(s.cache)-1 && s.cacheBytes > s.budget)) {
		s.cacheBytes -= proto.Size(s.cache[drop])
		drop++
	}
	s.cache = s.cache[drop:]
	s.cacheFirst += uint64(drop)
	if len(s.cache) == 0 {
		s.cache, s.cacheBytes = nil, 0
	}
}

// reload reads the state again from the database after its contents were
// replaced (a snapshot installed), and empties the cache.
func (s *Storage) reload() error {
	return s.db.View(func(tx *quiver.Tx) error {
		st, err := loadState(tx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.state, s.engine = st, st
		s.cache, s.cacheBytes, s.cacheFirst = nil, 0, 0
		s.published = uint64(tx.ID())
		return nil
	})
}

// stage publishes ents, consecutive entries made durable outside the
// database (the node's write-ahead file), and hs if not nil, to raft's
// reads before a commit writes them to the database: the cache holds
// them until then. Entries that would replace some the database holds
// are not staged: stage returns false, and they must be appended in a
// commit.
func (s *Storage) stage(ents []*pb.Entry, hs *pb.HardState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ents) > 0 {
		from := ents[0].GetIndex()
		if from <= s.engine.last || from > s.state.last+1 {
			return false
		}
		if n := len(s.cache); n > 0 && from < s.cacheFirst+uint64(n) {
			k := int(from - s.cacheFirst) // from > engine.last >= cacheFirst-1
			for _, e := range s.cache[k:] {
				s.cacheBytes -= proto.Size(e)
			}
			s.cache = s.cache[:k:k] // entries handed out stay as they were
		}
		if len(s.cache) == 0 {
			s.cacheFirst = from
		}
		for _, e := range ents {
			s.cache = append(s.cache, e)
			s.cacheBytes += proto.Size(e)
		}
		s.state.last = ents[len(ents)-1].GetIndex()
		drop := 0
		for drop < len(s.cache)-1 && s.cacheBytes > s.budget && s.cacheFirst+uint64(drop) <= s.engine.last {
			s.cacheBytes -= proto.Size(s.cache[drop])
			drop++
		}
		s.cache = s.cache[drop:]
		s.cacheFirst += uint64(drop)
	}
	if hs != nil {
		s.state.hard = proto.Clone(hs).(*pb.HardState)
	}
	return true
}
