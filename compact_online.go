package quiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/quiverdb/quiver/internal/testhook"
	"github.com/quiverdb/quiver/mmap"
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// CompactStats describe an online compaction.
type CompactStats struct {
	OldSize int64 // bytes of the file before
	NewSize int64 // bytes of the file after
	// Rounds is the number of catch-up rounds after the copy, the final
	// one, made with writers blocked, included.
	Rounds int
	// Pause is how long writers were blocked: the final round and the
	// switch to the new file.
	Pause time.Duration
}

// Catch-up rounds run without blocking writers while the last one changed
// more than quiet keys and the rounds still converge (each finding at most
// 3/4 of the changes of the one before), at most maxRounds. Writers that
// keep a steady pace leave each round about what they changed during the
// round before: the final round, with writers blocked, then has as much to
// do. Rounds that grow predict a final round grown by the same ratio.
// Compact goes ahead if that prediction is at most maxFinal keys;
// otherwise it gives up (ErrCompactBusy) rather than block writers for a
// long final round.
type compactLimits struct {
	maxRounds, quiet, maxFinal int
}

var defaultCompactLimits = compactLimits{maxRounds: 16, quiet: 1024, maxFinal: 64 << 10}

// compactLimits returns the limits of db's compactions: the defaults, or
// a test's (internal/testhook).
func (db *DB) compactLimits() compactLimits {
	lim := defaultCompactLimits
	if h := testhook.For(db.absPath); h != nil {
		if h.CompactQuietChanges > 0 {
			lim.quiet = h.CompactQuietChanges
		}
		if h.CompactMaxFinalChanges > 0 {
			lim.maxFinal = h.CompactMaxFinalChanges
		}
	}
	return lim
}

// roundsDone reports whether the catch-up rounds should stop after a round
// that found changes keys (prev: the round before, -1 after the first),
// and, if so, whether the final round may follow (false: ErrCompactBusy).
func (lim compactLimits) roundsDone(rounds, changes, prev int) (done, ok bool) {
	if changes <= lim.quiet {
		return true, true
	}
	converging := prev < 0 || changes*4 <= prev*3
	if converging && rounds < lim.maxRounds {
		return false, false
	}
	final := float64(changes)
	if prev > 0 && changes > prev {
		final *= float64(changes) / float64(prev)
	}
	return true, final <= float64(lim.maxFinal)
}

