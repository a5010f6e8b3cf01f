package mvcc

import (
	"errors"
	"testing"
	"time"
)

// TestCompactionAppliedBeforeCommit: a replicated store's writer (as
// raftadapter's apply batch) may apply a put and a compaction at its
// revision in one transaction that commits later. Reads of the latest
// revision meanwhile must not fail as compacted: they wait for the commit
// and read the new state.
func TestCompactionAppliedBeforeCommit(t *testing.T) {
	s, db := openTest(t, "", nil)
	must[*RangeResult](t)(s.Range([]byte("a"), nil, RangeOptions{}))
	tx, err := db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	// Ended before the store closes (cleanups run last first), whatever
	// fails: the close would wait for the writer.
	t.Cleanup(func() { _ = tx.Rollback() })
	res, err := s.TxnIn(tx, &Txn{Then: []Op{OpPut([]byte("a"), []byte("1"), 0)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompactIn(tx, res.Rev); err != nil {
		t.Fatal(err)
	}
	type read struct {
		r   *RangeResult
		h   uint32
		err error
	}
	ranged, hashed := make(chan read, 1), make(chan read, 1)
	go func() {
		r, err := s.Range([]byte("a"), nil, RangeOptions{})
		ranged <- read{r: r, err: err}
	}()
	go func() {
		h, _, err := s.HashKV(0)
		hashed <- read{h: h, err: err}
	}()
	select {
	case r := <-ranged:
		t.Fatalf("a latest-revision read returned before the compaction's revision committed: %v, %v", r.r, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-ranged
	if r.err != nil || len(r.r.KVs) != 1 || string(r.r.KVs[0].Value) != "1" || r.r.Rev != res.Rev {
		t.Fatalf("after the commit: %+v, %v; want a=1 at revision %d", r.r, r.err, res.Rev)
	}
	if h := <-hashed; h.err != nil {
		t.Fatalf("HashKV(0) after the commit: %v", h.err)
	}
	// A store whose transaction never commits: the read gives up.
	tx2, err := db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx2.Rollback() })
	res, err = s.TxnIn(tx2, &Txn{Then: []Op{OpPut([]byte("a"), []byte("2"), 0)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompactIn(tx2, res.Rev); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Range([]byte("a"), nil, RangeOptions{}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("with the compaction never committed: %v, want ErrCompacted", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the read waited %v", d)
	}
}
