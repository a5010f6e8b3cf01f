package quiver

import (
	"cmp"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/quiverdb/quiver/mmap"

	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// The database side of a commit (tx.Backend). The transaction has split its
// nodes and encoded them into runs of pages; the database adds the freelist
// checkpoint and the commit record, grows the file if needed, writes the
// runs, the record and the meta, syncs once, and publishes the snapshot.

// backend is the DB seen by its transactions (tx.Backend): a distinct
// type, so that these methods are not part of DB's API.
type backend DB

// DB returns the database as the tx.DB interface.
func (b *backend) DB() tx.DB { return (*DB)(b) }

// Allocate implements tx.Backend.
func (b *backend) Allocate(txid page.Txid, n int, grow bool) (page.Pgid, error) {
	db := (*DB)(b)
	if !grow {
		return db.freelist.Allocate(txid, n), nil
	}
	id := db.highWater
	db.highWater += page.Pgid(n)
	db.freelist.NoteAllocated(txid, id, n)
	return id, nil
}

// Free implements tx.Backend.
func (b *backend) Free(txid, alloc page.Txid, id page.Pgid, n int) {
	db := (*DB)(b)
	db.freelist.Free(txid, alloc, id, n)
}

// maxWriteBuffer bounds the scratch a database keeps between commits: a
// larger request (a huge value) gets a buffer of its own, and scratch that
// grew past it in a large commit is dropped when the commit ends, so that
// one large commit does not pin its size for the life of the process.
const maxWriteBuffer = 16 << 20

// WriteBuffer implements tx.Backend: the writer's scratch, reused across
// commits so that a commit's page buffers are not garbage.
func (b *backend) WriteBuffer(size int) []byte {
	db := (*DB)(b)
	if size > maxWriteBuffer/2 {
		return make([]byte, size)
	}
	if len(db.wbuf)+size > cap(db.wbuf) {
		// Keep what was handed out valid: start a new, larger buffer.
		n := 2 * cap(db.wbuf)
		if n < size {
			n = size
		}
		if n < 1<<20 {
			n = 1 << 20
		}
		db.wbuf = make([]byte, 0, n)
	}
	off := len(db.wbuf)
	db.wbuf = db.wbuf[:off+size]
	buf := db.wbuf[off : off+size : off+size]
	clear(buf)
	return buf
}

// Pin implements tx.Backend.
func (b *backend) Pin(t *tx.Tx) (release func()) {
	s := tx.SnapshotOf(t).(*snapshot)
	s.acquire() // t holds a reference: s is alive
	return s.release
}

// End implements tx.Backend.
func (b *backend) End(t *tx.Tx, committed bool) {
	db := (*DB)(b)
	s := tx.SnapshotOf(t).(*snapshot)
	if !t.Writable() {
		s.release()
		db.openTxN.Add(-1)
		return
	}
	if !committed {
		txid := page.Txid(t.ID())
		db.freelist.Rollback(txid)
		db.highWater = s.meta.HighWater
	}
	s.release()
	if cap(db.wbuf) > maxWriteBuffer {
		db.wbuf = nil
	} else {
		db.wbuf = db.wbuf[:0]
	}
	db.writer.Unlock()
}

// Checkpoint policy: a commit writes a whole freelist checkpoint once the
// records chained since the last one take chainRatio times the
// checkpoint's pages (and at least minChainRecords of them), or there are
// maxChainRecords of them; otherwise its record's delta is all the freelist
// it writes. So a small commit writes one record page whatever the number
// of free pages, and the checkpoints add at most 1/chainRatio of a page a
// commit on average. A checkpoint commit lists the whole free set, so its
// latency grows with the free spans: the ratio keeps those commits under 1%
// of small commits once the checkpoint takes more than ~13 pages (about
// 40,000 free spans), out of the commit p99. Opening replays a chain no
// longer than chainRatio times the checkpoint, at a cost per span listed
// (page.Replay); a record lists ~10 times fewer spans a page than the
// checkpoint, so the chain costs less than the checkpoint itself.
const (
	chainRatio      = 8
	minChainRecords = 8
	maxChainRecords = 4096 // well below page.FreeSet's bound on a chain
)

// chainEntry is a commit record kept allocated until the next checkpoint.
type chainEntry struct {
	id    page.Pgid
	pages int
	txid  page.Txid
}

// Reserve implements tx.Backend: it decides whether this commit writes a
// freelist checkpoint (then it frees the previous one and every record
// chained since) and sizes the commit's own pages.
func (b *backend) Reserve(t *tx.Tx, nodes int) int {
	db := (*DB)(b)
	ps := db.pageSize
	base := tx.SnapshotOf(t).Meta()
	txid := base.Txid + 1
	db.shrinking = db.shrinkTail(txid)
	// A commit that shrinks writes a checkpoint, so that the free set is
	// written whole without the run it gave back; so does one whose file
	// end is held only by the freelist's own pages, to free them.
	due := db.shrinking || db.chainPages >= max(minChainRecords, chainRatio*db.checkpointPages) || len(db.chain) >= maxChainRecords
	db.tailForced = !due && db.tailHeldByFreelist()
	if db.tailForced {
		db.earlyFrom = db.usedEnd()
	}
	db.checkpointing = due || db.tailForced
	flPages := 0
	if db.checkpointing {
		prev := db.snap.Load().epoch.Data()
		p := prev[int(base.Freelist)*ps : int(base.Freelist+1)*ps]
		db.freelist.Free(txid, page.TxidOf(p), base.Freelist, int(page.Overflow(p))+1)
		for _, e := range db.chain {
			db.freelist.Free(txid, e.txid, e.id, e.pages)
		}
		// The free set is listed once, here; Commit takes this commit's
		// allocations out of the list rather than listing it again.
		db.cpSpans = db.cpSpans[:0]
		db.freelist.Spans(func(id page.Pgid, n uint64) { db.cpSpans = append(db.cpSpans, page.Span{ID: id, N: n}) })
		db.cpAllocated = len(db.freelist.TxAllocated())
		// Allocating the commit's runs (at most nodes+1 of them) only
		// removes pages from spans; each run may grow the checkpoint by a
		// few bytes of varint.
		flPages = page.Pages(page.FreelistSize(eachSpan(db.cpSpans))+4*(nodes+2), ps)
	}
	recBytes := page.RecordSize(nodes+1, len(db.freelist.TxFreed()), nodes+3)
	db.sysSplit = flPages
	return flPages + page.Pages(recBytes, ps)
}

// eachSpan lists spans for the page encoders.
func eachSpan(spans []page.Span) func(func(page.Pgid, uint64)) {
	return func(yield func(page.Pgid, uint64)) {
		for _, s := range spans {
			yield(s.ID, s.N)
		}
	}
}

// subtractSpans returns the ascending, disjoint spans of list without the
// pages of cut (disjoint spans in any order). Pages of cut that no span
// holds (taken from the end of the file) are ignored; a cut may cross from
// one span into the next. One pass over both: O(len(list) + len(cut) log
// len(cut)), whether a cut shortens a span, splits it or removes it whole.
func subtractSpans(list, cut []page.Span) []page.Span {
	if len(cut) == 0 {
		return list
	}
	cut = slices.Clone(cut)
	slices.SortFunc(cut, func(a, b page.Span) int { return cmp.Compare(a.ID, b.ID) })
	out := make([]page.Span, 0, len(list)+len(cut))
	j := 0 // the first cut that may reach the current span
	for _, s := range list {
		cur, end := s.ID, s.ID+page.Pgid(s.N)
		for j < len(cut) && cut[j].ID+page.Pgid(cut[j].N) <= cur {
			j++
		}
		for k := j; k < len(cut) && cut[k].ID < end; k++ {
			c, cEnd := cut[k].ID, cut[k].ID+page.Pgid(cut[k].N)
			if c > cur {
				out = append(out, page.Span{ID: cur, N: uint64(c - cur)})
			}
			cur = max(cur, cEnd)
		}
		if cur < end {
			out = append(out, page.Span{ID: cur, N: uint64(end - cur)})
		}
	}
	return out
}

// Commit implements tx.Backend.
func (b *backend) Commit(t *tx.Tx, cp tx.CommitPages, root page.BucketHeader) error {
	db := (*DB)(b)
	ps := db.pageSize
	base := tx.SnapshotOf(t).Meta()
	txid := base.Txid + 1

	// The checkpoint (if any) and the record go in the reserved span.
	sys := cp.Sys.Buf
	flPages := db.sysSplit
	flID, recID := base.Freelist, cp.Sys.ID+page.Pgid(flPages)
	written := cp.Written
	prevRec := base.Record
	if db.checkpointing {
		flID = cp.Sys.ID
		db.cpSpans = subtractSpans(db.cpSpans, db.freelist.TxAllocated()[db.cpAllocated:])
		page.PutFreelist(sys[:flPages*ps], flID, txid, ps, eachSpan(db.cpSpans))
		if cap(db.cpSpans) > 1<<16 {
			db.cpSpans = nil // do not hold a large free set between checkpoints
		}
		written = append(written, page.Written{ID: flID, N: uint32(flPages), Checksum: page.Checksum(sys)})
		prevRec = 0
	}
	rec := &page.Record{Txid: txid, Prev: prevRec, Written: written, Freed: db.freelist.TxFreed(), Allocated: db.freelist.TxAllocated()}
	recBuf := sys[flPages*ps:]
	page.PutRecord(recBuf, recID, ps, rec)
	recSum := page.Checksum(recBuf)
	entry := chainEntry{id: recID, pages: len(recBuf) / ps, txid: txid}
	writes := cp.Writes

	meta := page.Meta{
		PageSize:  uint32(ps),
		Root:      root.Root,
		Sequence:  root.Sequence,
		Freelist:  flID,
		HighWater: db.highWater,
		Txid:      txid,
		Record:    recID,
		RecordSum: recSum,
	}
	if err := db.grow(int64(meta.HighWater) * int64(ps)); err != nil {
		// Nothing is written yet: the commit fails, the database does not.
		return fmt.Errorf("quiver: commit failed: growing the file: %w", err)
	}
	// Map a grown file before anything is written, so that once the meta
	// is durable nothing can fail.
	var fresh *mmap.Epoch
	freshSize := 0
	if need := int64(meta.HighWater) * int64(ps); need > int64(db.mapSize) {
		var err error
		if fresh, freshSize, err = db.mapFile(meta.HighWater); err != nil {
			return err
		}
	}
	abandon := func(err error) error {
		if fresh != nil {
			_ = fresh.Release()
		}
		return db.fail(err)
	}
	runs := db.coalesce(writes, ps)
	ioStart := time.Now()
	for _, w := range runs {
		if _, err := db.file.WriteAt(w.Buf, int64(w.ID)*int64(ps)); err != nil {
			return abandon(err)
		}
	}
	mbuf := make([]byte, ps)
	page.PutMeta(mbuf, page.Pgid(txid%2), &meta)
	if _, err := db.file.WriteAt(mbuf, int64(txid%2)*int64(ps)); err != nil {
		return abandon(err)
	}
	if !db.NoSync {
		if err := db.file.Sync(); err != nil {
			return abandon(err)
		}
	}
	db.publish(&meta, t, len(runs)+1, time.Since(ioStart), fresh, freshSize)
	if db.shrinking {
		// The new meta is durable and no reader can reach a page past its
		// high-water mark: cut the file. A failed truncate leaves it long,
		// which is harmless.
		if size := db.keepSize(meta.HighWater); size < db.fileSize && db.file.Truncate(size) == nil {
			db.fileSize = size
		}
	}
	if db.checkpointing {
		db.chain = append(db.chain[:0], entry)
		db.chainPages = entry.pages
		db.checkpointPages = flPages
		// An early checkpoint that found no room below the record that held
		// the tail would be brought forward again every minChainRecords
		// commits, each time listing the whole free set for nothing: wait
		// for a due one.
		db.tailFutile = db.tailForced && cp.Sys.ID+page.Pgid(len(sys)/ps) > db.earlyFrom
	} else {
		db.chain = append(db.chain, entry)
		db.chainPages += entry.pages
	}
	db.statsMu.Lock()
	db.stats.FreelistInuse = db.freelistBytes()
	db.stats.FreelistWrite += len(sys)
	db.statsMu.Unlock()
	return nil
}

// freelistBytes is the size of the freelist's persisted form: the last
// checkpoint and the records chained since.
func (db *DB) freelistBytes() int {
	n := db.checkpointPages
	for _, e := range db.chain {
		n += e.pages
	}
	return n * db.pageSize
}

// coalesce merges runs that touch into single writes, so that a commit
// makes as few pwrite calls as possible. Runs that are also consecutive in
// the writer's buffer merge for free; others are copied when small, where a
// syscall costs more than the copy.
func (db *DB) coalesce(writes []tx.Write, ps int) []tx.Write {
	sortWrites(writes)
	base := db.wbuf[:cap(db.wbuf)]
	// offset returns where b starts in base, if it lies there. Only
	// integers are computed from the addresses: no pointer leaves base.
	offset := func(b []byte) (int, bool) {
		if len(base) == 0 || len(b) == 0 {
			return 0, false
		}
		off := uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(base)))
		return int(off), off < uintptr(len(base)) && int(off)+len(b) <= len(base)
	}
	const maxCopy = 256 << 10
	out := writes[:0:0]
	copied := -1 // the index in out of the write whose buffer is a copy
	for _, w := range writes {
		k := len(out)
		if k == 0 || out[k-1].ID+page.Pgid(len(out[k-1].Buf)/ps) != w.ID {
			out = append(out, w)
			continue
		}
		prev := &out[k-1]
		a, aok := offset(prev.Buf)
		b, bok := offset(w.Buf)
		switch {
		case aok && bok && a+len(prev.Buf) == b:
			prev.Buf = base[a : b+len(w.Buf) : b+len(w.Buf)]
		case len(prev.Buf)+len(w.Buf) > maxCopy:
			out = append(out, w)
		case copied == k-1:
			// Already a copy: append (amortised, not a copy per merge).
			prev.Buf = append(prev.Buf, w.Buf...)
		default:
			merged := make([]byte, 0, min(maxCopy, 2*(len(prev.Buf)+len(w.Buf))))
			prev.Buf = append(append(merged, prev.Buf...), w.Buf...)
			copied = k - 1
		}
	}
	return out
}