// Compact rewrites the database into a fresh file and switches to it, so
// that the file holds no free pages: it gives back the space that deletes
// freed inside the file, which the truncation of a free tail after commits
// cannot. Readers and writers keep running meanwhile:
//
//  1. the last committed state is copied into PATH.compact (next to the
//     database) from a read transaction, in write transactions of
//     opts.TxMaxSize bytes;
//  2. what commits changed meanwhile is found by comparing trees (pages
//     written since the copied state; see the tx package's Unchanged) and
//     applied to the copy, in rounds, until a round finds little to do;
//  3. writers are blocked for a last round, the copy is made durable and
//     renamed over PATH, and the directory is synced; the database then
//     continues on the new file. Transaction ids continue from the old
//     file's. The copy's last commit is synced even with NoSync.
//
// Read transactions begun before the switch keep reading the old file's
// snapshot until they end; Close waits for them. A crash or an error before
// the rename leaves the old file as it was (a stale PATH.compact is
// removed by the next Compact); after the rename the new file holds every
// commit. If the context is done before the switch, Compact stops and
// returns its error. Only one Compact runs at a time. The copy gets the
// file's permission bits and, where the process may set them, its owner
// and group.
//
// Compact returns ErrCompactBusy, leaving the database as it was, when
// writers change keys so fast that the final round, with writers blocked,
// would have to apply more than 65,536 key changes (see roundsDone), and
// ErrReplaced when the file at the database's path is no longer the
// database's own (someone moved or replaced it).
func (db *DB) Compact(ctx context.Context, opts *CompactOptions) (st CompactStats, err error) {
	if db.readOnly {
		return st, ErrDatabaseReadOnly
	}
	if opts == nil {
		opts = &CompactOptions{}
	}
	if opts.TxMaxSize < 0 {
		return st, fmt.Errorf("quiver: Compact: negative TxMaxSize %d", opts.TxMaxSize)
	}
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
	// Through a symbolic link, the file itself is replaced, not the link.
	path, err := filepath.EvalSymlinks(db.absPath)
	if err != nil {
		return st, err
	}
	if err := db.usable(path); err != nil {
		return st, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return st, err
	}
	st.OldSize = fi.Size()
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	o := db.opts
	o.PageSize, o.NoSync, o.ReadOnly, o.Timeout = db.pageSize, true, false, 0
	n, err := Open(tmp, fi.Mode().Perm(), &o)
	if err == nil {
		err = sameOwnerAndMode(tmp, fi)
	}
	if err != nil {
		if n != nil {
			_ = n.Close()
		}
		_ = os.Remove(tmp)
		return st, fmt.Errorf("quiver: Compact: creating %s: %w", tmp, err)
	}
	adopted := false
	defer func() {
		if !adopted {
			_ = n.Close()
			_ = os.Remove(tmp)
		}
	}()
	db.hook("copy")
	var since page.Txid
	err = db.View(func(t *Tx) error {
		since = t.Meta().Txid
		c := &copier{ctx: ctx, src: db, dst: n, max: opts.TxMaxSize, progress: opts.Progress}
		return c.run(t)
	})
	if err != nil {
		return st, err
	}
	// Catch up while writers run until a round finds little to do. The
	// copy's bulk is synced in between, so that the last round, with
	// writers blocked, syncs only what it writes.
	prev := -1
	lim := db.compactLimits()
	for synced := false; ; {
		db.hook("round")
		if err := ctx.Err(); err != nil {
			return st, err
		}
		changes, next, err := db.catchUp(n, since, false)
		if err != nil {
			return st, err
		}
		st.Rounds++
		since = next
		done, ok := lim.roundsDone(st.Rounds, changes, prev)
		prev = changes
		if !done {
			continue
		}
		if !ok {
			return st, ErrCompactBusy
		}
		if synced {
			break
		}
		if err := n.Sync(); err != nil {
			return st, err
		}
		synced = true
	}

	db.hook("final")
	var release func() // what the switch leaves to do once writers run again
	defer func() {
		if release != nil {
			release()
		}
	}()
	db.writer.Lock()
	defer db.writer.Unlock()
	start := time.Now()
	defer func() { st.Pause = time.Since(start) }()
	if err := db.openForWrites(); err != nil {
		return st, err
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	// The last round's commit is the copy's durable one, with a txid
	// above the old file's.
	if err := n.syncUnsynced(); err != nil {
		return st, err
	}
	n.continueTxids(db.snap.Load().meta.Txid)
	// Synced even with NoSync: after the rename, the copy is the
	// database, and an unsynced one could be lost whole.
	n.NoSync = false
	if _, _, err := db.catchUp(n, since, true); err != nil {
		return st, err
	}
	st.Rounds++
	// The copy grew ahead while it was written; keep one growth step.
	if size := n.keepSize(n.snap.Load().meta.HighWater); size < n.fileSize && n.file.Truncate(size) == nil {
		n.fileSize = size
	}
	adopted, release, err = db.switchTo(n, tmp, path)
	if err != nil {
		return st, fmt.Errorf("quiver: Compact: %w", err)
	}
	db.hook("switched")
	if fi, err := os.Stat(path); err == nil {
		st.NewSize = fi.Size()
	}
	return st, nil
}

// usable checks, with writers blocked (Close takes the writer lock
// before it closes the file), that the database is open, has not failed,
// and that its file is the file at path.
func (db *DB) usable(path string) error {
	db.writer.Lock()
	defer db.writer.Unlock()
	if err := db.openForWrites(); err != nil {
		return err
	}
	return db.isAt(path)
}

// openForWrites reports why the database takes no more commits, if it
// does not: it was closed, or a commit failed. The caller holds db.writer.
func (db *DB) openForWrites() error {
	if db.closed.Load() {
		return ErrDatabaseNotOpen
	}
	if db.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, db.failed)
	}
	return nil
}

