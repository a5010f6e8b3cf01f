package tx

import (
	"github.com/quiverdb/quiver/page"
)

// DB is the database a transaction belongs to. *quiver.DB implements it;
// Tx.DB returns it so that code written for bbolt can call, for example,
// tx.DB().Path().
type DB interface {
	Path() string
	IsReadOnly() bool
	Begin(writable bool) (*Tx, error)
	Update(fn func(*Tx) error) error
	View(fn func(*Tx) error) error
	Batch(fn func(*Tx) error) error
	Sync() error
	Close() error
}

// Write is a run of contiguous pages a commit writes.
type Write struct {
	ID  page.Pgid
	Buf []byte // whole pages
}

// Backend is what a transaction needs from its database.
type Backend interface {
	// Allocate returns the first of n contiguous pages for writer txid:
	// with grow false from a free run (0 when the freelist has none), with
	// grow true from the end of the file (the caller has learnt that no
	// free run holds n).
	Allocate(txid page.Txid, n int, grow bool) (page.Pgid, error)
	// Free marks the n pages at id, written by alloc, freed by writer txid.
	Free(txid, alloc page.Txid, id page.Pgid, n int)
	// Reserve is called once per commit after the tree's pages are freed
	// and before any is allocated, with the number of nodes to write. It
	// returns how many pages the backend needs for its own records of the
	// commit; they are allocated with the nodes and handed back in
	// CommitPages.Sys.
	Reserve(t *Tx, nodes int) int
	// Commit fills in the reserved pages, writes everything and the meta,
	// makes them durable and publishes the new snapshot. root is the root
	// bucket's header. On error nothing was published.
	Commit(t *Tx, pages CommitPages, root page.BucketHeader) error
	// End releases the transaction's snapshot; for a writer that did not
	// commit it also rolls back its freelist changes. It releases the
	// writer lock.
	End(t *Tx, committed bool)
	// WriteBuffer returns size zeroed bytes of scratch for encoding pages,
	// valid until the commit ends.
	WriteBuffer(size int) []byte
	// Pin takes another reference to the transaction's snapshot, so that
	// its pages stay mapped after the transaction ends, until release.
	Pin(t *Tx) (release func())
	// DB returns the database for Tx.DB.
	DB() DB
}

// Tx is a read-only or read-write transaction. A read-only transaction sees
// the snapshot of the last commit before it began, for its whole life; many
// may run at once. One read-write transaction runs at a time. A Tx is not
// safe for concurrent use by several goroutines.
type Tx struct {
	// WriteFlag is bbolt's, kept so that programs setting it compile: the
	// flags bbolt opens the file with to read it in WriteTo. quiver's
	// WriteTo copies from its mapping and does not use it.
	WriteFlag int

	backend  Backend
	writable bool
	managed  bool
	closed   bool
	meta     page.Meta
	data     []byte // the pinned mapping
	pageSize int
	root     Bucket
	arena    arena
	err      error

	// Buckets opened in the transaction: the first from inline, then from
	// slabs of growing size. A Tx is never reused by another transaction,
	// and neither is its memory, so a handle kept past the end points
	// into its own ended transaction and gets ErrTxClosed or nothing.
	inline   [1]Bucket
	nInline  int
	slab     []Bucket
	oldSlabs [][]Bucket

	commitHandlers []func()
	deferSync      bool
	stats          TxStats
	snap           Snapshot
}

// Snapshot is a committed state as a Backend keeps it: the state's meta
// and the mapping its pages are read from. A transaction reads page id at
// Data()[id*PageSize:] for as long as it is open: the backend must keep
// Data mapped, and the pages the meta can reach unchanged, until it ends
// the transaction (Backend.End) and every Pin taken on it is released.
type Snapshot interface {
	Meta() *page.Meta
	Data() []byte
}

// Begin starts a transaction of backend b over snapshot s: the backend's
// side of DB.Begin. The backend has registered the reader or taken the
// writer's lock; the transaction hands s back in every Backend call
// (SnapshotOf) and ends with Backend.End.
func Begin(b Backend, s Snapshot, writable bool) *Tx {
	meta := s.Meta()
	t := &Tx{backend: b, snap: s, writable: writable, meta: *meta, data: s.Data(), pageSize: int(meta.PageSize)}
	t.root.init(t, page.BucketHeader{Root: meta.Root, Sequence: meta.Sequence}, nil, nil)
	return t
}

// SnapshotOf returns the snapshot t was begun on, for its backend.
func SnapshotOf(t *Tx) Snapshot { return t.snap }

