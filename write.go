package quiver

import (
	"fmt"
	"unsafe"

	"github.com/quiverdb/quiver/mmap"
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// The file's side of a commit: growing the file ahead of the writes,
// coalescing the commit's runs of pages into few pwrite calls, and the
// size a shrinking file keeps.

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

// grow makes the file at least size bytes, in steps that double small files
// and add AllocSize to large ones, so that most commits overwrite. The step
// is the one for the size needed, not for the file's current size: one
// commit that grows a small file to many megabytes leaves room for the next
// ones, as a file grown by many commits would have.
func (db *DB) grow(size int64) error {
	if size <= db.fileSize {
		return nil
	}
	limit := int64(db.MaxSize)
	if limit > 0 && size > limit {
		return fmt.Errorf("%w (%d bytes needed, MaxSize %d)", ErrMaxSizeReached, size, limit)
	}
	step := db.growStep(size)
	target := db.fileSize
	for target < size {
		target += step
	}
	if limit > 0 && target > limit {
		target = max(size, limit/int64(db.pageSize)*int64(db.pageSize))
	}
	if err := db.file.Truncate(target); err != nil {
		return err
	}
	// With Mlock, the extension is locked in the newest mapping if it
	// covers it; a commit that outgrows the mapping maps the file anew,
	// and mapFile locks the whole file in that mapping.
	if db.opts.Mlock {
		if data := db.snap.Load().epoch.Data(); int64(len(data)) > db.fileSize {
			if err := mmap.Mlock(data[db.fileSize:min(int64(len(data)), target)]); err != nil {
				_ = db.file.Truncate(db.fileSize)
				return err
			}
		}
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