// isAt checks that the database's open file is the file at path. The
// caller holds db.writer (db.file changes and closes only under it).
func (db *DB) isAt(path string) error {
	same, err := mmap.IsPath(db.file.Fd(), path)
	if err != nil {
		return err
	}
	if !same {
		return fmt.Errorf("%w: %s", ErrReplaced, path)
	}
	return nil
}

// sameOwnerAndMode gives the file at path the permission bits (which the
// umask may have cut at creation) and, where allowed, the owner and group
// of the file fi describes.
func sameOwnerAndMode(path string, fi os.FileInfo) error {
	if err := os.Chmod(path, fi.Mode().Perm()); err != nil {
		return err
	}
	if uid, gid, ok := fileOwner(fi); ok {
		// Only root may give a file away: otherwise the copy stays the
		// process's, as a file it creates would, and keeps the group if
		// the process belongs to it.
		err := os.Chown(path, uid, gid)
		if errors.Is(err, fs.ErrPermission) {
			err = os.Chown(path, -1, gid)
		}
		if err != nil && !errors.Is(err, fs.ErrPermission) {
			return err
		}
	}
	return nil
}

func (db *DB) hook(stage string) {
	if h := testhook.For(db.absPath); h != nil && h.Compact != nil {
		h.Compact(db.path, stage)
	}
}

// catchUp applies to the copy n what was committed to db after txid since,
// in one write transaction of n (with final, even if nothing was: the
// switch needs the commit), and returns the number of keys and
// buckets it changed and the txid it caught up to.
func (db *DB) catchUp(n *DB, since page.Txid, final bool) (changes int, txid page.Txid, err error) {
	err = db.View(func(src *Tx) error {
		txid = src.Meta().Txid
		if txid == since && !final {
			return nil
		}
		return n.Update(func(dst *Tx) error {
			a := &applier{since: since, c: &copier{ctx: context.Background(), dst: n, tx: dst}}
			if err := a.sync(tx.Root(dst), tx.Root(src)); err != nil {
				return err
			}
			changes = a.changes
			return src.Err()
		})
	})
	return changes, txid, err
}

// applier makes a bucket of the copy equal to its source, given that the
// copy equals the source's state at txid since.
type applier struct {
	since   page.Txid
	c       *copier // copies new buckets into the write transaction
	changes int
}

// sync makes dst equal to src.
func (a *applier) sync(dst, src *Bucket) error {
	if dst.Sequence() != src.Sequence() {
		if err := dst.SetSequence(src.Sequence()); err != nil {
			return err
		}
		a.changes++
	}
	var same [][2][]byte
	if err := tx.Unchanged(src, a.since, func(first, last []byte) {
		same = append(same, [2][]byte{first, last})
	}); err != nil {
		return err
	}
	// Make each gap between unchanged intervals equal.
	var lo []byte
	for _, iv := range same {
		if err := a.syncRange(dst, src, lo, iv[0]); err != nil {
			return err
		}
		lo = iv[1]
	}
	return a.syncRange(dst, src, lo, nil)
}

