package fuzz_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mmap"
)

// faultyFile fails the nth write, truncate, sync or map (counting from 0)
// with ENOSPC, EIO or ENOMEM, once or from then on.
type faultyFile struct {
	quiver.File
	n       int64
	count   *atomic.Int64
	forever bool
	hit     *atomic.Bool
	kind    *atomic.Value // the kind of the first failed operation
}

func (f faultyFile) fail(kind string, err error) error {
	i := f.count.Add(1) - 1
	if i == f.n || (f.forever && i > f.n) {
		if !f.hit.Swap(true) {
			f.kind.Store(kind)
		}
		return err
	}
	return nil
}

func (f faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fail("write", syscall.ENOSPC); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f faultyFile) Truncate(size int64) error {
	if err := f.fail("truncate", syscall.ENOSPC); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f faultyFile) Map(size int) ([]byte, error) {
	if err := f.fail("map", syscall.ENOMEM); err != nil {
		return nil, err
	}
	return mmap.Map(f.Fd(), size, 0)
}

func (f faultyFile) Sync() error {
	if err := f.fail("sync", syscall.EIO); err != nil {
		return err
	}
	return f.File.Sync()
}

// TestIOFaults fails the Nth I/O operation of a workload, for every N until
// the workload completes untouched, once and forever: the error must reach
// the caller, the database must refuse writes after a failed commit, and a
// reopened database must pass Check and hold every acknowledged commit.
func TestIOFaults(t *testing.T) {
	for _, forever := range []bool{false, true} {
		for _, ft := range quiver.FreelistTypes() {
			t.Run(fmt.Sprintf("%s/forever=%v", ft, forever), func(t *testing.T) {
				points := 0
				step := int64(1)
				if testing.Short() {
					step = 7
				}
				for n := int64(0); ; n += step {
					if done := faultRun(t, ft, n, forever); done {
						break
					}
					points++
				}
				t.Logf("%d fault points", points)
			})
		}
	}
}

// faultRun runs the workload with operation n failing and reports whether
// the workload finished without reaching n.
func faultRun(t *testing.T, ft quiver.FreelistType, n int64, forever bool) bool {
	path := filepath.Join(t.TempDir(), "db")
	var count atomic.Int64
	var hit atomic.Bool
	var kind atomic.Value
	opts := &quiver.Options{FreelistType: ft, PageSize: 1024, AllocSize: 32 << 10, OpenFile: func(p string, flag int, mode os.FileMode) (quiver.File, error) {
		f, err := quiver.OpenOSFile(p, flag, mode)
		if err != nil {
			return nil, err
		}
		return faultyFile{File: f, n: n, count: &count, forever: forever, hit: &hit, kind: &kind}, nil
	}}
	db, err := quiver.Open(path, 0o600, opts)
	if err != nil {
		if !hit.Load() {
			t.Fatalf("fault %d: open failed without a fault: %v", n, err)
		}
		return false // nothing was acknowledged
	}
	// The workload and its model: the state after each commit.
	type put struct{ k, v string }
	commit := func(c int) (puts []put, del string) {
		for i := 0; i < 40; i++ {
			v := fmt.Sprintf("c%d-%d", c, i)
			if i%13 == 0 {
				v = string(make([]byte, 3000)) // overflow pages
			}
			puts = append(puts, put{fmt.Sprintf("k%03d", (c*17+i*7)%300), v})
		}
		if c%5 == 4 {
			del = fmt.Sprintf("k%03d", c)
		}
		return puts, del
	}
	const commits = 25
	states := []map[string]string{{}}
	for c := 0; c < commits; c++ {
		// In dbtest.Flatten's form: bucket b, its sequence, its keys.
		next := map[string]string{"\x00b/": "bucket", "\x00b/#seq": "0"}
		for k, v := range states[c] {
			next[k] = v
		}
		puts, del := commit(c)
		for _, p := range puts {
			next["\x00b/\x00"+p.k] = p.v
		}
		if del != "" {
			delete(next, "\x00b/\x00"+del)
		}
		states = append(states, next)
	}
	acked := 0
	failed := false
	for c := 0; c < commits && !failed; c++ {
		err := db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			puts, del := commit(c)
			for _, p := range puts {
				if err := b.Put([]byte(p.k), []byte(p.v)); err != nil {
					return err
				}
			}
			if del != "" {
				return b.Delete([]byte(del))
			}
			return nil
		})
		switch {
		case err == nil:
			acked = c + 1
		case !hit.Load():
			t.Fatalf("fault %d: commit failed without a fault: %v", n, err)
		default:
			failed = true
			// After a failed write or sync the database refuses writes
			// until reopened; a failed growth (truncate) wrote nothing and
			// only fails its own commit.
			err2 := db.Update(func(tx *quiver.Tx) error { return nil })
			k := kind.Load()
			if (k == "write" || k == "sync") && !errors.Is(err2, quiver.ErrFailed) {
				t.Fatalf("fault %d: after a failed %s: %v, want ErrFailed", n, k, err2)
			}
			if (k == "truncate" || k == "map") && !forever && err2 != nil {
				t.Fatalf("fault %d: a failed %s must fail only its own commit: %v", n, k, err2)
			}
		}
	}
	_ = db.Close()
	if !hit.Load() && !failed {
		return true
	}
	// Reopen without faults: every acknowledged commit is there.
	db, err = quiver.Open(path, 0o600, &quiver.Options{FreelistType: ft})
	if err != nil {
		t.Fatalf("fault %d: reopen: %v", n, err)
	}
	defer db.Close()
	err = db.View(func(tx *quiver.Tx) error {
		for err := range tx.Check() {
			t.Errorf("fault %d: check: %v", n, err)
		}
		got, err := state(tx)
		if err != nil {
			return err
		}
		// The acknowledged state, or (a failed sync may still have
		// reached the disk) the one after it.
		for j := acked; j < len(states) && j <= acked+1; j++ {
			if sameState(got, states[j]) {
				return nil
			}
		}
		return fmt.Errorf("state matches neither commit %d nor the next (%d keys)", acked, len(got))
	})
	if err != nil {
		t.Fatalf("fault %d: %v", n, err)
	}
	return false
}
