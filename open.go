package quiver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/quiverdb/quiver/freelist"
	"github.com/quiverdb/quiver/freelist/array"
	"github.com/quiverdb/quiver/freelist/hashmap"
	"github.com/quiverdb/quiver/internal/testhook"
	"github.com/quiverdb/quiver/mmap"
	"github.com/quiverdb/quiver/page"
)

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
		MaxBatchDelay: o.MaxBatchDelay, AllocSize: o.AllocSize, MaxSize: o.MaxSize,
		path: path, readOnly: o.ReadOnly, opts: o, logger: o.Logger,
	}
	var err error
	if db.absPath, err = filepath.Abs(path); err != nil {
		return nil, err
	}
	log := db.Logger()
	log.Debugf("opening %s (read-only %v, freelist %s)", path, o.ReadOnly, o.FreelistType)
	f, err := openLocked(path, mode, &o)
	if err != nil {
		log.Errorf("opening %s: %v", path, err)
		return nil, err
	}
	db.file = f
	if err := db.open(); err != nil {
		_ = mmap.Unlock(f.Fd())
		f.Close()
		log.Errorf("opening %s: %v", path, err)
		return nil, err
	}
	log.Debugf("opened %s: %d pages of %d bytes", path, db.snap.Load().meta.HighWater, db.pageSize)
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
		if h := testhook.For(path); h != nil && h.Open != nil {
			h.Open(path, attempt)
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

func (db *DB) open() (err error) {
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
	} else if !db.readOnly {
		// The syncs wait on the device, not the processor: they run
		// while the rest of the open reads the metas and loads the
		// freelist, and Open returns once they are done.
		synced := make(chan error, 1)
		go func() { synced <- db.syncExisting() }()
		defer func() {
			if serr := <-synced; serr != nil && err == nil {
				err = serr
			}
		}()
	}
	db.fileSize = size
	meta, slot, err := db.readMeta(size)
	if err != nil {
		if errors.Is(err, ErrInvalid) && db.isBbolt() {
			return fmt.Errorf("%w: %s is a bbolt database; quiver reads its own format: convert it with quiver import --from-bbolt %s NEWFILE", ErrInvalid, db.path, db.path)
		}
		return err
	}
	db.metaSlot = slot
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
		if err := db.loadFreelist(meta); err != nil {
			s.release()
			return err
		}
		db.stats.FreePageN = db.freelist.FreeCount()
		db.stats.FreeAlloc = db.stats.FreePageN * db.pageSize
		db.stats.FreelistInuse = db.freelistBytes()
	}
	return nil
}

// syncExisting makes an existing file's directory entry and contents
// durable, for a writable open.
func (db *DB) syncExisting() error {
	// Again on every writable open: an Open that created the file may
	// have failed at the sync in open, or a crash may have come between
	// the creation and it. A directory this process may not read is not
	// an error for an existing file.
	if err := syncDirOf(db.file, db.path); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("quiver: syncing the directory of the file: %w", err)
	}
	// A process that died without syncing (killed after a commit that
	// deferred its sync, or between a commit's writes and its sync) left
	// writes in the page cache that this one will read as committed; make
	// them durable before building on them, so that the next commit can
	// take the pages the newest state freed.
	if err := db.file.Sync(); err != nil {
		return fmt.Errorf("quiver: syncing the file: %w", err)
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
func (db *DB) readMeta(size int64) (*page.Meta, page.Pgid, error) {
	if size < 2*page.MinPageSize {
		return nil, 0, fmt.Errorf("%w: file is %d bytes", ErrInvalid, size)
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
	if m0 != nil && size < 2*int64(m0.PageSize) {
		// A quiver file cut short of its second meta (bbolt's words for it).
		return nil, 0, page.Corruptf(1, "file size too small: %d bytes, less than the two meta pages of %d", size, m0.PageSize)
	}
	if m0 != nil && m1 != nil && m0.PageSize != m1.PageSize {
		return nil, 0, page.Corruptf(1, "meta page sizes differ (%d, %d)", m0.PageSize, m1.PageSize)
	}
	type cand struct {
		m    *page.Meta
		slot page.Pgid
	}
	var cands []cand
	for slot, m := range []*page.Meta{m0, m1} {
		if m != nil {
			cands = append(cands, cand{m, page.Pgid(slot)})
		}
	}
	if len(cands) == 0 {
		if errors.Is(err0, ErrVersionMismatch) || errors.Is(err1, ErrVersionMismatch) {
			return nil, 0, errors.Join(err0, err1)
		}
		if errors.Is(err0, ErrInvalid) && errors.Is(err1, ErrInvalid) {
			return nil, 0, err0
		}
		return nil, 0, errors.Join(err0, err1)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].m.Txid > cands[j].m.Txid })
	var verr error
	for i, c := range cands {
		m := c.m
		if int64(m.HighWater)*int64(m.PageSize) > size {
			verr = page.Corruptf(c.slot, "meta of tx %d needs %d pages, the file has %d bytes", m.Txid, m.HighWater, size)
			continue
		}
		// The older meta was made durable before the newer commit began
		// (a commit writes the slot the last durable meta is not in; see
		// Tx.DeferSync); only the newest needs its record checked. (With NoSync nothing
		// was made durable: a crash may leave either meta unusable, the
		// documented price of NoSync.)
		if i == 0 {
			if err := db.verifyRecord(m); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					// Not damage but a failed read: falling back would
					// drop an acknowledged commit for good.
					return nil, 0, err
				}
				verr = err
				continue
			}
		}
		return m, c.slot, nil
	}
	return nil, 0, verr
}

