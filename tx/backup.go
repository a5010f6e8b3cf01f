package tx

import (
	"fmt"
	"io"
	"os"

	"github.com/quiverdb/quiver/page"
)

// WriteTo writes a consistent copy of the database as of the snapshot
// this transaction started from to w: a complete quiver file that opens as
// that snapshot. It may run in a read transaction while writers continue
// (a hot backup). In a write transaction it copies the last committed
// state, without the transaction's own uncommitted changes (as bbolt does).
//
// Only the pages the snapshot uses are read: the tree, the freelist
// checkpoint and the chained commit records. Its free pages are written
// as zeros. A concurrent writer may reuse them, and may truncate the file
// below the snapshot's high-water mark when its end is free, so reading
// them could return another commit's bytes or fault.
//
// WriteFlag is not used: bbolt opens the file with those flags (e.g.
// O_DIRECT) to read it for WriteTo; quiver copies from its mapping.
func (t *Tx) WriteTo(w io.Writer) (int64, error) {
	if t.closed {
		return 0, ErrTxClosed
	}
	free, _, err := page.FreeSet(&t.meta, t.readSpan)
	if err != nil {
		return 0, err
	}
	ps := t.pageSize
	hw := t.meta.HighWater
	// Both meta slots hold this snapshot's meta.
	metas := make([]byte, 2*ps)
	for slot := 0; slot < 2; slot++ {
		page.PutMeta(metas[slot*ps:], page.Pgid(slot), &t.meta)
	}
	n, err := w.Write(metas)
	total := int64(n)
	if err != nil {
		return total, err
	}
	const chunk = 1 << 20
	var zeros []byte
	// write copies pages [from, to) from the mapping, or writes zeros in
	// their place, in writes of at most chunk bytes.
	write := func(from, to page.Pgid, used bool) error {
		for off, end := int(from)*ps, int(to)*ps; off < end; {
			stop := min(off+chunk, end)
			var b []byte
			if used {
				b = t.data[off:stop]
			} else {
				if zeros == nil {
					zeros = make([]byte, chunk)
				}
				b = zeros[:stop-off]
			}
			n, err := w.Write(b)
			total += int64(n)
			if err != nil {
				return err
			}
			off = stop
		}
		return nil
	}
	next := page.Pgid(2) // the first page not written yet
	for _, s := range free {
		end := s.ID + page.Pgid(s.N)
		if s.ID < next || end > hw || end < s.ID {
			return total, page.Corruptf(t.meta.Freelist, "free span %d+%d is out of order or past the high water mark %d", s.ID, s.N, hw)
		}
		if err := write(next, s.ID, true); err != nil {
			return total, err
		}
		if err := write(s.ID, end, false); err != nil {
			return total, err
		}
		next = end
	}
	if err := write(next, hw, true); err != nil {
		return total, err
	}
	return total, nil
}

// readSpan returns the verified span of page id (header, overflow within
// the high-water mark, checksum) for page.FreeSet.
func (t *Tx) readSpan(id page.Pgid) ([]byte, error) {
	return page.ReadSpan(t.data, id, t.pageSize, t.meta.HighWater, true)
}

// CopyFile writes the snapshot to a new file at path (see WriteTo) and
// syncs it.
func (t *Tx) CopyFile(path string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := t.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// PageInfo describes a page, as Tx.Page returns it.
type PageInfo struct {
	ID            int
	Type          string // branch, leaf, meta, freelist, commit or free
	Count         int    // elements
	OverflowCount int    // pages after the first in its span
}

// Page describes page id as this transaction sees it: a free page as
// "free", a page past the end of the data as nil (as bbolt does).
func (t *Tx) Page(id int) (*PageInfo, error) {
	if t.closed {
		return nil, ErrTxClosed
	}
	if id < 0 {
		return nil, fmt.Errorf("quiver: page %d: negative id", id)
	}
	if page.Pgid(id) >= t.meta.HighWater {
		return nil, nil
	}
	if id < 2 { // the two meta pages
		return &PageInfo{ID: id, Type: page.FlagName(page.FlagMeta)}, nil
	}
	free, _, err := page.FreeSet(&t.meta, t.readSpan)
	if err != nil {
		return nil, err
	}
	for _, s := range free {
		if page.Pgid(id) >= s.ID && page.Pgid(id) < s.ID+page.Pgid(s.N) {
			return &PageInfo{ID: id, Type: "free"}, nil
		}
	}
	p, err := t.readSpan(page.Pgid(id))
	if err != nil {
		return nil, err
	}
	return &PageInfo{ID: id, Type: page.FlagName(page.Flags(p)), Count: page.Count(p), OverflowCount: int(page.Overflow(p))}, nil
}

// Copy writes the database to w, as WriteTo does.
//
// Deprecated: use WriteTo, as bbolt says of its Copy.
func (t *Tx) Copy(w io.Writer) error {
	_, err := t.WriteTo(w)
	return err
}