// syncRange makes the keys of dst strictly between lo and hi equal to
// src's; a nil lo or hi is unbounded.
func (a *applier) syncRange(dst, src *Bucket, lo, hi []byte) error {
	type item struct {
		key, value []byte
		bucket     bool
	}
	var dels, puts []item
	var nested [][]byte
	in := func(k []byte) bool { return k != nil && (hi == nil || bytes.Compare(k, hi) < 0) }
	sc, dc := src.Cursor(), dst.Cursor()
	sk, sv := seekAfter(sc, lo)
	dk, dv := seekAfter(dc, lo)
	for in(sk) || in(dk) {
		cmp := 0
		switch {
		case !in(dk):
			cmp = -1
		case !in(sk):
			cmp = 1
		default:
			cmp = bytes.Compare(sk, dk)
		}
		switch {
		case cmp < 0:
			puts = append(puts, item{sk, sv, subBucket(src, sk, sv) != nil})
			sk, sv = sc.Next()
		case cmp > 0:
			dels = append(dels, item{bytes.Clone(dk), nil, subBucket(dst, dk, dv) != nil})
			dk, dv = dc.Next()
		default:
			sb, db := subBucket(src, sk, sv) != nil, subBucket(dst, dk, dv) != nil
			switch {
			case sb && db:
				nested = append(nested, sk)
			case sb != db:
				dels = append(dels, item{sk, nil, db})
				puts = append(puts, item{sk, sv, sb})
			case !bytes.Equal(sv, dv):
				puts = append(puts, item{sk, sv, false})
			}
			sk, sv = sc.Next()
			dk, dv = dc.Next()
		}
	}
	for _, d := range dels {
		var err error
		if d.bucket {
			err = dst.DeleteBucket(d.key)
		} else {
			err = dst.Delete(d.key)
		}
		if err != nil {
			return err
		}
		a.changes++
	}
	for _, p := range puts {
		a.changes++
		if !p.bucket {
			if err := dst.Put(p.key, nonNil(p.value)); err != nil {
				return err
			}
			continue
		}
		// A new bucket counts as every key it holds: the rounds judge by
		// the changes how much the next one will have to do.
		before := a.c.copied
		child := src.Bucket(p.key)
		if err := a.c.createCopy(dst, child, p.key); err != nil {
			return err
		}
		if err := a.c.copyBucket(child, dst.Bucket(p.key), [][]byte{p.key}, false); err != nil {
			return err
		}
		a.changes += a.c.copied - before - 1
	}
	for _, k := range nested {
		if err := a.sync(dst.Bucket(k), src.Bucket(k)); err != nil {
			return err
		}
	}
	return nil
}

// seekAfter positions c at the first key after lo (nil: the first key).
func seekAfter(c *Cursor, lo []byte) ([]byte, []byte) {
	if lo == nil {
		return c.First()
	}
	k, v := c.Seek(lo)
	if k != nil && bytes.Equal(k, lo) {
		return c.Next()
	}
	return k, v
}

// continueTxids makes n's next commit take a txid above cur, so that
// txids only grow when the database switches to n's file. That commit
// goes to the meta slot n's last commit did not use (slot = txid mod 2),
// as any commit does: that one stays intact while it is written.
func (n *DB) continueTxids(cur page.Txid) {
	if ns := n.snap.Load(); ns.meta.Txid < cur {
		next := cur
		if (next+1)%2 == ns.meta.Txid%2 {
			next++
		}
		ns.meta.Txid = next
	}
}

// switchTo renames tmp, n's durable file, over path and makes the database
// continue on it (Compact's and Restore's switch). Writer lock held.
// adopted reports whether the rename happened; release is adopt's, to
// call once writers run again.
func (db *DB) switchTo(n *DB, tmp, path string) (adopted bool, release func(), err error) {
	if err := db.isAt(path); err != nil {
		return false, nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, nil, err
	}
	release = db.adopt(n)
	if err := syncDirOf(db.file, path); err != nil { // db.file is n's now
		// The rename may not be durable: a crash could bring back the
		// old file without the commits that follow. Refuse them.
		db.failed = err
		return true, release, fmt.Errorf("syncing the directory after the switch: %w", err)
	}
	return true, release, nil
}

// adopt makes the database continue on n's file, which was renamed over
// its path. Writer lock held; n has no transactions and is not used again.
// The returned function releases the old file and the current snapshot's
// reference to its mapping (an munmap that takes milliseconds for a large
// file); call it after unlocking.
func (db *DB) adopt(n *DB) (release func()) {
	old := db.file
	cur := db.snap.Load()
	db.fileMu.Lock()
	db.retired = append(db.retired, db.snaps...)
	db.fileState = n.fileState
	db.snap.Store(n.snap.Load())
	db.fileMu.Unlock()
	db.statsMu.Lock()
	db.stats.FreePageN = n.stats.FreePageN
	db.stats.PendingPageN = n.stats.PendingPageN
	db.stats.FreeAlloc = n.stats.FreeAlloc
	db.stats.FreelistInuse = n.stats.FreelistInuse
	db.statsMu.Unlock()
	n.closed.Store(true)
	n.fileState = fileState{}
	return func() {
		cur.release() // the reference it held as the current snapshot
		db.syncMu.Lock()
		defer db.syncMu.Unlock()
		_ = mmap.Unlock(old.Fd())
		_ = old.Close()
	}
}
