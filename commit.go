package quiver

import (
	"fmt"
	"time"

	"github.com/quiverdb/quiver/mmap"

	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// The database side of a commit (tx.Backend). The transaction has split its
// nodes and encoded them into runs of pages; the database adds the freelist
// checkpoint and the commit record, grows the file if needed, writes the
// runs, the record and the meta, syncs once, and publishes the snapshot.

// Commit implements tx.Backend.
func (b *backend) Commit(t *tx.Tx, cp tx.CommitPages, root page.BucketHeader) error {
	db := (*DB)(b)
	if err := db.freelist.Err(); err != nil {
		return err // an invariant broken (invariants builds)
	}
	ps := db.pageSize
	base := tx.SnapshotOf(t).Meta()
	txid := base.Txid + 1

	// The checkpoint (if any) and the record go in the reserved span.
	sys := cp.Sys.Buf
	plan := &db.plan
	flPages := plan.cpPages
	flID, recID := base.Freelist, cp.Sys.ID+page.Pgid(flPages)
	written := cp.Written
	prevRec := base.Record
	if plan.checkpointing {
		flID = cp.Sys.ID
		spans := subtractSpans(plan.spans, db.freelist.TxAllocated()[plan.allocated:])
		page.PutFreelist(sys[:flPages*ps], flID, txid, ps, eachSpan(spans))
		// Keep the listing's buffer for the next checkpoint, unless it
		// is large: do not hold a large free set between checkpoints.
		if cap(plan.spans) <= 1<<16 {
			db.spansBuf = plan.spans[:0]
		}
		plan.spans = nil
		written = append(written, page.Written{ID: flID, N: uint32(flPages), Checksum: page.Checksum(sys)})
		prevRec = 0
	}
	if len(db.carry) > 0 {
		// The unsynced commit's pages this one still uses: its sync
		// makes them durable, and its verification on open checks them.
		own := len(written)
		written = append(written[:own:own], db.carry...)
		written = dropFreed(written, own, db.freelist.TxFreed())
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
		// With Mlock the new mapping locks the whole file: unlock the
		// current one first (its readers still read it), so that the
		// file is locked once, not twice, and lock it again if mapping
		// anew fails.
		var old []byte
		if db.opts.Mlock {
			old = db.snap.Load().epoch.Data()
			old = old[:min(int64(len(old)), db.fileSize)]
			_ = mmap.Munlock(old)
		}
		var err error
		if fresh, freshSize, err = db.mapFile(meta.HighWater); err != nil {
			_ = mmap.Mlock(old)
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
	// The meta goes to the slot the last durable commit is not in: that
	// one stays intact however this commit ends. A commit may skip its
	// sync (DeferSync), and so may the ones after it, each overwriting
	// the meta before, until one syncs; never one that cuts the file, nor
	// one that would carry too many spans.
	slot := 1 - db.metaSlot
	deferred := t.SyncDeferred() && !plan.shrinking && len(db.carry) < maxCarry
	mbuf := make([]byte, ps)
	page.PutMeta(mbuf, slot, &meta)
	if _, err := db.file.WriteAt(mbuf, int64(slot)*int64(ps)); err != nil {
		return abandon(err)
	}
	if !db.NoSync && !deferred {
		if err := db.file.Sync(); err != nil {
			return abandon(err)
		}
	}
	if deferred && !db.NoSync {
		if !db.unsynced {
			db.durable = base.Txid // the commit before this one synced
		}
		db.unsynced = true
		db.carry = append(append(db.carry[:0], written...), page.Written{ID: recID, N: uint32(len(recBuf) / ps), Checksum: recSum})
	} else {
		db.metaSlot, db.unsynced, db.carry = slot, false, db.carry[:0]
	}
	db.publish(&meta, t, len(runs)+1, time.Since(ioStart), fresh, freshSize)
	if plan.shrinking {
		// The new meta is durable and no reader can reach a page past its
		// high-water mark: cut the file. A failed truncate leaves it long,
		// which is harmless.
		if size := db.keepSize(meta.HighWater); size < db.fileSize && db.file.Truncate(size) == nil {
			db.fileSize = size
		}
	}
	if plan.checkpointing {
		db.chain = append(db.chain[:0], entry)
		db.chainPages = entry.pages
		db.checkpointPages = flPages
		// An early checkpoint that found no room below the record that held
		// the tail would be brought forward again every minChainRecords
		// commits, each time listing the whole free set for nothing: wait
		// for a due one.
		db.tailFutile = plan.tailForced && cp.Sys.ID+page.Pgid(len(sys)/ps) > plan.earlyFrom
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

// fail marks the database failed after a write or sync error: the kernel
// may have dropped dirty pages, so nothing more is written until reopen.
func (db *DB) fail(err error) error {
	db.failed = err
	db.Logger().Errorf("%s: a commit failed; the database refuses writes until it is reopened: %v", db.path, err)
	return fmt.Errorf("quiver: commit failed: %w", err)
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
	st.Write = int64(nwrites)
	st.WriteTime = writeTime
	db.txStats.Add(&st)
	db.statsMu.Unlock()
}

// dropFreed removes from written[from:] the spans that overlap one of
// freed (the carried spans of an unsynced commit that this commit freed:
// its state does not use them).
func dropFreed(written []page.Written, from int, freed []page.Span) []page.Written {
	out := written[:from]
	for _, w := range written[from:] {
		overlaps := false
		for _, f := range freed {
			if uint64(w.ID) < uint64(f.ID)+f.N && uint64(f.ID) < uint64(w.ID)+uint64(w.N) {
				overlaps = true
				break
			}
		}
		if !overlaps {
			out = append(out, w)
		}
	}
	return out
}
