package raftadapter

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func openTestDB(t *testing.T) (*quiver.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func entry(i, term uint64, data string) *pb.Entry {
	typ := pb.EntryType_EntryNormal
	e := &pb.Entry{Index: new(i), Term: new(term), Type: &typ}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

// write runs fn with a Writer in one write transaction of s's database.
func write(t *testing.T, s *Storage, fn func(w *Writer) error) error {
	t.Helper()
	return s.db.Update(func(tx *quiver.Tx) error {
		w, err := s.Writer(tx)
		if err != nil {
			return err
		}
		return fn(w)
	})
}

// sameStorage compares everything raft reads from s and from the model.
func sameStorage(t *testing.T, s *Storage, m *raft.MemoryStorage, r interface{ IntN(int) int }, what string) {
	t.Helper()
	f1, _ := s.FirstIndex()
	f2, _ := m.FirstIndex()
	l1, _ := s.LastIndex()
	l2, _ := m.LastIndex()
	if f1 != f2 || l1 != l2 {
		t.Fatalf("%s: first/last %d/%d, MemoryStorage %d/%d", what, f1, l1, f2, l2)
	}
	for i := f1 - 1; i <= l1+1; i++ {
		t1, e1 := s.Term(i)
		t2, e2 := m.Term(i)
		if t1 != t2 || !errors.Is(e1, e2) && !(e1 == nil && e2 == nil) {
			t.Fatalf("%s: Term(%d) = %d, %v; MemoryStorage %d, %v", what, i, t1, e1, t2, e2)
		}
	}
	for k := 0; k < 8 && l1 >= f1; k++ {
		lo := f1 + uint64(r.IntN(int(l1-f1+1)))
		hi := lo + 1 + uint64(r.IntN(int(l1-lo+1)))
		max := uint64(r.IntN(200))
		if r.IntN(3) == 0 {
			max = math.MaxUint64
		}
		a, e1 := s.Entries(lo, hi, max)
		b, e2 := m.Entries(lo, hi, max)
		if !errors.Is(e1, e2) || len(a) != len(b) {
			t.Fatalf("%s: Entries(%d, %d, %d) = %d entries, %v; MemoryStorage %d, %v", what, lo, hi, max, len(a), e1, len(b), e2)
		}
		for j := range a {
			if !proto.Equal(a[j], b[j]) {
				t.Fatalf("%s: Entries(%d, %d): entry %d differs: %v, MemoryStorage %v", what, lo, hi, j, a[j], b[j])
			}
		}
	}
	h1, _, _ := s.InitialState()
	h2, _, _ := m.InitialState()
	if !raft.IsEmptyHardState(h1) || !raft.IsEmptyHardState(h2) {
		if !proto.Equal(h1, h2) {
			t.Fatalf("%s: HardState %v, MemoryStorage %v", what, h1, h2)
		}
	}
}

// TestStorageMatchesMemoryStorage drives Storage and raft's own
// MemoryStorage with the same random appends (overwriting suffixes),
// hard states, compactions and snapshots, some in one transaction and
// some rolled back, and compares everything raft reads after each step;
// a reopened Storage must read the same. The cache is kept small, so
// that reads go both to memory and to the file.
func TestStorageMatchesMemoryStorage(t *testing.T) {
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	db, path := openTestDB(t)
	s, err := OpenStorage(db, &StorageOptions{CacheBytes: 600})
	if err != nil {
		t.Fatal(err)
	}
	m := raft.NewMemoryStorage()
	term := uint64(1)
	for step := 0; step < 600; step++ {
		first, _ := m.FirstIndex()
		last, _ := m.LastIndex()
		var op string
		var do func(w *Writer) error
		var model func()
		switch k := r.IntN(20); {
		case k < 13: // append, maybe over a suffix
			from := last + 1
			if last >= first && r.IntN(3) == 0 {
				from = first + uint64(r.IntN(int(last-first+1)))
			}
			if r.IntN(4) == 0 {
				term++
			}
			var ents []*pb.Entry
			for i := 0; i < 1+r.IntN(6); i++ {
				ents = append(ents, entry(from+uint64(i), term, fmt.Sprintf("%d-%d-%s", step, i, bytes.Repeat([]byte("x"), r.IntN(80)))))
			}
			op = fmt.Sprintf("append %d..%d", from, from+uint64(len(ents))-1)
			do = func(w *Writer) error { return w.Append(ents) }
			model = func() { _ = m.Append(ents) }
		case k < 16: // hard state
			// No commit index: this log is not raft's, its suffixes are
			// replaced below any commit (OpenStorage checks the commit).
			hs := &pb.HardState{Term: new(term), Vote: new(uint64(r.IntN(3)))}
			op = "hard state"
			do = func(w *Writer) error { return w.SetHardState(hs) }
			model = func() { _ = m.SetHardState(hs) }
		case k < 19: // compact
			if last < first {
				continue
			}
			at := first + uint64(r.IntN(int(last-first+1)))
			op = fmt.Sprintf("compact %d", at)
			do = func(w *Writer) error { return w.Compact(at, &pb.ConfState{Voters: []uint64{1, 2, 3}}) }
			model = func() { _ = m.Compact(at) }
		default: // a snapshot past the log's end
			at := last + 1 + uint64(r.IntN(5))
			term++
			meta := &pb.SnapshotMetadata{Index: new(at), Term: new(term), ConfState: &pb.ConfState{Voters: []uint64{1}}}
			op = fmt.Sprintf("snapshot %d", at)
			do = func(w *Writer) error { return w.ApplySnapshot(meta) }
			model = func() { _ = m.ApplySnapshot(&pb.Snapshot{Metadata: meta}) }
		}
		if r.IntN(10) == 0 { // rolled back: nothing changes
			errRollback := errors.New("rollback")
			if err := write(t, s, func(w *Writer) error {
				if err := do(w); err != nil {
					return err
				}
				return errRollback
			}); !errors.Is(err, errRollback) {
				t.Fatalf("step %d (%s), rolled back: %v", step, op, err)
			}
		} else {
			if err := write(t, s, do); err != nil {
				t.Fatalf("step %d (%s): %v", step, op, err)
			}
			model()
		}
		sameStorage(t, s, m, r, fmt.Sprintf("seed %d step %d (%s)", seed, step, op))
		if s.CacheBytes() > 600+400 {
			t.Fatalf("step %d: %d bytes cached, budget 600", step, s.CacheBytes())
		}
	}
	// A reopened storage reads the same.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s2, err := OpenStorage(db2, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameStorage(t, s2, m, r, "after reopen")
}

// TestStorageCacheIsBounded: entries of 64 KiB, far more than the budget,
// are appended; the cache never holds more than the budget (plus the
// newest entry), and old entries are read back from the file intact.
func TestStorageCacheIsBounded(t *testing.T) {
	db, _ := openTestDB(t)
	const budget = 1 << 20
	s, err := OpenStorage(db, &StorageOptions{CacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("v"), 64<<10)
	for i := uint64(1); i <= 200; i++ {
		e := entry(i, 1, "")
		e.Data = append([]byte(fmt.Sprintf("%04d", i)), big...)
		if err := write(t, s, func(w *Writer) error { return w.Append([]*pb.Entry{e}) }); err != nil {
			t.Fatal(err)
		}
		if n := s.CacheBytes(); n > budget+70<<10 {
			t.Fatalf("after entry %d: %d bytes cached, budget %d", i, n, budget)
		}
	}
	ents, err := s.Entries(1, 201, math.MaxUint64)
	if err != nil || len(ents) != 200 {
		t.Fatalf("Entries(1, 201): %d entries, %v", len(ents), err)
	}
	for i, e := range ents {
		if e.GetIndex() != uint64(i+1) || !bytes.HasPrefix(e.Data, []byte(fmt.Sprintf("%04d", i+1))) || len(e.Data) != 4+len(big) {
			t.Fatalf("entry %d read back wrong: index %d, %d bytes", i+1, e.GetIndex(), len(e.Data))
		}
	}
	// maxSize limits what one call returns, at least one entry.
	if ents, err := s.Entries(1, 201, 100<<10); err != nil || len(ents) != 1 {
		t.Fatalf("Entries with a 100 KiB limit: %d entries, %v", len(ents), err)
	}
}

// TestStorageDamage: damaged stored state gives errors that match
// quiver.ErrCorrupt and name what is damaged, never a panic.
func TestStorageDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(b *quiver.Bucket) error
		want   string
		open   bool // the damage shows at OpenStorage
	}{
		{"garbled entry", func(b *quiver.Bucket) error { return b.Bucket(logBucket).Put(indexKey(3), []byte{9, 9}) }, "log entry 3", false},
		{"truncated entry", func(b *quiver.Bucket) error { return b.Bucket(logBucket).Put(indexKey(4), []byte{entryVersion, 0x80}) }, "log entry 4", false},
		{"missing entry", func(b *quiver.Bucket) error { return b.Bucket(logBucket).Delete(indexKey(5)) }, "log entry 5 is missing", false},
		{"bad hard state", func(b *quiver.Bucket) error { return b.Put(hardStateKey, []byte{0xff, 0xff, 0xff}) }, "HardState", true},
		{"bad snapshot metadata", func(b *quiver.Bucket) error { return b.Put(snapshotKey, []byte{0x0a, 0xff}) }, "snapshot metadata", true},
		{"bad log key", func(b *quiver.Bucket) error { return b.Bucket(logBucket).Put([]byte("xyz"), []byte{1}) }, "8-byte index", true},
		{"commit past the log", func(b *quiver.Bucket) error {
			v, _ := proto.Marshal(&pb.HardState{Term: new(uint64(1)), Commit: new(uint64(100))})
			return b.Put(hardStateKey, v)
		}, "commit 100 is outside", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTestDB(t)
			s, err := OpenStorage(db, &StorageOptions{CacheBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			var ents []*pb.Entry
			for i := uint64(1); i <= 8; i++ {
				ents = append(ents, entry(i, 1, "data"))
			}
			if err := write(t, s, func(w *Writer) error { return w.Append(ents) }); err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *quiver.Tx) error { return tc.damage(tx.Bucket(bucketName)) }); err != nil {
				t.Fatal(err)
			}
			if tc.open {
				_, err = OpenStorage(db, nil)
			} else {
				_, err = s.Entries(2, 8, math.MaxUint64)
			}
			if !errors.Is(err, quiver.ErrCorrupt) || !bytes.Contains([]byte(fmt.Sprint(err)), []byte(tc.want)) {
				t.Fatalf("got %v, want a corruption error naming %q", err, tc.want)
			}
		})
	}
}