// Root returns the transaction's root bucket, whose keys are the top-level
// buckets (for code that treats the top level like any bucket).
func Root(t *Tx) *Bucket { return &t.root }

// Run runs fn in t as a managed transaction, the way DB.Update, DB.View and
// DB.Batch do: Commit and Rollback called inside fn return ErrTxManaged.
// Then a writable t is committed if fn returned nil and rolled back
// otherwise; a read-only t is rolled back. If fn panics, t is rolled back
// and the panic goes on. Run returns fn's error, else the commit's, else
// (read-only) the first corruption the transaction met.
func Run(t *Tx, fn func(*Tx) error) error {
	defer func() {
		if !t.closed {
			t.end(false) // fn panicked
		}
	}()
	t.managed = true
	err := fn(t)
	t.managed = false
	if err != nil || !t.writable {
		if err == nil {
			err = t.err
		}
		if !t.closed {
			t.end(false)
		}
		return err
	}
	return t.Commit()
}

// Meta returns a copy of the meta of the snapshot the transaction reads:
// page size, root, high-water mark, freelist and commit record pages (for
// tools that inspect the file).
func (t *Tx) Meta() page.Meta { return t.meta }

// Err returns the first corruption the transaction met while reading, if
// any. Get and cursors cannot return errors, so they stop at a damaged page
// and record it here; Update, View and Commit return it.
func (t *Tx) Err() error { return t.err }

func (t *Tx) corrupt(err error) {
	if t.err == nil {
		t.err = err
	}
}

func (t *Tx) errOr(err error) error {
	if t.err != nil {
		return t.err
	}
	return err
}

// ID returns the transaction id: for a writer the id its commit will
// have, for a reader the id of the commit it sees.
func (t *Tx) ID() int {
	if t.writable {
		return int(t.meta.Txid) + 1
	}
	return int(t.meta.Txid)
}

// txid is the id of the commit a writer makes.
func (t *Tx) txid() page.Txid { return t.meta.Txid + 1 }

// DB returns the database the transaction belongs to.
func (t *Tx) DB() DB { return t.backend.DB() }

// Size returns the size in bytes of the database as this transaction sees
// it.
func (t *Tx) Size() int64 { return int64(t.meta.HighWater) * int64(t.pageSize) }

// Writable reports whether the transaction can change the database.
func (t *Tx) Writable() bool { return t.writable }

// Stats returns the transaction's counters.
func (t *Tx) Stats() TxStats { return t.stats }

// Cursor returns a cursor over the root bucket, whose keys are the names of
// the top-level buckets (with nil values).
func (t *Tx) Cursor() *Cursor { return t.root.Cursor() }

// Bucket returns the top-level bucket name, or nil.
func (t *Tx) Bucket(name []byte) *Bucket { return t.root.Bucket(name) }

// CreateBucket creates the top-level bucket name.
func (t *Tx) CreateBucket(name []byte) (*Bucket, error) { return t.root.CreateBucket(name) }

// CreateBucketIfNotExists returns the top-level bucket name, creating it if
// needed.
func (t *Tx) CreateBucketIfNotExists(name []byte) (*Bucket, error) {
	return t.root.CreateBucketIfNotExists(name)
}

// DeleteBucket deletes the top-level bucket name.
func (t *Tx) DeleteBucket(name []byte) error { return t.root.DeleteBucket(name) }

// ForEach calls fn for each top-level bucket.
func (t *Tx) ForEach(fn func(name []byte, b *Bucket) error) error {
	return t.root.ForEachBucket(func(name []byte) error {
		b := t.root.Bucket(name)
		if b == nil {
			return t.errOr(ErrBucketNotFound)
		}
		return fn(name, b)
	})
}

// DeferSync lets the transaction's commit skip its fdatasync (unless it
// shrinks the file, or the unsynced commits before it have written many
// pages their state still uses: then it syncs as usual). Such a commit is
// atomic and visible at once, but not durable: a crash may lose it and
// the unsynced commits before it, back to the last synced one, and
// nothing else. The next synced commit, or DB.Sync, makes it durable;
// until then, the pages the last durable commit uses are not reused.
// Close syncs.
//
// It is for state that can be rebuilt after a crash, such as the applied
// entries of a replicated log whose entries are durable elsewhere, and
// for batching: many deferred commits, then one synced.
func (t *Tx) DeferSync() { t.deferSync = true }

// SyncDeferred reports whether DeferSync was called.
func (t *Tx) SyncDeferred() bool { return t.deferSync }

// OnCommit registers fn to run after a successful commit.
func (t *Tx) OnCommit(fn func()) { t.commitHandlers = append(t.commitHandlers, fn) }

