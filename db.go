package quiver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/freelist/array"
	"github.com/quiverdb/quiver/freelist/hashmap"
	"github.com/quiverdb/quiver/internal/testhook"
	"github.com/quiverdb/quiver/mmap"
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// Tx, Bucket and Cursor are the transaction types, re-exported so that a
// program imports one package: func(tx *quiver.Tx) error.
type (
	Tx          = tx.Tx
	Bucket      = tx.Bucket
	Cursor      = tx.Cursor
	TxStats     = tx.TxStats
	CheckOption = tx.CheckOption
	BucketStats = tx.BucketStats
)

// DB is an open quiver database. It is safe for concurrent use: any number
// of read transactions run alongside one write transaction.
type DB struct {
	// Options that may be changed after Open, as in bbolt.
	NoSync        bool
	NoGrowSync    bool
	MaxBatchSize  int
	MaxBatchDelay time.Duration
	AllocSize     int

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
	stats        Stats
}

// fileState is what a DB knows about its open file beyond the committed
// snapshot. The writer lock owns it.
type fileState struct {
	file      File
	snaps     []*snapshot // snapshots that may still have readers
	freelist  *freelist.Freelist
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
}

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

// Open opens the database at path, creating it with mode if it does not
// exist. opts may be nil.
func Open(path string, mode os.FileMode, opts *Options) (*DB, error) {
	if opts == nil {
		opts = DefaultOptions
	}
	o := *opts
	if o.PageSize == 0 {
		o.PageSize = page.DefaultPageSize
	}
	if !page.ValidPageSize(o.PageSize) {
		return nil, fmt.Errorf("quiver: invalid page size %d (a power of two from %d to %d)", o.PageSize, page.MinPageSize, page.MaxPageSize)
	}
	if o.AllocSize <= 0 {
		o.AllocSize = DefaultAllocSize
	}
	if o.MaxBatchSize <= 0 {
		o.MaxBatchSize = DefaultMaxBatchSize
	}
	if o.MaxBatchDelay <= 0 {
		o.MaxBatchDelay = DefaultMaxBatchDelay
	}
	if o.OpenFile == nil {
		o.OpenFile = OpenOSFile
	}
	switch o.FreelistType {
	case "":
		o.FreelistType = FreelistHashmap
	case FreelistArray, FreelistHashmap:
	default:
		return nil, fmt.Errorf("quiver: unknown freelist type %q", o.FreelistType)
	}
	db := &DB{
		NoSync: o.NoSync, NoGrowSync: o.NoGrowSync, MaxBatchSize: o.MaxBatchSize,
		MaxBatchDelay: o.MaxBatchDelay, AllocSize: o.AllocSize,
		path: path, readOnly: o.ReadOnly, opts: o,
	}
	var err error
	if db.absPath, err = filepath.Abs(path); err != nil {
		return nil, err
	}
	f, err := openLocked(path, mode, &o)
	if err != nil {
		return nil, err
	}
	db.file = f
	if err := db.open(); err != nil {
		_ = mmap.Unlock(f.Fd())
		f.Close()
		return nil, err
	}
	return db, nil
}

// openLocked opens the file at path and locks it. While it waits for the
// lock, the file at path may be replaced (DB.Compact renames a new file over
// it, then unlocks the old one): the lock must be on the file that path
// names once it is held, so it opens again when it is not.
func openLocked(path string, mode os.FileMode, o *Options) (File, error) {
	flag := os.O_RDWR | os.O_CREATE
	if o.ReadOnly {
		flag = os.O_RDONLY
	}
	// The attempts share one deadline: Timeout bounds the whole wait.
	deadline := time.Now().Add(o.Timeout)
	for attempt := 0; ; attempt++ {
		f, err := o.OpenFile(path, flag, mode)
		if err != nil {
			return nil, err
		}
		if testhook.Open != nil {
			testhook.Open(path, attempt)
		}
		timeout := o.Timeout
		if timeout > 0 {
			// At least one try, even when the deadline has passed.
			timeout = max(time.Until(deadline), time.Nanosecond)
		}
		if err := mmap.Lock(f.Fd(), !o.ReadOnly, timeout); err != nil {
			f.Close()
			return nil, err
		}
		same, err := mmap.IsPath(f.Fd(), path)
		if err == nil && same {
			return f, nil
		}
		_ = mmap.Unlock(f.Fd())
		f.Close()
		if err != nil {
			return nil, err
		}
		if attempt == 10 {
			return nil, fmt.Errorf("quiver: %s was replaced each time it was locked", path)
		}
	}
}

