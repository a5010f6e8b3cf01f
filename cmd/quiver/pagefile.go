package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mmap"
	"github.com/quiverdb/quiver/page"
)

// pageFile reads a database file's pages below the engine's API, for the
// commands that show the format itself (info, stats, pages, page, dump).
// It reads through a descriptor of its own with pread, never through a
// mapping, so a page that is not where the meta says cannot fault.
type pageFile struct {
	f        *os.File
	size     int64
	pageSize int
	// meta is the state read: the one the engine opened, or for a file
	// the engine refuses (openPageFileRaw) the newest meta that decodes.
	meta page.Meta
	// slot is the meta page meta was read from (not always Txid%2: a
	// commit after one that deferred its sync takes that one's slot).
	slot page.Pgid
	// unlock releases the lock of a raw open; nil otherwise.
	unlock func()
}

// withPages opens the database at path read-only and calls fn with it and
// a pageFile of the state it opened. The database stays open, and so its
// shared lock held, while fn runs: no writer can change the file.
func withPages(path string, timeout time.Duration, fn func(db *quiver.DB, pf *pageFile) error) error {
	db, err := openRead(path, timeout)
	if err != nil {
		return err
	}
	defer db.Close()
	var m page.Meta
	if err := db.View(func(t *quiver.Tx) error { m = t.Meta(); return nil }); err != nil {
		return err
	}
	pf, err := newPageFile(path, m)
	if err != nil {
		return err
	}
	defer pf.Close()
	return fn(db, pf)
}

func newPageFile(path string, m page.Meta) (*pageFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	pf := &pageFile{f: f, size: fi.Size(), pageSize: int(m.PageSize), meta: m, slot: 1}
	buf := make([]byte, page.MetaEnd)
	if _, err := f.ReadAt(buf, 0); err == nil {
		if m0, err := page.DecodeMeta(buf, 0); err == nil && m0.Txid == m.Txid {
			pf.slot = 0
		}
	}
	return pf, nil
}

// openPageFileRaw opens a file that quiver.Open refuses as damaged, for
// page and dump, which exist to look at such files. It takes the shared
// lock itself and picks the newest meta page that decodes; a file where
// none does is not readable as pages at all.
func openPageFileRaw(path string, timeout time.Duration) (*pageFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := mmap.Lock(f.Fd(), false, timeout); err != nil {
		f.Close()
		return nil, describeOpenError(path, err, timeout)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = mmap.Unlock(f.Fd())
		f.Close()
		return nil, err
	}
	pf := &pageFile{f: f, size: fi.Size(), unlock: func() { _ = mmap.Unlock(f.Fd()) }}
	var best *page.Meta
	var errs []error
	buf := make([]byte, page.MetaEnd)
	try := func(off int64, id page.Pgid) *page.Meta {
		if _, err := f.ReadAt(buf, off); err != nil {
			errs = append(errs, fmt.Errorf("meta page %d: %w", id, err))
			return nil
		}
		m, err := page.DecodeMeta(buf, id)
		if err != nil {
			errs = append(errs, err)
		}
		return m
	}
	cands := []*page.Meta{try(0, 0)}
	if cands[0] != nil {
		cands = append(cands, try(int64(cands[0].PageSize), 1))
	} else {
		// Meta 0 is unreadable: look for meta 1 at each page size.
		for ps := page.MinPageSize; ps <= page.MaxPageSize; ps *= 2 {
			if m := try(int64(ps), 1); m != nil && int(m.PageSize) == ps {
				cands = append(cands, m)
				break
			}
		}
	}
	for i, m := range cands {
		if m != nil && (best == nil || m.Txid > best.Txid) {
			best, pf.slot = m, page.Pgid(i)
		}
	}
	if best == nil {
		pf.Close()
		return nil, fmt.Errorf("%s: no meta page decodes: %w", path, errors.Join(errs...))
	}
	pf.meta, pf.pageSize = *best, int(best.PageSize)
	return pf, nil
}

func (pf *pageFile) Close() error {
	if pf.unlock != nil {
		pf.unlock()
	}
	return pf.f.Close()
}

// filePages returns the number of whole pages in the file.
func (pf *pageFile) filePages() page.Pgid {
	return page.Pgid(pf.size / int64(pf.pageSize))
}

// raw reads n pages at id as they are, unverified. At the end of the file
// it returns what there is: fewer pages, or part of one.
func (pf *pageFile) raw(id page.Pgid, n uint64) ([]byte, error) {
	ps := uint64(pf.pageSize)
	size := uint64(pf.size)
	if uint64(id) >= size/ps+1 || uint64(id)*ps >= size {
		return nil, fmt.Errorf("page %d is beyond the end of the file (%d bytes, %d pages)", id, size, pf.filePages())
	}
	off := uint64(id) * ps
	b := make([]byte, min(n*ps, size-off))
	k, err := pf.f.ReadAt(b, int64(off))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

// span reads and verifies the page span at id of the state read: the
// page names itself, its overflow stays below the high water mark and its
// checksum matches. It is the read function page.FreeSet wants.
func (pf *pageFile) span(id page.Pgid) ([]byte, error) {
	hw := pf.meta.HighWater
	if id < 2 || id >= hw {
		return nil, page.Corruptf(id, "page id out of range (high water %d)", hw)
	}
	p, err := pf.raw(id, 1)
	if err != nil {
		return nil, err
	}
	if len(p) < pf.pageSize {
		return nil, page.Corruptf(id, "cut short by the end of the file")
	}
	if err := page.CheckHeader(p, id, pf.pageSize); err != nil {
		return nil, err
	}
	ov := uint64(page.Overflow(p))
	if uint64(id)+ov >= uint64(hw) {
		return nil, page.Corruptf(id, "overflow of %d pages runs past the high water mark %d", ov, hw)
	}
	if ov > 0 {
		if p, err = pf.raw(id, ov+1); err != nil {
			return nil, err
		}
		if len(p) < int(ov+1)*pf.pageSize {
			return nil, page.Corruptf(id, "overflow cut short by the end of the file")
		}
	}
	if err := page.Verify(p, id, pf.pageSize); err != nil {
		return nil, err
	}
	return p, nil
}

// openForPages opens path for page and dump: through the engine when it
// opens the file, else, when the engine refuses it as damaged, raw
// (openPageFileRaw) with a warning on stderr, since looking at a damaged
// file's pages is what those commands are for.
func openForPages(stderr io.Writer, path string, timeout time.Duration) (*pageFile, func(), error) {
	db, err := openRead(path, timeout)
	if err == nil {
		var m page.Meta
		if err := db.View(func(t *quiver.Tx) error { m = t.Meta(); return nil }); err != nil {
			db.Close()
			return nil, nil, err
		}
		pf, err := newPageFile(path, m)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return pf, func() { pf.Close(); db.Close() }, nil
	}
	if !quiver.IsCorruption(err) {
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "warning: %s; reading its pages as they are\n", oneLine(err.Error()))
	pf, err := openPageFileRaw(path, timeout)
	if err != nil {
		return nil, nil, err
	}
	return pf, func() { pf.Close() }, nil
}

// parsePageIDs reads page id arguments.
func parsePageIDs(args []string) ([]page.Pgid, error) {
	ids := make([]page.Pgid, len(args))
	for i, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, usagef("invalid page id %q", a)
		}
		ids[i] = page.Pgid(n)
	}
	return ids, nil
}