func sortWrites(w []tx.Write) {
	for i := 1; i < len(w); i++ {
		for j := i; j > 0 && w[j].ID < w[j-1].ID; j-- {
			w[j], w[j-1] = w[j-1], w[j]
		}
	}
}

// fail marks the database failed after a write or sync error: the kernel
// may have dropped dirty pages, so nothing more is written until reopen.
func (db *DB) fail(err error) error {
	db.failed = err
	return fmt.Errorf("quiver: commit failed: %w", err)
}

// grow makes the file at least size bytes, in steps that double small files
// and add AllocSize to large ones, so that most commits overwrite.
func (db *DB) grow(size int64) error {
	if size <= db.fileSize {
		return nil
	}
	step := db.growStep(db.fileSize)
	target := db.fileSize
	for target < size {
		target += step
	}
	if err := db.file.Truncate(target); err != nil {
		return err
	}
	db.fileSize = target
	return nil
}

// growStep is the step by which a file of size bytes grows: its own size
// (small files double) up to AllocSize, and at least 32 KiB and a page.
func (db *DB) growStep(size int64) int64 {
	step := max(size, 32<<10)
	alloc := int64(db.AllocSize)
	if alloc <= 0 {
		alloc = DefaultAllocSize // the field is public and may be zeroed
	}
	return max(min(step, alloc), int64(db.pageSize))
}