func (db *DB) open() error {
	size, err := db.file.Size()
	if err != nil {
		return err
	}
	if size == 0 {
		if db.readOnly {
			return fmt.Errorf("%w: empty file opened read-only", ErrInvalid)
		}
		if err := db.init(); err != nil {
			return err
		}
		// The new file's directory entry must be durable before a commit
		// in it is acknowledged: a power cut could otherwise take the
		// file away with them.
		if err := syncDirOf(db.file, db.path); err != nil {
			return fmt.Errorf("quiver: syncing the directory of the new file: %w", err)
		}
		if size, err = db.file.Size(); err != nil {
			return err
		}
	}
	db.fileSize = size
	meta, err := db.readMeta(size)
	if err != nil {
		return err
	}
	db.pageSize = int(meta.PageSize)
	epoch, mapSize, err := db.mapFile(meta.HighWater)
	if err != nil {
		return err
	}
	db.mapSize = mapSize
	s := &snapshot{meta: *meta, epoch: epoch}
	s.refs.Set(1)
	db.snap.Store(s)
	db.snaps = append(db.snaps, s)
	db.highWater = meta.HighWater
	if !db.readOnly {
		if err := db.loadFreelist(meta, s.epoch.Data()); err != nil {
			s.release()
			return err
		}
		db.stats.FreePageN = db.freelist.FreeCount()
		db.stats.FreeAlloc = db.stats.FreePageN * db.pageSize
		db.stats.FreelistInuse = db.freelistBytes()
	}
	return nil
}

// init writes a new, empty database: two metas, an empty freelist
// checkpoint.
func (db *DB) init() error {
	ps := db.opts.PageSize
	buf := make([]byte, 3*ps)
	page.PutFreelist(buf[2*ps:], 2, 0, ps, func(func(page.Pgid, uint64)) {})
	for slot := 0; slot < 2; slot++ {
		m := &page.Meta{PageSize: uint32(ps), Freelist: 2, HighWater: 3, Txid: page.Txid(slot)}
		page.PutMeta(buf[slot*ps:], page.Pgid(slot), m)
	}
	if _, err := db.file.WriteAt(buf, 0); err != nil {
		return err
	}
	return db.file.Sync()
}

// readMeta picks the meta to open: the newest valid one whose commit record
// verifies, else the other.
func (db *DB) readMeta(size int64) (*page.Meta, error) {
	if size < 2*page.MinPageSize {
		return nil, fmt.Errorf("%w: file is %d bytes", ErrInvalid, size)
	}
	buf := make([]byte, page.MetaEnd)
	read := func(off int64, id page.Pgid) (*page.Meta, error) {
		if off+page.MetaEnd > size {
			return nil, fmt.Errorf("%w: file too short for meta %d", ErrInvalid, id)
		}
		if _, err := db.file.ReadAt(buf, off); err != nil {
			return nil, err
		}
		return page.DecodeMeta(buf, id)
	}
	m0, err0 := read(0, 0)
	var m1 *page.Meta
	var err1 error
	if m0 != nil {
		m1, err1 = read(int64(m0.PageSize), 1)
	} else {
		// Meta 0 is damaged: find meta 1 by trying each page size.
		err1 = err0
		for ps := page.MinPageSize; ps <= page.MaxPageSize; ps *= 2 {
			if m, err := read(int64(ps), 1); err == nil && int(m.PageSize) == ps {
				m1, err1 = m, nil
				break
			}
		}
	}
	if m0 != nil && m1 != nil && m0.PageSize != m1.PageSize {
		return nil, page.Corruptf(1, "meta page sizes differ (%d, %d)", m0.PageSize, m1.PageSize)
	}
	cands := []*page.Meta{}
	for _, m := range []*page.Meta{m0, m1} {
		if m != nil {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		if errors.Is(err0, ErrVersionMismatch) || errors.Is(err1, ErrVersionMismatch) {
			return nil, errors.Join(err0, err1)
		}
		if errors.Is(err0, ErrInvalid) && errors.Is(err1, ErrInvalid) {
			return nil, err0
		}
		return nil, errors.Join(err0, err1)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Txid > cands[j].Txid })
	var verr error
	for i, m := range cands {
		if int64(m.HighWater)*int64(m.PageSize) > size {
			verr = page.Corruptf(page.Pgid(m.Txid%2), "meta of tx %d needs %d pages, the file has %d bytes", m.Txid, m.HighWater, size)
			continue
		}
		// The older meta was made durable before the newer commit began;
		// only the newest needs its record checked. (With NoSync nothing
		// was made durable: a crash may leave either meta unusable, the
		// documented price of NoSync.)
		if i == 0 {
			if err := db.verifyRecord(m); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					// Not damage but a failed read: falling back would
					// drop an acknowledged commit for good.
					return nil, err
				}
				verr = err
				continue
			}
		}
		return m, nil
	}
	return nil, verr
}

