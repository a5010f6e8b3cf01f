package quiver

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/mmap"
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// Tx, Bucket and Cursor are the transaction types, re-exported so that a
// program imports one package: func(tx *quiver.Tx) error.
type (
	Tx      = tx.Tx
	Bucket  = tx.Bucket
	Cursor  = tx.Cursor
	TxStats = tx.TxStats
	// BucketStructure is what Inspect returns.
	BucketStructure = tx.BucketStructure
	// PageInfo is what Tx.Page returns.
	PageInfo    = tx.PageInfo
	CheckOption = tx.CheckOption
	KVStringer  = tx.KVStringer
	BucketStats = tx.BucketStats
)

// RootBucket returns the transaction's root bucket, whose keys are the
// top-level buckets' names: for code that treats the top level as any
// bucket (a cursor's Bucket, bbolt's Tx.Cursor).
func RootBucket(t *Tx) *Bucket { return tx.Root(t) }

// WithKVStringer, WithPageId and HexKVStringer are Tx.Check's options, as
// in bbolt (see the tx package).
func WithKVStringer(kv KVStringer) CheckOption { return tx.WithKVStringer(kv) }
func WithPageId(id uint64) CheckOption         { return tx.WithPageId(id) }
func HexKVStringer() KVStringer                { return tx.HexKVStringer() }

// DB is an open quiver database. It is safe for concurrent use: any number
// of read transactions run alongside one write transaction.
type DB struct {
	// Options that may be changed after Open, as in bbolt.
	NoSync        bool
	NoGrowSync    bool
	MaxBatchSize  int
	MaxBatchDelay time.Duration
	AllocSize     int
	MaxSize       int

	logger   Logger
	path     string
	absPath  string // path made absolute at Open, for Compact
	pageSize int
	readOnly bool
	opts     Options
	closed   atomic.Bool

	// snap is the newest committed snapshot; readers pin it without locks.
	snap atomic.Pointer[snapshot]

	// writer is held by the open write transaction and by Close.
	writer sync.Mutex
	// fileMu guards the file's replacement by Compact for Sync, which does
	// not take the writer lock. Sync holds syncMu's read lock over its
	// fdatasync, outside fileMu (so that Compact's switch, writers blocked,
	// never waits for one); whoever closes a file takes syncMu first.
	fileMu sync.RWMutex
	syncMu sync.RWMutex
	// syncedTxid is the newest commit a DB.Sync has made durable.
	syncedTxid atomic.Uint64
	// Owned by the writer lock: the open file and its state, replaced
	// whole by Compact; the failure that stops commits; snapshots of
	// files replaced by Compact that may still have readers.
	fileState
	failed  error
	retired []*snapshot

	batchMu sync.Mutex
	batch   *batch

	compactMu sync.Mutex // one Compact at a time

	statsMu sync.Mutex
	// Read transaction counters: atomics, so that readers share no lock.
	txN, openTxN atomic.Int64
	stats        Stats   // under statsMu, but for TxStats
	txStats      TxStats // atomic: read transactions add their cursors
}

// fileState is what a DB knows about its open file beyond the committed
// snapshot. The writer lock owns it.
type fileState struct {
	file      File
	snaps     []*snapshot // snapshots that may still have readers
	freelist  *freelist.Tracker
	highWater page.Pgid // including the open writer's tail allocations
	fileSize  int64
	mapSize   int
	wbuf      []byte // commit scratch (WriteBuffer)
	// The freelist's persistence: records chained since the last
	// checkpoint (oldest first).
	chain           []chainEntry
	chainPages      int         // pages of the records in chain
	checkpointPages int         // pages of the last checkpoint
	tailFutile      bool        // the last early checkpoint landed above the tail it was to free
	plan            commitPlan  // the open commit's, from Reserve to Commit
	spansBuf        []page.Span // reused for a checkpoint's free set
	// metaSlot is the meta page holding the last durable commit: the next
	// commit writes the other. unsynced: the commits since durable skipped
	// their sync (Tx.DeferSync): each wrote its meta to the other slot,
	// over the one before, and durable is the last commit synced.
	metaSlot page.Pgid
	unsynced bool
	durable  page.Txid
	// carry lists what the unsynced commits wrote and their state still
	// uses (their pages and records): the next commit's record lists them
	// too, so that a crash that kept its meta but lost some of them makes
	// it fail verification.
	carry []page.Written
}

// maxCarry bounds the spans carried from commit to commit by a chain of
// unsynced ones: a commit that would carry more syncs instead, so that
// records stay small.
const maxCarry = 1024