// keepSize is the file size kept when a file whose data ends at high-water
// mark hw shrinks: the data plus one growth step, so that the next commits
// do not grow it again at once.
func (db *DB) keepSize(hw page.Pgid) int64 {
	need := int64(hw) * int64(db.pageSize)
	return need + db.growStep(need)
}

// shrinkTail gives back the free run at the end of the file (taking it
// from the freelist as part of commit txid's allocations and lowering the
// high-water mark) when that lets the file shrink by at least a growth step
// beyond what keepSize keeps. Only free pages are taken, never pending
// ones, so no open reader can reach them. With NoSync it does nothing: the
// truncate could reach the disk before the meta that allows it.
func (db *DB) shrinkTail(txid page.Txid) bool {
	if db.NoSync {
		return false
	}
	n := db.freelist.Index().TailRun(db.highWater)
	if n == 0 || n >= uint64(db.highWater) {
		return false
	}
	keep := db.keepSize(db.highWater - page.Pgid(n))
	if db.fileSize-keep < db.growStep(keep) {
		return false
	}
	if db.freelist.TakeTail(txid, db.highWater, n) != n {
		return false
	}
	db.highWater -= page.Pgid(n)
	return true
}

// tailHeldByFreelist reports whether the last used page of the file (below
// any free run at its end) belongs to the freelist checkpoint or a chained
// record while enough pages are free that the file could shrink by a
// growth step. Those records stay allocated until the next checkpoint,
// which is then brought forward; at most one in minChainRecords commits is
// forced. A tail held by the checkpoint itself forces one only if a free
// run below it could hold the next: in a file too fragmented for that, the
// checkpoint was placed at the end for want of a run, and its successor
// would land there too.
//
// If an early checkpoint lands above that record all the same (the free
// set grew past the run the probe found, or the commit's pages took it),
// no other is brought forward until a due one.
func (db *DB) tailHeldByFreelist() bool {
	if db.NoSync || db.tailFutile || len(db.chain) < minChainRecords {
		return false
	}
	if int64(db.freelist.FreeCount())*int64(db.pageSize) < 2*db.growStep(db.fileSize) {
		return false
	}
	// chain[0] is the record of the commit that wrote the checkpoint,
	// placed right after it: it counts as the checkpoint.
	if cp := db.chain[0]; db.endsAtTail(cp) {
		n := db.checkpointPages + cp.pages
		idx := db.freelist.Index()
		id := idx.Allocate(n)
		if id == 0 {
			return false
		}
		idx.Free([]page.Span{{ID: id, N: uint64(n)}})
		return id+page.Pgid(n+db.checkpointPages) <= cp.id // below the checkpoint
	}
	for _, e := range db.chain[1:] {
		if db.endsAtTail(e) {
			return true
		}
	}
	return false
}