// TestWriterRefusesBadInput: appends that leave a gap or are not
// consecutive, compactions past the end and old snapshots are errors.
func TestWriterRefusesBadInput(t *testing.T) {
	db, _ := openTestDB(t)
	s, err := OpenStorage(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(t, s, func(w *Writer) error { return w.Append([]*pb.Entry{entry(1, 1, "a"), entry(2, 1, "b")}) }); err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]func(w *Writer) error{
		"gap":              func(w *Writer) error { return w.Append([]*pb.Entry{entry(4, 1, "")}) },
		"not consecutive":  func(w *Writer) error { return w.Append([]*pb.Entry{entry(3, 1, ""), entry(5, 1, "")}) },
		"compact past end": func(w *Writer) error { return w.Compact(9, nil) },
	} {
		if err := write(t, s, fn); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := write(t, s, func(w *Writer) error {
		return w.ApplySnapshot(&pb.SnapshotMetadata{Index: new(uint64(10)), Term: new(uint64(2))})
	}); err != nil {
		t.Fatal(err)
	}
	if err := write(t, s, func(w *Writer) error {
		return w.ApplySnapshot(&pb.SnapshotMetadata{Index: new(uint64(5)), Term: new(uint64(2))})
	}); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatalf("an older snapshot: %v", err)
	}
	if err := db.View(func(tx *quiver.Tx) error { _, err := s.Writer(tx); return err }); !errors.Is(err, ErrNotWritable) {
		t.Fatalf("a Writer on a read transaction: %v", err)
	}
}