// snapshot is one committed state and the mapping it is read through. refs
// counts its readers plus one while it is the current snapshot; a snapshot
// whose refs reached zero is never used again.
type snapshot struct {
	meta  page.Meta
	epoch *mmap.Epoch
	refs  mmap.Refs
}

// Meta and Data make a snapshot the tx.Snapshot its transactions read.
func (s *snapshot) Meta() *page.Meta { return &s.meta }
func (s *snapshot) Data() []byte     { return s.epoch.Data() }

func (s *snapshot) acquire() bool { return s.refs.Acquire() }

func (s *snapshot) release() {
	if s.refs.Release() {
		_ = s.epoch.Release()
	}
}

// Stats are database-wide counters.
type Stats struct {
	FreePageN     int // free pages ready for allocation
	PendingPageN  int // freed pages waiting for readers to finish
	FreeAlloc     int // bytes in free and pending pages
	FreelistInuse int // bytes of the freelist's persisted form (checkpoint and chained records)
	FreelistWrite int // bytes of freelist written (checkpoints and commit records) since open
	TxN           int // read transactions started
	OpenTxN       int // read transactions open
	TxStats       TxStats
}

// Sub returns the counters' growth from other to s (the work done between
// two readings); the gauges (free and pending pages, freelist size, open
// transactions) are s's. A nil other returns s.
func (s *Stats) Sub(other *Stats) Stats {
	if other == nil {
		return *s
	}
	d := *s
	d.FreelistWrite = s.FreelistWrite - other.FreelistWrite
	d.TxN = s.TxN - other.TxN
	d.TxStats = s.TxStats.Sub(&other.TxStats)
	return d
}

// Info describes the database's mapping, for low-level tools (bbolt's
// DB.Info).
type Info struct {
	Data     uintptr // address of the newest mapping's first byte
	PageSize int
}

// Info returns the address of the newest mapping and the page size. A
// commit that grows the file past the mapping maps it anew: the address
// holds for transactions begun before that, which keep their mapping.
// Info of a closed database is nil.
func (db *DB) Info() *Info {
	if db == nil || db.notOpen() {
		return nil
	}
	// Only the address is read: the mapping need not be pinned.
	info := &Info{PageSize: db.pageSize}
	if data := db.snap.Load().Data(); len(data) > 0 {
		info.Data = uintptr(unsafe.Pointer(&data[0]))
	}
	return info
}

// Path returns the path of the database file.
func (db *DB) Path() string { return db.path }

// IsReadOnly reports whether the database was opened read-only.
func (db *DB) IsReadOnly() bool { return db.readOnly }

// String names the database for logs.
func (db *DB) String() string { return fmt.Sprintf("DB<%q>", db.path) }

