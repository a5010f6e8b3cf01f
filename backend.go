package quiver

import (
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// The database as its transactions see it (tx.Backend): pages from the
// freelist or the end of the file, scratch to encode pages into, pins on
// snapshots and the end of a transaction. The commit itself is in
// commit.go, the freelist's persistence in persist.go and the file's
// writes in write.go.

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
		if st := t.Stats(); st.CursorCount != 0 {
			db.txStats.IncCursorCount(st.CursorCount)
		}
		return
	}
	if !committed {
		// A rolled-back write counts its cursors, as in bbolt.
		db.txStats.IncCursorCount(t.Stats().CursorCount)
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