// TestStorageStage: entries staged (durable in the node's write-ahead
// file, not yet in the database) read as raft's MemoryStorage holding the
// same appends reads, before and after a commit writes them, with a cache
// budget they exceed: staged entries are never evicted. Staging over
// entries the database holds is refused, and a commit then replaces them.
func TestStorageStage(t *testing.T) {
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	db, _ := openTestDB(t)
	s, err := OpenStorage(db, &StorageOptions{CacheBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	m := raft.NewMemoryStorage()
	var pending []*pb.Entry
	term := uint64(1)
	last := uint64(0)
	for step := 0; step < 400; step++ {
		what := fmt.Sprintf("step %d", step)
		switch k := r.IntN(10); {
		case k < 6: // stage entries after the last, or over staged ones
			from := last + 1
			if len(pending) > 0 && r.IntN(4) == 0 {
				from = pending[0].GetIndex() + uint64(r.IntN(len(pending)))
				term++
			}
			var ents []*pb.Entry
			for i := 0; i < 1+r.IntN(4); i++ {
				ents = append(ents, entry(from+uint64(i), term, fmt.Sprintf("%d-%d-%s", step, i, bytes.Repeat([]byte("x"), r.IntN(600)))))
			}
			hs := &pb.HardState{Term: new(term), Commit: new(uint64(0))}
			if !s.stage(ents, hs) {
				t.Fatalf("%s: staging entries from %d (last %d) refused", what, from, last)
			}
			if err := m.Append(ents); err != nil {
				t.Fatal(err)
			}
			_ = m.SetHardState(hs)
			pending = appendEntries(pending, ents)
			last = ents[len(ents)-1].GetIndex()
		case k < 8: // a commit writes what is staged
			if err := write(t, s, func(w *Writer) error {
				if err := w.Append(pending); err != nil {
					return err
				}
				hs, _, _ := s.InitialState()
				return w.SetHardState(hs)
			}); err != nil {
				t.Fatal(err)
			}
			pending = nil
		default: // over entries the database holds: refused
			if s.engine.last == 0 || len(pending) > 0 {
				continue
			}
			if s.stage([]*pb.Entry{entry(s.engine.last, term+1, "over")}, nil) {
				t.Fatalf("%s: staged over entry %d, which the database holds", what, s.engine.last)
			}
		}
		sameStorage(t, s, m, r, what)
		if s.CacheBytes() > 2<<10 && len(s.cache) > 0 && s.cacheFirst <= s.engine.last {
			t.Fatalf("%s: %d bytes cached with entries from %d the database holds (last there %d)", what, s.CacheBytes(), s.cacheFirst, s.engine.last)
		}
	}
}