// Close waits for the open write transaction and every read transaction to
// end, then releases the mapping, the lock and the file.
func (db *DB) Close() error {
	if db.snap.Load() == nil { // a DB{} never opened
		return nil
	}
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	db.Logger().Debugf("closing %s", db.path)
	db.writer.Lock()
	defer db.writer.Unlock()
	// Wait for readers: the current snapshot keeps its own reference.
	for {
		busy := false
		cur := db.snap.Load()
		for _, s := range append(db.snaps, db.retired...) {
			n := s.refs.Load()
			if (s == cur && n > 1) || (s != cur && n > 0) {
				busy = true
			}
		}
		if !busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	db.snap.Load().release()
	db.snaps, db.retired = nil, nil
	var err error
	if !db.readOnly && db.failed == nil && !db.NoSync {
		err = db.file.Sync()
	}
	db.syncMu.Lock() // Sync may be using the file
	defer db.syncMu.Unlock()
	_ = mmap.Unlock(db.file.Fd())
	if cerr := db.file.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sync forces an fdatasync of the file: useful after commits made with
// NoSync, and it makes a commit that deferred its sync (Tx.DeferSync)
// durable.
func (db *DB) Sync() error {
	db.syncMu.RLock()
	defer db.syncMu.RUnlock()
	if db.notOpen() {
		return ErrDatabaseNotOpen
	}
	db.fileMu.RLock()
	f := db.file
	db.fileMu.RUnlock()
	// If Compact switches files meanwhile, syncing the old one is still
	// right: the new one was synced before the switch.
	cur := db.snap.Load().meta.Txid // its writes are done: it is published
	if err := f.Sync(); err != nil {
		return err
	}
	for {
		old := db.syncedTxid.Load()
		if uint64(cur) <= old || db.syncedTxid.CompareAndSwap(old, uint64(cur)) {
			return nil
		}
	}
}

// settleSync takes an unsynced commit as durable once a Sync covered it:
// its meta becomes the one the next commit must not overwrite. Writer lock
// held.
func (db *DB) settleSync() {
	if db.unsynced && db.syncedTxid.Load() >= uint64(db.snap.Load().meta.Txid) {
		db.metaSlot, db.unsynced, db.carry = 1-db.metaSlot, false, db.carry[:0]
	}
}

// syncUnsynced makes an unsynced commit durable now (before the database
// continues in another file: Compact's and Restore's copies). Writer lock
// held or no writer possible.
func (db *DB) syncUnsynced() error {
	if !db.unsynced {
		return nil
	}
	if err := db.file.Sync(); err != nil {
		return db.fail(err)
	}
	db.metaSlot, db.unsynced, db.carry = 1-db.metaSlot, false, db.carry[:0]
	return nil
}

// Stats returns database-wide counters.
func (db *DB) Stats() Stats {
	db.statsMu.Lock()
	s := db.stats
	db.statsMu.Unlock()
	s.TxStats.Add(&db.txStats)
	s.TxN = int(db.txN.Load())
	s.OpenTxN = int(db.openTxN.Load())
	return s
}

// notOpen reports whether the database was closed, or is a DB{} that Open
// did not return.
func (db *DB) notOpen() bool { return db.closed.Load() || db.snap.Load() == nil }

// Begin starts a transaction. Read transactions must be rolled back when
// done, or the pages they see are never reused; only one write transaction
// runs at a time, so Begin(true) waits for the current one to end.
func (db *DB) Begin(writable bool) (*Tx, error) {
	if writable {
		return db.beginRW()
	}
	return db.beginRO()
}

// beginRO starts a read transaction. Each gets a new Tx, never a pooled
// one: a *Tx, Bucket or Cursor kept after the transaction ended must not
// become another transaction's.
func (db *DB) beginRO() (*Tx, error) {
	if db.notOpen() {
		return nil, ErrDatabaseNotOpen
	}
	var s *snapshot
	for {
		s = db.snap.Load()
		if s.acquire() {
			break
		}
		// Only a snapshot replaced by a commit, or released by Close,
		// refuses: reload, unless the database is closing.
		if db.closed.Load() {
			return nil, ErrDatabaseNotOpen
		}
	}
	db.txN.Add(1)
	db.openTxN.Add(1)
	return tx.Begin((*backend)(db), s, false), nil
}

func (db *DB) beginRW() (*Tx, error) {
	if db.readOnly {
		return nil, ErrDatabaseReadOnly
	}
	if db.notOpen() {
		return nil, ErrDatabaseNotOpen
	}
	db.writer.Lock()
	if db.closed.Load() {
		db.writer.Unlock()
		return nil, ErrDatabaseNotOpen
	}
	if db.failed != nil {
		db.writer.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrFailed, db.failed)
	}
	db.settleSync()
	db.freelist.Release(db.readers())
	s := db.snap.Load()
	s.acquire() // the writer holds the lock: s is current and alive
	db.highWater = s.meta.HighWater
	return tx.Begin((*backend)(db), s, true), nil
}

// readers returns the sorted snapshot txids that may have readers, pruning
// dead snapshots. Writer lock held.
func (db *DB) readers() []page.Txid {
	cur := db.snap.Load()
	live := db.snaps[:0]
	var txids []page.Txid
	for _, s := range db.snaps {
		if s == cur || s.refs.Load() > 0 {
			live = append(live, s)
			if s != cur {
				txids = append(txids, s.meta.Txid)
			}
		}
	}
	for i := len(live); i < len(db.snaps); i++ {
		db.snaps[i] = nil
	}
	db.snaps = live
	retired := db.retired[:0]
	for _, s := range db.retired {
		if s.refs.Load() > 0 {
			retired = append(retired, s)
		}
	}
	clear(db.retired[len(retired):])
	db.retired = retired
	if db.unsynced {
		// The durable commit is what a crash brings back: the pages it
		// uses are not reused until a synced commit makes a newer one
		// durable.
		d := db.durable
		i := sort.Search(len(txids), func(i int) bool { return txids[i] >= d })
		txids = slices.Insert(txids, i, d)
	}
	return txids // ascending: snapshots are appended in commit order
}

// Update runs fn in a write transaction and commits it if fn returns nil,
// or rolls it back and returns fn's error. Commit and Rollback inside fn
// return ErrTxManaged.
func (db *DB) Update(fn func(*Tx) error) error {
	t, err := db.Begin(true)
	if err != nil {
		return err
	}
	return tx.Run(t, fn)
}

// View runs fn in a read transaction. Values fn reads are valid only until
// it returns. A corruption met while reading is returned if fn returns nil.
func (db *DB) View(fn func(*Tx) error) error {
	t, err := db.beginRO()
	if err != nil {
		return err
	}
	return tx.Run(t, fn)
}
