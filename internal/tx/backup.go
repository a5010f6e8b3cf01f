package tx

import (
	"io"
	"os"

	"github.com/quiverdb/quiver/page"
)

// WriteTo writes a consistent copy of the database as of the snapshot
// this transaction started from to w: a complete quiver file that opens as
// that snapshot. It may run in a read transaction while writers continue
// (a hot backup). In a write transaction it copies the last committed
// state, without the transaction's own uncommitted changes (as bbolt does).
func (t *Tx) WriteTo(w io.Writer) (int64, error) {
	if t.closed {
		return 0, ErrTxClosed
	}
	ps := t.pageSize
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
	// The rest straight from the mapping, in large writes. Free pages may
	// be changing under a concurrent writer; nothing refers to them.
	const chunk = 1 << 20
	end := int(t.meta.HighWater) * ps
	for off := 2 * ps; off < end; off += chunk {
		stop := off + chunk
		if stop > end {
			stop = end
		}
		n, err := w.Write(t.data[off:stop])
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
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