func (t *Tx) checkWritable() error {
	if t.closed {
		return ErrTxClosed
	}
	if !t.writable {
		return ErrTxNotWritable
	}
	return nil
}

func (t *Tx) newBucket() *Bucket {
	if t.nInline < len(t.inline) {
		t.nInline++
		return &t.inline[t.nInline-1]
	}
	if len(t.slab) == cap(t.slab) {
		// A new slab; buckets handed out from the old one stay valid.
		if t.slab != nil {
			t.oldSlabs = append(t.oldSlabs, t.slab)
		}
		t.slab = make([]Bucket, 0, max(4, 2*cap(t.slab)))
	}
	t.slab = t.slab[:len(t.slab)+1]
	return &t.slab[len(t.slab)-1]
}

// page returns the span of page id in the pinned mapping, or nil after
// recording a corruption error if the id or the header is wrong. The slice
// is valid until the transaction ends.
func (t *Tx) page(id page.Pgid) []byte {
	p, err := page.ReadSpan(t.data, id, t.pageSize, t.meta.HighWater, false)
	if err == nil {
		if w := page.TxidOf(p); w > t.meta.Txid {
			err = page.Corruptf(id, "written by tx %d, after this snapshot's tx %d", w, t.meta.Txid)
		}
	}
	if err != nil {
		t.corrupt(err)
		return nil
	}
	return p
}

// forEachPage calls fn for every page of the subtree rooted at id (not
// nested buckets).
func (t *Tx) forEachPage(id page.Pgid, fn func(p []byte, id page.Pgid)) {
	t.walk(id, 0, func(p []byte, id page.Pgid, depth int) bool { fn(p, id); return true })
}

// walk visits the subtree at id depth first, parents before children.
// fn returns false to skip a page's children.
func (t *Tx) walk(id page.Pgid, depth int, fn func(p []byte, id page.Pgid, depth int) bool) {
	p := t.page(id)
	if p == nil || depth > maxDepth {
		if depth > maxDepth {
			t.corrupt(page.Corruptf(id, "tree deeper than %d levels", maxDepth))
		}
		return
	}
	if !fn(p, id, depth) {
		return
	}
	if page.Flags(p) != page.FlagBranch {
		return
	}
	for i := 0; i < page.Count(p); i++ {
		child, _, ok := page.BranchElem(p, i)
		if !ok {
			t.corrupt(page.Corruptf(id, "branch element %d out of bounds", i))
			return
		}
		t.walk(child, depth+1, fn)
	}
}

// maxDepth bounds the levels of a page tree (a B+tree whose branches hold
// at least two children is far shallower) so that a corrupt file with a
// cycle ends; maxNesting bounds nested buckets the same way.
const (
	maxDepth   = 40
	maxNesting = 1024
)

// free releases the page span p (page id) at commit.
func (t *Tx) free(id page.Pgid, p []byte) {
	t.backend.Free(t.txid(), page.TxidOf(p), id, int(page.Overflow(p))+1)
}

// Rollback ends the transaction, discarding its changes. It returns
// ErrTxClosed if the transaction has already ended.
func (t *Tx) Rollback() error {
	if t.closed {
		return ErrTxClosed
	}
	if t.managed {
		return ErrTxManaged
	}
	t.end(false)
	return nil
}

func (t *Tx) end(committed bool) {
	t.closed = true
	t.backend.End(t, committed)
	t.data = nil
	t.arena.reset()
	// Drop the nodes and values, which handles kept past the end would
	// otherwise hold in memory.
	t.root.release()
	for i := range t.inline[:t.nInline] {
		t.inline[i].release()
	}
	for _, slab := range append(t.oldSlabs, t.slab) {
		for i := range slab {
			slab[i].release()
		}
	}
	t.slab, t.oldSlabs = nil, nil
}

// Commit writes the transaction's changes and makes them durable (unless
// the database runs with NoSync). On error the transaction is rolled back.
func (t *Tx) Commit() error {
	if t.closed {
		return ErrTxClosed
	}
	if t.managed {
		return ErrTxManaged
	}
	return t.commitAndEnd()
}

func (t *Tx) commitAndEnd() error {
	if t.closed {
		return ErrTxClosed
	}
	if !t.writable {
		return ErrTxNotWritable
	}
	if t.err != nil {
		err := t.err
		t.end(false)
		return err
	}
	if err := t.commit(); err != nil {
		t.end(false)
		return err
	}
	t.end(true)
	for _, fn := range t.commitHandlers {
		fn()
	}
	return nil
}
