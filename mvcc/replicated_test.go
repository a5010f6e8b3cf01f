package mvcc

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

// TxnIn applies in the caller's transaction: nothing is visible before
// the commit, everything after; a second TxnIn in the same transaction
// sees the first; a watcher hears the change at the commit.
func TestTxnInCommits(t *testing.T) {
	s, db := openTest(t, "", nil)
	ws := s.NewWatchStream()
	defer ws.Close()
	if _, err := ws.Watch([]byte("a"), nil, 0); err != nil {
		t.Fatal(err)
	}
	err := db.Update(func(tx *quiver.Tx) error {
		if _, err := s.TxnIn(tx, &Txn{Then: []Op{OpPut([]byte("a"), []byte("1"), 0)}}); err != nil {
			return err
		}
		// The second sees the first: the compare holds.
		res, err := s.TxnIn(tx, &Txn{If: []Compare{{Key: []byte("a"), Target: CompareValue, Result: Equal, Value: []byte("1")}},
			Then: []Op{OpPut([]byte("a"), []byte("2"), 0)}})
		if err != nil || !res.Succeeded || res.Rev != 3 {
			t.Errorf("the second TxnIn: %+v, %v", res, err)
		}
		if s.Rev() != 1 {
			t.Errorf("revision %d visible before the commit", s.Rev())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rev() != 3 {
		t.Fatalf("revision %d after the commit, want 3", s.Rev())
	}
	if _, err := s.Compact(2); !errors.Is(err, ErrReplicated) {
		t.Fatalf("Compact of a replicated store: %v, want ErrReplicated", err)
	}
	got := must[*RangeResult](t)(s.Range([]byte("a"), nil, RangeOptions{}))
	if len(got.KVs) != 1 || string(got.KVs[0].Value) != "2" || got.KVs[0].Version != 2 {
		t.Fatalf("a = %+v", got.KVs)
	}
	select {
	case resp := <-ws.Chan():
		if len(resp.Events) != 2 || resp.Revision != 3 {
			t.Fatalf("the watcher heard %+v", resp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher heard nothing")
	}
}

// A TxnIn whose transaction rolls back leaves the store failed until it
// reloads; the reload gives back the committed state.
func TestTxnInRollbackFailsUntilReload(t *testing.T) {
	s, db := openTest(t, "", nil)
	must[int64](t)(s.Put([]byte("a"), []byte("1"), 0))
	errStop := errors.New("stop")
	err := db.Update(func(tx *quiver.Tx) error {
		if _, err := s.TxnIn(tx, &Txn{Then: []Op{OpPut([]byte("a"), []byte("lost"), 0)}}); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatal(err)
	}
	err = db.Update(func(tx *quiver.Tx) error {
		_, err := s.TxnIn(tx, &Txn{Then: []Op{OpPut([]byte("b"), []byte("1"), 0)}})
		return err
	})
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("TxnIn after a rolled back one: %v, want ErrFailed", err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	got := must[*RangeResult](t)(s.Range([]byte("a"), nil, RangeOptions{}))
	if s.Rev() != 2 || len(got.KVs) != 1 || string(got.KVs[0].Value) != "1" {
		t.Fatalf("after Reload: revision %d, a = %+v", s.Rev(), got.KVs)
	}
}

// Reload after the database's contents are replaced by another store's
// (a replica installing a snapshot): the index, revision, compaction and
// HashKV are the other's, and a watcher catches up from the new contents.
func TestReloadAfterRestore(t *testing.T) {
	src, srcDB := openTest(t, "", nil)
	for i := 0; i < 50; i++ {
		must[int64](t)(src.Put([]byte{'k', byte('0' + i%10)}, []byte{byte(i)}, 0))
	}
	<-must[<-chan struct{}](t)(src.Compact(20))
	var image bytes.Buffer
	if err := srcDB.View(func(tx *quiver.Tx) error { _, err := tx.WriteTo(&image); return err }); err != nil {
		t.Fatal(err)
	}
	s, db := openTest(t, "", nil)
	must[int64](t)(s.Put([]byte("old"), []byte("1"), 0))
	ws := s.NewWatchStream()
	defer ws.Close()
	if _, err := ws.Watch([]byte("k5"), nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.Restore(&image, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	wantHash, _, _ := src.HashKV(0)
	hash, _, err := s.HashKV(0)
	if err != nil || hash != wantHash || s.Rev() != src.Rev() || s.CompactRev() != 20 {
		t.Fatalf("after Reload: revision %d, compacted %d, HashKV %08x (%v); the source's %d, 20, %08x", s.Rev(), s.CompactRev(), hash, err, src.Rev(), wantHash)
	}
	if got := must[*RangeResult](t)(s.Range([]byte("old"), nil, RangeOptions{})); len(got.KVs) != 0 {
		t.Fatalf("a key of the replaced contents survived: %+v", got.KVs)
	}
	// The watcher started after revision 2 of the old contents: it
	// catches up from the new ones, which are compacted past it.
	select {
	case resp := <-ws.Chan():
		if resp.CompactRevision != 20 {
			t.Fatalf("the watcher got %+v, want the compacted response", resp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher heard nothing after Reload")
	}
	// Writes go on from the new revision.
	err = db.Update(func(tx *quiver.Tx) error {
		res, err := s.TxnIn(tx, &Txn{Then: []Op{OpPut([]byte("new"), []byte("1"), 0)}})
		if err == nil && res.Rev != src.Rev()+1 {
			t.Errorf("the next revision is %d, want %d", res.Rev, src.Rev()+1)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// CompactIn compacts inside the caller's transaction: reads below the
// revision fail once it commits, the old revisions are deleted, and the
// hash at the revision is the one a store compacted with Compact gives.
func TestCompactIn(t *testing.T) {
	s, db := openTest(t, "", nil)
	ref, _ := openTest(t, "", nil)
	for i := 0; i < 20; i++ {
		k, v := []byte{'k', byte('0' + i%4)}, []byte{byte(i)}
		must[int64](t)(ref.Put(k, v, 0))
		ok(t, db.Update(func(tx *quiver.Tx) error {
			_, err := s.TxnIn(tx, &Txn{Then: []Op{OpPut(k, v, 0)}})
			return err
		}))
	}
	var done <-chan struct{}
	ok(t, db.Update(func(tx *quiver.Tx) error {
		var err error
		if _, err = s.CompactIn(tx, 100); !errors.Is(err, ErrFutureRev) {
			t.Errorf("CompactIn past the revision: %v", err)
		}
		done, err = s.CompactIn(tx, 15)
		return err
	}))
	<-done
	<-must[<-chan struct{}](t)(ref.Compact(15))
	if _, err := s.Range([]byte("k0"), nil, RangeOptions{Rev: 10}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("a read below the compaction: %v", err)
	}
	h1, c1, err1 := s.HashKV(0)
	h2, c2, err2 := ref.HashKV(0)
	if err1 != nil || err2 != nil || h1 != h2 || c1 != c2 {
		t.Fatalf("HashKV after CompactIn %08x at %d (%v), after Compact %08x at %d (%v)", h1, c1, err1, h2, c2, err2)
	}
	ok(t, db.Update(func(tx *quiver.Tx) error {
		if _, err := s.CompactIn(tx, 15); !errors.Is(err, ErrCompacted) {
			t.Errorf("CompactIn at the same revision again: %v", err)
		}
		return nil
	}))
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
