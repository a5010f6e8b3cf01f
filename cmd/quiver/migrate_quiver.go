package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
)

// quiver's side of import and export. quiver reports a damaged file as an
// error rather than panicking, so nothing here recovers: a panic is a bug,
// which run reports as one.

type quiverFormat struct{}

var _ format = quiverFormat{}

func (quiverFormat) String() string { return "quiver" }

func (quiverFormat) pageSizeOK(n int) bool { return page.ValidPageSize(n) }

// quiverStore is a quiver database opened read-only.
type quiverStore struct{ db *quiver.DB }

func (quiverFormat) open(path string, timeout time.Duration) (store, error) {
	// quiver would say "bad magic" of a bbolt file.
	if kind, _ := sniff(path); kind == kindBbolt {
		return nil, fmt.Errorf("%s: a bbolt database, not a quiver one (quiver import --from-bbolt converts it)", path)
	}
	db, err := openRead(path, timeout)
	if err != nil {
		return nil, err
	}
	return &quiverStore{db}, nil
}

func (s *quiverStore) pageSize() int {
	var n int
	_ = s.db.View(func(t *quiver.Tx) error { n = int(t.Meta().PageSize); return nil })
	return n
}

func (s *quiverStore) read(fn func(walk func(visitor) error) error) error {
	// View returns a corruption a cursor met, which stops the walk
	// early: the digest of a partial walk is never compared.
	return s.db.View(func(t *quiver.Tx) error {
		return fn(func(v visitor) error {
			return walkTx[*quiver.Tx, *quiver.Bucket, *quiver.Cursor](t, v)
		})
	})
}

func (s *quiverStore) check() error {
	return s.db.View(func(t *quiver.Tx) error {
		var problems []error
		for err := range t.Check() {
			problems = append(problems, err)
		}
		if len(problems) > 0 {
			return fmt.Errorf("%d problems: %w", len(problems), errors.Join(problems...))
		}
		return nil
	})
}

func (s *quiverStore) close() error { return s.db.Close() }

// quiverTarget is a new quiver database being written.
type quiverTarget struct {
	db     *quiver.DB
	path   string
	noSync bool
}

func (quiverFormat) create(path string, pageSize int, o *migrateOptions) (target, error) {
	db, err := quiver.Open(path, 0, &quiver.Options{PageSize: pageSize, NoSync: o.noSync, Timeout: o.timeout})
	if err != nil {
		return nil, describeOpenError(path, err, o.timeout)
	}
	return &quiverTarget{db: db, path: path, noSync: o.noSync}, nil
}

func (t *quiverTarget) begin() (destTx, error) {
	tx, err := t.db.Begin(true)
	if err != nil {
		return nil, err
	}
	return &engineTx[*quiver.Tx, *quiver.Bucket, *quiver.Cursor]{tx: tx}, nil
}

// finish syncs and closes the copy and, as compact does, cuts the room the
// file grew ahead of its high water mark: a migrated file is not about to
// grow.
func (t *quiverTarget) finish() error {
	var size int64
	err := t.db.View(func(tx *quiver.Tx) error { size = tx.Size(); return nil })
	if err == nil && t.noSync {
		err = t.db.Sync()
	}
	if err = errors.Join(err, t.db.Close()); err != nil {
		return err
	}
	return truncateSync(t.path, size)
}

func (t *quiverTarget) abandon() { _ = t.db.Close() }
