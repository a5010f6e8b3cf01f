package mvcc

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

func openTest(t *testing.T, path string, opts *Options) (*Store, *quiver.DB) {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "db")
	}
	db, err := quiver.Open(path, 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, opts)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		db.Close()
	})
	return s, db
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func kvString(kv KeyValue) string {
	return fmt.Sprintf("%s=%s c%d m%d v%d l%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

func rangeStrings(t *testing.T, s *Store, key, end string, rev int64) []string {
	t.Helper()
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	res, err := s.Range([]byte(key), e, RangeOptions{Rev: rev})
	if err != nil {
		t.Fatalf("range %q-%q at %d: %v", key, end, rev, err)
	}
	var out []string
	for _, kv := range res.KVs {
		out = append(out, kvString(kv))
	}
	return out
}

func TestGenerations(t *testing.T) {
	s, _ := openTest(t, "", nil)
	if s.Rev() != 1 {
		t.Fatalf("empty store at revision %d, want 1", s.Rev())
	}
	put := must[int64](t)
	if r := put(s.Put([]byte("a"), []byte("1"), 0)); r != 2 {
		t.Fatalf("first put at %d", r)
	}
	put(s.Put([]byte("a"), []byte("2"), 7))
	n, r, err := s.DeleteRange([]byte("a"), nil)
	if err != nil || n != 1 || r != 4 {
		t.Fatalf("delete: %d %d %v", n, r, err)
	}
	if n, r, _ := s.DeleteRange([]byte("a"), nil); n != 0 || r != 4 {
		t.Fatalf("delete of a deleted key: %d at %d", n, r)
	}
	put(s.Put([]byte("a"), []byte("3"), 0))
	put(s.Put([]byte("b"), []byte("x"), 0))
	for _, tc := range []struct {
		rev  int64
		want string
	}{
		{1, "[]"},
		{2, "[a=1 c2 m2 v1 l0]"},
		{3, "[a=2 c2 m3 v2 l7]"},
		{4, "[]"},
		{5, "[a=3 c5 m5 v1 l0]"},
		{0, "[a=3 c5 m5 v1 l0]"},
	} {
		if got := fmt.Sprint(rangeStrings(t, s, "a", "", tc.rev)); got != tc.want {
			t.Errorf("a at %d: %s, want %s", tc.rev, got, tc.want)
		}
	}
	if got := fmt.Sprint(rangeStrings(t, s, "a", "\x00", 0)); got != "[a=3 c5 m5 v1 l0 b=x c6 m6 v1 l0]" {
		t.Errorf("all keys: %s", got)
	}
	if _, err := s.Range([]byte("a"), nil, RangeOptions{Rev: 7}); !errors.Is(err, ErrFutureRev) {
		t.Errorf("future revision: %v", err)
	}
	// Compaction keeps each key's state at the revision.
	done, err := s.Compact(4)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := s.Range([]byte("a"), nil, RangeOptions{Rev: 3}); !errors.Is(err, ErrCompacted) {
		t.Errorf("compacted revision: %v", err)
	}
	if got := fmt.Sprint(rangeStrings(t, s, "a", "", 4)); got != "[]" {
		t.Errorf("a at the compaction: %s", got)
	}
	if _, err := s.Compact(4); !errors.Is(err, ErrCompacted) {
		t.Errorf("compacting twice: %v", err)
	}
	if _, err := s.Compact(99); !errors.Is(err, ErrFutureRev) {
		t.Errorf("compacting the future: %v", err)
	}
	// The deleted generation's puts are gone from the engine.
	var records int
	_ = s.db.View(func(tx *quiver.Tx) error {
		records = tx.Bucket(revBucket).Stats().KeyN
		return nil
	})
	// As etcd, the tombstone at the compaction revision stays.
	if records != 3 {
		t.Errorf("%d records after compaction, want 3 (a's tombstone at 4, a@5, b@6)", records)
	}
}

func TestCompactKeepsVersions(t *testing.T) {
	s, db := openTest(t, "", nil)
	put := must[int64](t)
	for i := 0; i < 5; i++ {
		put(s.Put([]byte("k"), []byte(fmt.Sprint(i)), 0)) // revs 2..6
	}
	<-must[<-chan struct{}](t)(s.Compact(4))
	want := "[k=2 c2 m4 v3 l0]"
	if got := fmt.Sprint(rangeStrings(t, s, "k", "", 4)); got != want {
		t.Fatalf("k at 4 after compaction: %s, want %s", got, want)
	}
	if got := fmt.Sprint(rangeStrings(t, s, "k", "", 0)); got != "[k=4 c2 m6 v5 l0]" {
		t.Fatalf("k now: %s", got)
	}
	// The same after a reopen, which rebuilds the index.
	path := db.Path()
	s.Close()
	db.Close()
	s, _ = openTest(t, path, nil)
	if got := fmt.Sprint(rangeStrings(t, s, "k", "", 4)); got != want {
		t.Fatalf("k at 4 after reopen: %s, want %s", got, want)
	}
	if s.Rev() != 6 || s.CompactRev() != 4 {
		t.Fatalf("reopened at %d compacted %d", s.Rev(), s.CompactRev())
	}
}

func TestTxn(t *testing.T) {
	s, _ := openTest(t, "", nil)
	must[int64](t)(s.Put([]byte("a"), []byte("1"), 0))
	res, err := s.Txn(&Txn{
		If:   []Compare{{Key: []byte("a"), Target: CompareValue, Result: Equal, Value: []byte("1")}},
		Then: []Op{OpPut([]byte("a"), []byte("2"), 0), OpRange([]byte("a"), nil, RangeOptions{}), OpPut([]byte("b"), []byte("3"), 0)},
		Else: []Op{OpDelete([]byte("a"), nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Succeeded || res.Rev != 3 || string(res.Results[1].Range.KVs[0].Value) != "2" {
		t.Fatalf("txn: %+v", res)
	}
	res, err = s.Txn(&Txn{
		If:   []Compare{{Key: []byte("a"), Target: CompareVersion, Result: Greater, Version: 5}},
		Else: []Op{OpDelete([]byte("a"), []byte("c"))},
	})
	if err != nil || res.Succeeded || res.Results[0].Deleted != 2 || res.Rev != 4 {
		t.Fatalf("txn else: %+v %v", res, err)
	}
	// A compare on a missing key's value fails; on its version, it is 0.
	res, _ = s.Txn(&Txn{If: []Compare{{Key: []byte("zz"), Target: CompareVersion, Result: Equal, Version: 0}}})
	if !res.Succeeded || res.Rev != 4 {
		t.Fatalf("version of a missing key: %+v", res)
	}
	for _, bad := range []*Txn{
		{Then: []Op{OpPut(nil, []byte("v"), 0)}},
		{Then: []Op{OpPut([]byte("a"), nil, 0), OpPut([]byte("a"), nil, 0)}},
		{Then: []Op{OpPut([]byte("b"), nil, 0), OpDelete([]byte("a"), []byte("c"))}},
		{Then: []Op{OpRange([]byte("b"), []byte("a"), RangeOptions{})}},
		{Then: []Op{OpPut([]byte("x"), nil, 0), OpRange([]byte("x"), nil, RangeOptions{Rev: 99})}},
	} {
		if _, err := s.Txn(bad); err == nil {
			t.Errorf("txn %+v: no error", bad)
		}
	}
	if s.Rev() != 4 {
		t.Fatalf("a failed txn changed the revision to %d", s.Rev())
	}
}

// TestGroupCommit: concurrent writers share engine transactions, and each
// gets its own revision.
func TestGroupCommit(t *testing.T) {
	s, _ := openTest(t, "", nil)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	revs := make(chan int64, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := s.Put([]byte(fmt.Sprintf("w%d-%d", w, i)), []byte("v"), 0)
				if err != nil {
					t.Error(err)
					return
				}
				revs <- r
			}
		}(w)
	}
	wg.Wait()
	close(revs)
	seen := map[int64]bool{}
	for r := range revs {
		if seen[r] {
			t.Fatalf("revision %d given twice", r)
		}
		seen[r] = true
	}
	if s.Rev() != 1+writers*each {
		t.Fatalf("revision %d, want %d", s.Rev(), 1+writers*each)
	}
	res, _ := s.Range([]byte("w"), []byte{}, RangeOptions{CountOnly: true})
	if res.Count != writers*each {
		t.Fatalf("%d keys", res.Count)
	}
}

// storedRevisions lists the revisions the engine holds.
func storedRevisions(t *testing.T, s *Store) []Revision {
	t.Helper()
	var out []Revision
	err := s.db.View(func(tx *quiver.Tx) error {
		return tx.Bucket(revBucket).ForEach(func(k, _ []byte) error {
			r, _ := revOfKey(k)
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompactionResumes stops a compaction after a few batches by closing
// the store, reopens it, and requires the resumed deletion to end with the
// same revisions as an uninterrupted compaction of the same history.
func TestCompactionResumes(t *testing.T) {
	history := func(s *Store) {
		for i := 0; i < 300; i++ {
			k := []byte(fmt.Sprintf("k%02d", i%37))
			if i%5 == 4 {
				if _, _, err := s.DeleteRange(k, nil); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := s.Put(k, []byte(fmt.Sprint(i)), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	control, _ := openTest(t, "", nil)
	history(control)
	<-must[<-chan struct{}](t)(control.Compact(250))
	want := fmt.Sprint(storedRevisions(t, control))

	path := filepath.Join(t.TempDir(), "db")
	s, db := openTest(t, path, &Options{CompactionBatch: 3, CompactionPause: 5 * time.Millisecond})
	history(s)
	if _, err := s.Compact(250); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a few batches
	s.Close()
	var finished, scheduled int64
	_ = db.View(func(tx *quiver.Tx) error {
		m := tx.Bucket(metaBucket)
		finished, scheduled = getInt(m, metaFinished), getInt(m, metaScheduled)
		return nil
	})
	if finished == scheduled {
		t.Fatalf("the compaction finished before the store closed (batches too fast?)")
	}
	db.Close()
	s, db = openTest(t, path, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = db.View(func(tx *quiver.Tx) error {
			finished = getInt(tx.Bucket(metaBucket), metaFinished)
			return nil
		})
		if finished == 250 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the compaction did not resume")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := fmt.Sprint(storedRevisions(t, s)); got != want {
		t.Fatalf("after a resumed compaction:\n%s\nuninterrupted:\n%s", got, want)
	}
	if s.CompactRev() != 250 {
		t.Fatalf("compacted at %d", s.CompactRev())
	}
}

// TestConcurrent runs writers (transactions that add a key and bump a
// counter together), readers (which require the counter to match the keys
// in every revision they read, and a past revision to read the same twice)
// and compactions at once.
func TestConcurrent(t *testing.T) {
	s, _ := openTest(t, "", &Options{CompactionBatch: 50})
	const writers, each = 4, 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			counter := []byte(fmt.Sprintf("count/%d", w))
			for i := 0; i < each; i++ {
				_, err := s.Txn(&Txn{Then: []Op{
					OpPut([]byte(fmt.Sprintf("item/%d/%04d", w, i)), []byte("x"), 0),
					OpPut(counter, []byte(fmt.Sprint(i+1)), 0),
				}, NoWait: i%3 == 0})
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	var readers sync.WaitGroup
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rev := s.Rev()
				for w := 0; w < writers; w++ {
					c, err := s.Range([]byte(fmt.Sprintf("count/%d", w)), nil, RangeOptions{Rev: rev})
					if errors.Is(err, ErrCompacted) {
						break
					}
					if err != nil {
						errs <- err
						return
					}
					items, err := s.Range([]byte(fmt.Sprintf("item/%d/", w)), Prefix([]byte(fmt.Sprintf("item/%d/", w))), RangeOptions{Rev: rev, CountOnly: true})
					if errors.Is(err, ErrCompacted) {
						break
					}
					if err != nil {
						errs <- err
						return
					}
					n := "0"
					if len(c.KVs) == 1 {
						n = string(c.KVs[0].Value)
					}
					if n != fmt.Sprint(items.Count) {
						errs <- fmt.Errorf("at revision %d writer %d: counter %s, %d items", rev, w, n, items.Count)
						return
					}
				}
			}
		}()
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if rev := s.Rev() - 20; rev > s.CompactRev() {
				if _, err := s.Compact(rev); err != nil && !errors.Is(err, ErrCompacted) {
					errs <- err
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every write is there, NoWait ones included: each writer's last write
	// waited, and batches commit in order.
	res, err := s.Range([]byte("item/"), Prefix([]byte("item/")), RangeOptions{CountOnly: true})
	if err != nil || res.Count != writers*each {
		t.Fatalf("%d items, want %d (%v)", res.Count, writers*each, err)
	}
}

// TestCompactionFreesPages: the pages of the revisions a compaction
// deletes go back to the engine's freelist, so the file stops growing.
func TestCompactionFreesPages(t *testing.T) {
	s, db := openTest(t, "", nil)
	value := make([]byte, 4000)
	for i := 0; i < 500; i++ {
		if _, err := s.Put([]byte("big"), value, 0); err != nil {
			t.Fatal(err)
		}
	}
	before := db.Stats()
	<-must[<-chan struct{}](t)(s.Compact(s.Rev()))
	// One more write lets the engine release what no reader can see.
	must[int64](t)(s.Put([]byte("x"), nil, 0))
	after := db.Stats()
	freed := (after.FreePageN + after.PendingPageN) - (before.FreePageN + before.PendingPageN)
	if freed < 400 {
		t.Fatalf("compaction freed %d pages (free %d+%d before, %d+%d after), want about 500", freed, before.FreePageN, before.PendingPageN, after.FreePageN, after.PendingPageN)
	}
}

// TestCompactAfterDeletingEverything deletes every key, puts one below
// them all, and compacts at the current revision, which empties every
// block of the index but one; the store goes on, and reopens.
func TestCompactAfterDeletingEverything(t *testing.T) {
	s, db := openTest(t, "", nil)
	for i := 0; i < 5000; i++ {
		must[int64](t)(s.Put([]byte(fmt.Sprintf("k%05d", i)), []byte("v"), 0))
	}
	if _, _, err := s.DeleteRange([]byte("k"), []byte{}); err != nil {
		t.Fatal(err)
	}
	rev := must[int64](t)(s.Put([]byte("a"), []byte("1"), 0))
	<-must[<-chan struct{}](t)(s.Compact(s.Rev()))
	must[int64](t)(s.Put([]byte("b"), []byte("2"), 0))
	path := db.Path()
	s.Close()
	db.Close()
	s, _ = openTest(t, path, nil)
	if got := fmt.Sprint(rangeStrings(t, s, "a", "\x00", 0)); got != fmt.Sprintf("[a=1 c%d m%d v1 l0 b=2 c%d m%d v1 l0]", rev, rev, rev+1, rev+1) {
		t.Fatalf("reopened: %s", got)
	}
}

var errInjected = errors.New("injected commit failure")

// TestFailedCommitFailsLaterBatches fails one batch's commit while a
// later batch waits: the later one must fail too (its revisions would
// follow ones the store does not hold), later writes are refused, and a
// reopened store holds neither.
func TestFailedCommitFailsLaterBatches(t *testing.T) {
	s, db := openTest(t, "", nil)
	base := must[int64](t)(s.Put([]byte("a"), []byte("0"), 0))
	entered, release := make(chan struct{}), make(chan struct{})
	calls := 0
	commitFault = func() error {
		calls++
		if calls == 1 {
			close(entered)
			<-release
			return errInjected
		}
		return nil
	}
	defer func() {
		commitFault = nil
		select {
		case <-release:
		default:
			close(release) // on a failure, so that Close does not hang
		}
	}()
	if _, err := s.Txn(&Txn{Then: []Op{OpPut([]byte("b"), []byte("1"), 0)}, NoWait: true}); err != nil {
		t.Fatal(err)
	}
	<-entered
	// The first batch is being committed; this one waits for the next.
	if _, err := s.Txn(&Txn{Then: []Op{OpPut([]byte("c"), []byte("2"), 0)}, NoWait: true}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if _, err := s.Put([]byte("d"), []byte("3"), 0); !errors.Is(err, ErrFailed) {
		t.Fatalf("a put after a failed commit: %v, want ErrFailed", err)
	}
	if s.Rev() != base {
		t.Fatalf("revision %d after the failure, want %d", s.Rev(), base)
	}
	if err := s.Close(); !errors.Is(err, errInjected) {
		t.Fatalf("Close after a failed commit: %v, want the commit's error", err)
	}
	s2, err := Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := fmt.Sprint(rangeStrings(t, s2, "a", "\x00", 0)); got != fmt.Sprintf("[a=0 c%d m%d v1 l0]", base, base) {
		t.Fatalf("reopened after the failure: %s (rev %d)", got, s2.Rev())
	}
}

// TestTxnWaitsForWhatItRead: a transaction that changes nothing but read
// a write not yet durable returns only once that write is durable.
func TestTxnWaitsForWhatItRead(t *testing.T) {
	s, _ := openTest(t, "", nil)
	entered, release := make(chan struct{}), make(chan struct{})
	commitFault = func() error {
		select {
		case <-entered:
		default:
			close(entered)
			<-release
		}
		return nil
	}
	defer func() {
		commitFault = nil
		select {
		case <-release:
		default:
			close(release) // on a failure, so that Close does not hang
		}
	}()
	if _, err := s.Txn(&Txn{Then: []Op{OpPut([]byte("k"), []byte("v"), 0)}, NoWait: true}); err != nil {
		t.Fatal(err)
	}
	<-entered
	done := make(chan *TxnResult)
	go func() {
		res, err := s.Txn(&Txn{If: []Compare{{Key: []byte("k"), Target: CompareValue, Result: Equal, Value: []byte("v")}}})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	select {
	case <-done:
		t.Fatal("the transaction returned before the write it read was durable")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if res := <-done; !res.Succeeded || res.Rev != s.Rev() {
		t.Fatalf("succeeded %v at %d (store at %d)", res.Succeeded, res.Rev, s.Rev())
	}
}

// TestValueTooLarge: a put whose record the engine could not hold is
// refused before it is applied; the store goes on.
func TestValueTooLarge(t *testing.T) {
	fits := int(quiver.MaxValueSize) - recordSize(&KeyValue{Key: []byte("k")})
	for _, c := range []struct {
		key, value int
		ok         bool
	}{
		{1, fits, true},
		{1, fits + 1, false},
		{2, fits, false},
		{fits + 1, 0, true}, // the same record size as a 1-byte key and fits bytes
		{fits + 2, 0, false},
		{1 << 10, 1 << 20, true},
	} {
		err := checkPutSize(c.key, c.value)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, quiver.ErrValueTooLarge)) {
			t.Errorf("a %d-byte key and %d-byte value: %v", c.key, c.value, err)
		}
	}
	s, _ := openTest(t, "", nil)
	if rev := must[int64](t)(s.Put([]byte("k"), []byte("v"), 0)); rev != s.Rev() {
		t.Fatalf("put at %d, store at %d", rev, s.Rev())
	}
}

// TestLatestReadRacingCompaction: a read of the latest revision (Rev 0)
// during which a write and a compaction to it complete reads again at the
// new revision rather than fail with ErrCompacted.
func TestLatestReadRacingCompaction(t *testing.T) {
	s, _ := openTest(t, "", nil)
	must[int64](t)(s.Put([]byte("a"), []byte("1"), 0))
	defer func() { readAtHook = nil }()
	race := func() {
		readAtHook = nil
		rev := must[int64](t)(s.Put([]byte("a"), []byte("2"), 0))
		<-must[<-chan struct{}](t)(s.Compact(rev))
	}
	readAtHook = race
	res, err := s.Range([]byte("a"), nil, RangeOptions{})
	if err != nil {
		t.Fatalf("Range at the latest revision: %v", err)
	}
	if len(res.KVs) != 1 || string(res.KVs[0].Value) != "2" || res.Rev != s.Rev() {
		t.Fatalf("Range read %v at %d, store at %d", res.KVs, res.Rev, s.Rev())
	}
	readAtHook = race
	if _, _, err := s.HashKV(0); err != nil {
		t.Fatalf("HashKV at the latest revision: %v", err)
	}
	// A past revision still fails.
	if _, err := s.Range([]byte("a"), nil, RangeOptions{Rev: res.Rev - 1}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Range below the compaction: %v", err)
	}
}