// verifyRecord checks that every page span m's commit wrote is intact.
func (db *DB) verifyRecord(m *page.Meta) error {
	if m.Record == 0 {
		return nil
	}
	ps := int(m.PageSize)
	rec, err := db.readSpan(m.Record, ps, m.HighWater)
	if err != nil {
		return err
	}
	if page.Checksum(rec) != m.RecordSum {
		return page.Corruptf(m.Record, "commit record is not the one meta %d was written with", m.Txid)
	}
	r, err := page.DecodeRecord(rec, m.Record)
	if err != nil {
		return err
	}
	if page.TxidOf(rec) != m.Txid {
		return page.Corruptf(m.Record, "commit record of tx %d, meta is tx %d", page.TxidOf(rec), m.Txid)
	}
	for _, w := range r.Written {
		p, err := db.readSpan(w.ID, ps, m.HighWater)
		if err != nil {
			return err
		}
		if page.TxidOf(p) != m.Txid || page.Checksum(p) != w.Checksum || int(page.Overflow(p))+1 != int(w.N) {
			return page.Corruptf(w.ID, "not as commit %d wrote it", m.Txid)
		}
	}
	return nil
}

// readSpan reads and verifies the page span at id through the file.
func (db *DB) readSpan(id page.Pgid, ps int, hw page.Pgid) ([]byte, error) {
	if id < 2 || id >= hw {
		return nil, page.Corruptf(id, "page id out of range (high water %d)", hw)
	}
	head := make([]byte, ps)
	if _, err := db.file.ReadAt(head, int64(id)*int64(ps)); err != nil {
		return nil, err
	}
	if err := page.CheckHeader(head, id, ps); err != nil {
		return nil, err
	}
	n := uint64(page.Overflow(head)) + 1
	if uint64(id)+n > uint64(hw) {
		return nil, page.Corruptf(id, "overflow runs past the high water mark")
	}
	p := head
	if n > 1 {
		p = make([]byte, int(n)*ps)
		if _, err := db.file.ReadAt(p, int64(id)*int64(ps)); err != nil {
			return nil, err
		}
	}
	if err := page.Verify(p, id, ps); err != nil {
		return nil, err
	}
	return p, nil
}

// minReservation is the least virtual size of a mapping.
var minReservation = 1 << 30

// mapFile creates a mapping epoch large enough for hw pages, with room to
// grow.
func (db *DB) mapFile(hw page.Pgid) (*mmap.Epoch, int, error) {
	size := reservation(int64(hw)*int64(db.pageSize), db.opts.InitialMmapSize)
	var data []byte
	var err error
	if m, ok := db.file.(Mapper); ok {
		data, err = m.Map(size)
	} else {
		data, err = mmap.Map(db.file.Fd(), size)
	}
	if err != nil {
		return nil, 0, err
	}
	return mmap.NewEpoch(data), size, nil
}

// reservation returns a mapping size for need bytes: at least
// minReservation and twice need, a power of two.
func reservation(need int64, initial int) int {
	want := need * 2
	if int64(initial) > want {
		want = int64(initial)
	}
	size := int64(minReservation)
	for size < want {
		size *= 2
	}
	return int(size)
}

func (db *DB) loadFreelist(m *page.Meta, data []byte) error {
	var idx freelist.Index
	switch db.opts.FreelistType {
	case FreelistArray:
		idx = array.New()
	default:
		idx = hashmap.New()
	}
	db.freelist = freelist.New(idx)
	ps := db.pageSize
	read := func(id page.Pgid) ([]byte, error) { return page.ReadSpan(data, id, ps, m.HighWater, true) }
	spans, chain, err := page.FreeSet(m, read)
	if err != nil {
		return err
	}
	db.checkpointPages = int(page.Overflow(data[int(m.Freelist)*ps:])) + 1
	db.chain, db.chainPages = nil, 0
	for _, c := range chain {
		db.chain = append(db.chain, chainEntry{id: c.ID, pages: c.Pages, txid: c.Record.Txid})
		db.chainPages += c.Pages
	}
	db.freelist.Load(spans)
	return nil
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
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
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
// NoSync.
func (db *DB) Sync() error {
	db.syncMu.RLock()
	defer db.syncMu.RUnlock()
	if db.closed.Load() {
		return ErrDatabaseNotOpen
	}
	db.fileMu.RLock()
	f := db.file
	db.fileMu.RUnlock()
	// If Compact switches files meanwhile, syncing the old one is still
	// right: the new one was synced before the switch.
	return f.Sync()
}

// Stats returns database-wide counters.
func (db *DB) Stats() Stats {
	db.statsMu.Lock()
	s := db.stats
	db.statsMu.Unlock()
	s.TxN = int(db.txN.Load())
	s.OpenTxN = int(db.openTxN.Load())
	return s
}

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
	if db.closed.Load() {
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
	if db.closed.Load() {
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
