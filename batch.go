package quiver

import (
	"errors"
	"sync"
	"time"
)

// Batch runs fn as part of a group of concurrent Batch calls that commit in
// one write transaction, so that many goroutines writing small changes pay
// for one sync. A group commits when it holds MaxBatchSize calls or
// MaxBatchDelay after its first call.
//
// fn may run more than once: if any fn of a group returns an error, the
// group's transaction is rolled back, the failing fn's error is returned to
// its caller alone, and the rest run again. fn must therefore be
// idempotent, and only its error (not its side effects outside the
// transaction) is reported. Batch is useful only when called from many
// goroutines.
func (db *DB) Batch(fn func(*Tx) error) error {
	errc := make(chan error, 1)
	db.batchMu.Lock()
	if db.batch == nil || len(db.batch.calls) >= db.MaxBatchSize {
		db.batch = &batch{db: db}
		db.batch.timer = time.AfterFunc(db.MaxBatchDelay, db.batch.trigger)
	}
	b := db.batch
	b.calls = append(b.calls, call{fn: fn, err: errc})
	if len(b.calls) >= db.MaxBatchSize {
		// Full: run it now, in this goroutine's stead.
		go b.trigger()
	}
	db.batchMu.Unlock()
	err := <-errc
	if errors.Is(err, errRetryAlone) {
		err = db.Update(fn)
	}
	return err
}

type call struct {
	fn  func(*Tx) error
	err chan<- error
}

type batch struct {
	db    *DB
	timer *time.Timer
	once  sync.Once
	calls []call
}

// errRetryAlone tells a caller whose fn failed inside a group to run it in
// a transaction of its own, to learn its own error.
var errRetryAlone = errors.New("quiver: batch function failed; retrying alone")

func (b *batch) trigger() { b.once.Do(b.run) }

func (b *batch) run() {
	b.db.batchMu.Lock()
	b.timer.Stop()
	if b.db.batch == b {
		b.db.batch = nil
	}
	b.db.batchMu.Unlock()

	calls := b.calls
	for len(calls) > 0 {
		failed := -1
		err := b.db.Update(func(t *Tx) error {
			for i, c := range calls {
				if err := safeCall(c.fn, t); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			// Send the failing call to run alone; the others retry.
			calls[failed].err <- errRetryAlone
			calls = append(calls[:failed:failed], calls[failed+1:]...)
			continue
		}
		for _, c := range calls {
			c.err <- err
		}
		return
	}
}

// safeCall runs fn, turning a panic into an error so that one caller's
// panic does not take down the others' group.
func safeCall(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicked{p}
		}
	}()
	return fn(t)
}

type panicked struct{ reason any }

func (p *panicked) Error() string { return "quiver: batch function panicked" }
