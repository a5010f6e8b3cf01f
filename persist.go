package quiver

import (
	"cmp"
	"slices"

	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// The freelist's persistence: each commit record carries the commit's
// freelist deltas and chains to the one before; now and then a commit
// writes a whole checkpoint of the free set instead, and one whose file
// ends in free pages gives them back (the file shrinks). Reserve decides
// which for each commit (a commitPlan), Commit carries it out.

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

// commitPlan is what Reserve decides for a commit and Commit carries out.
type commitPlan struct {
	shrinking     bool        // the commit gave back the file's free tail
	checkpointing bool        // it writes a freelist checkpoint
	tailForced    bool        // the checkpoint is early, to free the tail
	earlyFrom     page.Pgid   // usedEnd before an early checkpoint
	cpPages       int         // the checkpoint's pages, first in the reserved span
	recPages      int         // the commit record's pages, after them
	spans         []page.Span // a checkpoint's free set, as listed in Reserve
	allocated     int         // the commit's allocations when spans was listed
}

// Reserve implements tx.Backend: the commit's plan (planCommit), kept for
// Commit; it returns the pages the database needs for its own records.
func (b *backend) Reserve(t *tx.Tx, nodes int) int {
	db := (*DB)(b)
	db.plan = db.planCommit(tx.SnapshotOf(t).Meta(), nodes)
	return db.plan.cpPages + db.plan.recPages
}

// planCommit decides whether the commit after base, writing nodes nodes,
// gives back the file's free tail and whether it writes a freelist
// checkpoint (then it frees the previous one and every record chained
// since), and sizes its checkpoint and record.
func (db *DB) planCommit(base *page.Meta, nodes int) commitPlan {
	var p commitPlan
	ps := db.pageSize
	txid := base.Txid + 1
	p.shrinking = db.shrinkTail(txid)
	// A commit that shrinks writes a checkpoint, so that the free set is
	// written whole without the run it gave back; so does one whose file
	// end is held only by the freelist's own pages, to free them.
	due := p.shrinking || db.chainPages >= max(minChainRecords, chainRatio*db.checkpointPages) || len(db.chain) >= maxChainRecords
	p.tailForced = !due && db.tailHeldByFreelist()
	if p.tailForced {
		p.earlyFrom = db.usedEnd()
	}
	p.checkpointing = due || p.tailForced
	if p.checkpointing {
		prev := db.snap.Load().epoch.Data()
		cp := prev[int(base.Freelist)*ps : int(base.Freelist+1)*ps]
		db.freelist.Free(txid, page.TxidOf(cp), base.Freelist, int(page.Overflow(cp))+1)
		for _, e := range db.chain {
			db.freelist.Free(txid, e.txid, e.id, e.pages)
		}
		// The free set is listed once, here; Commit takes this commit's
		// allocations out of the list rather than listing it again.
		p.spans = db.spansBuf[:0]
		db.freelist.Spans(func(id page.Pgid, n uint64) { p.spans = append(p.spans, page.Span{ID: id, N: n}) })
		p.allocated = len(db.freelist.TxAllocated())
		// Allocating the commit's runs (at most nodes+1 of them) only
		// removes pages from spans; each run may grow the checkpoint by a
		// few bytes of varint.
		p.cpPages = page.Pages(page.FreelistSize(eachSpan(p.spans))+4*(nodes+2), ps)
	}
	// The written spans: the nodes, a checkpoint, and what an unsynced
	// commit before this one wrote (see DB.carry).
	p.recPages = page.Pages(page.RecordSize(nodes+1+len(db.carry), len(db.freelist.TxFreed()), nodes+3), ps)
	return p
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

// freelistBytes is the size of the freelist's persisted form: the last
// checkpoint and the records chained since.
func (db *DB) freelistBytes() int {
	n := db.checkpointPages
	for _, e := range db.chain {
		n += e.pages
	}
	return n * db.pageSize
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
	n := db.freelist.FreeSet().TailRun(db.highWater)
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
		idx := db.freelist.FreeSet()
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
	return db.highWater - page.Pgid(db.freelist.FreeSet().TailRun(db.highWater))
}
