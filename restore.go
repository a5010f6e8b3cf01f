package quiver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Restore replaces the database's contents with the quiver file image
// read from r: a hot backup (Tx.WriteTo) of this or another database, or
// the state a replica receives from its leader. The switch is atomic and
// follows DB.Compact's:
//
//  1. the image is written to PATH.restore (next to the database) and
//     synced;
//  2. it is opened as a database, which verifies its meta and commit
//     record, and checked whole (Tx.Check): a damaged or truncated image
//     is refused with an error that matches ErrCorrupt, and the database
//     stays as it was;
//  3. prepare, if not nil, may change the new database first (it runs
//     before the switch, so that a crash cannot leave the image without
//     the change);
//  4. with writers blocked, the new file gets a transaction id above this
//     database's (so that ids only grow), is renamed over PATH, and the
//     directory is synced; the database then continues on it.
//
// Read transactions begun before the switch keep reading the old state
// until they end. A crash before the rename leaves the old file whole (a
// stale PATH.restore is removed by the next Restore); after it, the new
// one. Restore and Compact do not run at the same time.
func (db *DB) Restore(r io.Reader, prepare func(*DB) error) (err error) {
	if db.readOnly {
		return ErrDatabaseReadOnly
	}
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
	path, err := filepath.EvalSymlinks(db.absPath)
	if err != nil {
		return err
	}
	if err := db.usable(path); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".restore"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	adopted := false
	var n *DB
	defer func() {
		if !adopted {
			if n != nil {
				_ = n.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	if err := writeImage(tmp, fi.Mode().Perm(), r); err != nil {
		return fmt.Errorf("quiver: Restore: writing %s: %w", tmp, err)
	}
	if err := sameOwnerAndMode(tmp, fi); err != nil {
		return err
	}
	o := db.opts
	o.ReadOnly, o.Timeout, o.NoSync = false, 0, false
	if n, err = Open(tmp, fi.Mode().Perm(), &o); err != nil {
		return fmt.Errorf("quiver: Restore: the image does not open: %w", err)
	}
	if n.pageSize != db.pageSize {
		return fmt.Errorf("quiver: Restore: the image has %d-byte pages, the database %d-byte ones", n.pageSize, db.pageSize)
	}
	if err := n.View(func(tx *Tx) error {
		var first error
		for cerr := range tx.Check() {
			if first == nil {
				first = cerr
			}
		}
		return first
	}); err != nil {
		if !IsCorruption(err) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return fmt.Errorf("quiver: Restore: the image fails its check: %w", err)
	}
	if prepare != nil {
		if err := prepare(n); err != nil {
			return err
		}
	}

	var release func()
	defer func() {
		if release != nil {
			release()
		}
	}()
	db.writer.Lock()
	defer db.writer.Unlock()
	if err := db.openForWrites(); err != nil {
		return err
	}
	// Transaction ids continue from this database's, from a durable
	// state of the copy (prepare's last commit may have deferred its
	// sync).
	if err := n.syncUnsynced(); err != nil {
		return err
	}
	n.continueTxids(db.snap.Load().meta.Txid)
	if err := n.Update(func(*Tx) error { return nil }); err != nil {
		return err
	}
	adopted, release, err = db.switchTo(n, tmp, path)
	if err != nil {
		return fmt.Errorf("quiver: Restore: %w", err)
	}
	return nil
}

// writeImage writes r to a new file at path and syncs it.
func writeImage(path string, mode os.FileMode, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(f, r, make([]byte, 1<<20))
	if err == nil && n == 0 {
		// Open would make an empty file a new database.
		err = fmt.Errorf("%w: the image is empty", ErrInvalid)
	}
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