// verifyRecord checks that every page span m's commit wrote is intact.
func (db *DB) verifyRecord(m *page.Meta) error {
	if m.Record == 0 {
		return nil
	}
	ps := int(m.PageSize)
	rec, err := db.readSpan(m.Record, ps, m.HighWater, nil)
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
	var buf []byte
	for _, w := range r.Written {
		p, err := db.readSpan(w.ID, ps, m.HighWater, &buf)
		if err != nil {
			return err
		}
		// A commit after unsynced ones lists their pages too (older
		// txids): the checksum pins each page's contents.
		if t := page.TxidOf(p); t > m.Txid || t == 0 || page.Checksum(p) != w.Checksum || int(page.Overflow(p))+1 != int(w.N) {
			return page.Corruptf(w.ID, "not as commit %d wrote it", m.Txid)
		}
	}
	return nil
}

// readSpan reads and verifies the page span at id through the file. With
// buf, it reads into *buf, grown as needed, and the span returned aliases
// it until the next call with the same buf.
func (db *DB) readSpan(id page.Pgid, ps int, hw page.Pgid, buf *[]byte) ([]byte, error) {
	if id < 2 || id >= hw {
		return nil, page.Corruptf(id, "page id out of range (high water %d)", hw)
	}
	alloc := func(n int) []byte {
		if buf == nil {
			return make([]byte, n)
		}
		if cap(*buf) < n {
			*buf = make([]byte, n)
		}
		return (*buf)[:n]
	}
	head := alloc(ps)
	if _, err := db.file.ReadAt(head, int64(id)*int64(ps)); err != nil {
		return nil, shortRead(id, err)
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
		p = alloc(int(n) * ps)
		if _, err := db.file.ReadAt(p, int64(id)*int64(ps)); err != nil {
			return nil, shortRead(id, err)
		}
	}
	if err := page.Verify(p, id, ps); err != nil {
		return nil, err
	}
	return p, nil
}

// shortRead names a span that the file ends inside as corruption of its
// page; other read errors pass as they are.
func shortRead(id page.Pgid, err error) error {
	if errors.Is(err, io.EOF) {
		return page.Corruptf(id, "page beyond the end of the file")
	}
	return err
}

// minReservation is the least virtual size of a mapping.
const minReservation = 1 << 30

// mapFile creates a mapping epoch large enough for hw pages, with room to
// grow.
func (db *DB) mapFile(hw page.Pgid) (*mmap.Epoch, int, error) {
	least := minReservation
	if h := testhook.For(db.absPath); h != nil && h.MinReservation > 0 {
		least = h.MinReservation
	}
	size := reservation(int64(hw)*int64(db.pageSize), db.opts.InitialMmapSize, least)
	var data []byte
	var err error
	if m, ok := db.file.(Mapper); ok {
		data, err = m.Map(size)
	} else {
		data, err = mmap.Map(db.file.Fd(), size, db.opts.MmapFlags)
	}
	if err != nil {
		return nil, 0, err
	}
	epoch := mmap.NewEpoch(data)
	if db.opts.Mlock {
		if err := mmap.Mlock(data[:min(int64(len(data)), db.fileSize)]); err != nil {
			_ = epoch.Release()
			return nil, 0, err
		}
	}
	return epoch, size, nil
}

// reservation returns a mapping size for need bytes: at least least and
// twice need, a power of two.
func reservation(need int64, initial, least int) int {
	want := need * 2
	if int64(initial) > want {
		want = int64(initial)
	}
	size := int64(least)
	for size < want {
		size *= 2
	}
	return int(size)
}

func (db *DB) loadFreelist(m *page.Meta) error {
	var idx freelist.Freelist
	switch db.opts.FreelistType {
	case FreelistArray:
		idx = array.New()
	default:
		idx = hashmap.New()
	}
	db.freelist = freelist.New(idx)
	ps := db.pageSize
	// The checkpoint and the records are read through the file, not the
	// mapping just made: there, each of the chain's scattered pages would
	// cost a page fault, measured at 10–20× a pread of the page.
	// FreeSet is done with a span before it reads the next: one buffer
	// serves them all.
	var buf []byte
	read := func(id page.Pgid) ([]byte, error) {
		b, err := db.readSpan(id, ps, m.HighWater, &buf)
		if err == nil && id == m.Freelist {
			db.checkpointPages = len(b) / ps
		}
		return b, err
	}
	spans, chain, err := page.FreeSet(m, read)
	if err != nil {
		return err
	}
	db.chain, db.chainPages = nil, 0
	for _, c := range chain {
		db.chain = append(db.chain, chainEntry{id: c.ID, pages: c.Pages, txid: c.Record.Txid})
		db.chainPages += c.Pages
	}
	db.freelist.Load(spans)
	return nil
}

// bboltMagic is bbolt's meta page magic number, a uint32 in the machine's
// byte order at byte 16 of its first page.
const bboltMagic = 0xED0CDAED

// isBbolt reports whether the file starts with a bbolt meta page, so that
// Open can name the format instead of calling the file garbage.
func (db *DB) isBbolt() bool {
	var b [20]byte
	if _, err := db.file.ReadAt(b[:], 0); err != nil {
		return false
	}
	return binary.NativeEndian.Uint32(b[16:]) == bboltMagic
}