// endsAtTail reports whether e is the last used span of the file.
func (db *DB) endsAtTail(e chainEntry) bool {
	return e.id+page.Pgid(e.pages) == db.usedEnd()
}

// usedEnd is the end of the file's used pages: the high-water mark below
// any free run at the end of the file.
func (db *DB) usedEnd() page.Pgid {
	return db.highWater - page.Pgid(db.freelist.Index().TailRun(db.highWater))
}

// publish makes meta the current snapshot, remapping if the file outgrew
// the mapping. nwrites and writeTime are the commit's write calls and the
// time they and the sync took.
func (db *DB) publish(meta *page.Meta, t *tx.Tx, nwrites int, writeTime time.Duration, fresh *mmap.Epoch, freshSize int) {
	old := db.snap.Load()
	epoch := old.epoch
	if fresh != nil {
		epoch = fresh
		db.mapSize = freshSize
	} else {
		epoch.Acquire()
	}
	s := &snapshot{meta: *meta, epoch: epoch}
	s.refs.Set(1)
	db.freelist.Commit(meta.Txid)
	db.snap.Store(s)
	db.snaps = append(db.snaps, s)
	old.release()

	db.statsMu.Lock()
	db.stats.FreePageN = db.freelist.FreeCount()
	db.stats.PendingPageN = db.freelist.PendingCount()
	db.stats.FreeAlloc = (db.stats.FreePageN + db.stats.PendingPageN) * db.pageSize
	st := t.Stats()
	db.stats.TxStats.PageCount += st.PageCount
	db.stats.TxStats.PageAlloc += st.PageAlloc
	db.stats.TxStats.NodeCount += st.NodeCount
	db.stats.TxStats.Rebalance += st.Rebalance
	db.stats.TxStats.Split += st.Split
	db.stats.TxStats.Write += nwrites
	db.stats.TxStats.WriteTime += writeTime
	db.stats.TxStats.AllocTime += st.AllocTime
	db.statsMu.Unlock()
}
