package raftadapter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
	pb "go.etcd.io/raft/v3/raftpb"
)

func walEntries(from, n uint64, term uint64) []*pb.Entry {
	var ents []*pb.Entry
	for i := from; i < from+n; i++ {
		ents = append(ents, &pb.Entry{Index: new(i), Term: new(term), Data: []byte(fmt.Sprintf("entry %d of term %d", i, term))})
	}
	return ents
}

// recordString is a write-ahead record as the tests compare it.
func recordString(hs *pb.HardState, ents []*pb.Entry) string {
	s := "hs=none"
	if hs != nil {
		s = fmt.Sprintf("hs=%d/%d/%d", hs.GetTerm(), hs.GetVote(), hs.GetCommit())
	}
	for _, e := range ents {
		s += fmt.Sprintf(" %d@%d:%s", e.GetIndex(), e.GetTerm(), e.GetData())
	}
	return s
}

// replayAll returns the records of generation gen in w as strings.
func replayAll(t *testing.T, w *wal, gen uint64) []string {
	t.Helper()
	var got []string
	err := w.replay(gen, func(hs *pb.HardState, ents []*pb.Entry) error {
		got = append(got, recordString(hs, ents))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestWALRecords: records come back in order, only those of the
// generation asked for; a record cut anywhere, or with a byte changed,
// ends the replay before it; after a reset the new generation's records,
// written over the old ones, are all that replays, though longer old ones
// follow them in the file.
func TestWALRecords(t *testing.T) {
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	path := filepath.Join(t.TempDir(), "raft.wal")
	w, err := openWAL(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { w.close() }()
	w.gen = newGen(0)
	var want []string
	var ends []int64 // the offset after each record
	for i := uint64(0); i < 20; i++ {
		var hs *pb.HardState
		if i%3 == 0 {
			hs = &pb.HardState{Term: new(i/3 + 1), Vote: new(uint64(2)), Commit: new(i * 4)}
		}
		ents := walEntries(1+i*4, uint64(r.IntN(5)), i/3+1)
		if err := w.append(hs, ents); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, w.off)
		want = append(want, recordString(hs, ents))
	}
	if got := replayAll(t, w, w.gen); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replay:\n%q\nwant\n%q", got, want)
	}
	if got := replayAll(t, w, w.gen+1); len(got) != 0 {
		t.Fatalf("another generation replayed %d records", len(got))
	}
	if got := replayAll(t, w, 0); len(got) != 0 {
		t.Fatalf("generation 0 replayed %d records", len(got))
	}

	// Damage: a copy of the file cut inside record k, or with one byte of
	// record k changed, replays the records before k.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 40; round++ {
		k := r.IntN(len(ends))
		start := int64(0)
		if k > 0 {
			start = ends[k-1]
		}
		img := append([]byte(nil), raw...)
		what := ""
		if round%2 == 0 {
			// Cut before the record's last byte that is not zero: the
			// zeros the file is reserved with would put back a
			// trailing zero, and the record would be whole again.
			end := ends[k]
			for end > start && raw[end-1] == 0 {
				end--
			}
			cut := start + r.Int64N(end-start)
			img = img[:cut]
			what = fmt.Sprintf("cut at %d", cut)
		} else {
			at := start + r.Int64N(ends[k]-start)
			img[at] ^= byte(1 + r.IntN(255))
			what = fmt.Sprintf("byte %d changed", at)
		}
		p := filepath.Join(t.TempDir(), "damaged.wal")
		if err := os.WriteFile(p, img, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := openWAL(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := replayAll(t, d, w.gen)
		d.close()
		if fmt.Sprint(got) != fmt.Sprint(want[:k]) {
			t.Fatalf("record %d, %s: replayed %d records, want %d", k, what, len(got), k)
		}
	}

	// A new generation over the old records.
	old := w.gen
	if err := w.reset(newGen(old)); err != nil {
		t.Fatal(err)
	}
	if err := w.append(nil, walEntries(100, 1, 9)); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, w, w.gen); len(got) != 1 || got[0] != "hs=none 100@9:entry 100 of term 9" {
		t.Fatalf("after the reset: %q", got)
	}
	if got := replayAll(t, w, old); len(got) != 0 {
		t.Fatalf("the old generation still replays %d records", len(got))
	}
}

// TestWALModeSwitch: a node that ran with a write-ahead file, then
// without one (its log moved on), then with the old file again, must not
// replay the file's stale records onto the newer log: every entry
// proposed survives each restart, and the log is raft's.
func TestWALModeSwitch(t *testing.T) {
	c := newClusterWith(t, 1, testutil.Seed(t), func(c *cluster) { c.wal = true })
	put := func(k string) {
		t.Helper()
		if _, err := c.propose(1, k+"="+k); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		put(fmt.Sprintf("a%02d", i))
	}
	c.stop(1)
	c.wal = false
	c.start(1)
	for i := 0; i < 20; i++ {
		put(fmt.Sprintf("b%02d", i))
	}
	c.stop(1)
	c.wal = true
	c.start(1)
	c.leader()
	put("c")
	if kv := c.contents(1); len(kv) != 42 || appliedCount(t, kv) != 41 {
		t.Fatalf("%d keys after the switches, want 41 and the counter: %v", len(kv), kv)
	}
	c.stop(1)
	db, err := quiver.Open(filepath.Join(c.dir, "node1.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := OpenStorage(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	ents, err := s.Entries(first, last+1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range ents {
		if e.GetIndex() != first+uint64(i) || (i > 0 && e.GetTerm() < ents[i-1].GetTerm()) {
			t.Fatalf("log entry %d: index %d term %d", i, e.GetIndex(), e.GetTerm())
		}
	}
}

// TestWALNeededAfterCrash: a node's files copied while it runs (a crash:
// no clean Stop) hold a write-ahead generation. Started from the copies
// without a write-ahead file, or with the file missing, the node refuses
// with an error that says so; with the file it starts and has every
// entry proposed.
func TestWALNeededAfterCrash(t *testing.T) {
	c := newClusterWith(t, 1, testutil.Seed(t), func(c *cluster) { c.wal = true })
	var last uint64
	for i := 0; i < 10; i++ {
		var err error
		if last, err = c.propose(1, fmt.Sprintf("k%02d=v", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.converge(last)
	time.Sleep(50 * time.Millisecond) // idle: nothing being written
	dir := t.TempDir()
	for _, name := range []string{"node1.db", "node1.wal"} {
		raw, err := os.ReadFile(filepath.Join(c.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.stop(1)

	start := func(wal string) error {
		db, err := quiver.Open(filepath.Join(dir, "node1.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		n, err := StartNode(Config{ID: 1, Peers: []uint64{1}, DB: db, StateMachine: kvMachine{}, Transport: NewNetwork(1).Endpoint(1), WAL: wal})
		if err == nil {
			n.Stop()
		}
		return err
	}
	if err := start(""); err == nil || !strings.Contains(err.Error(), "start it with that file") {
		t.Fatalf("started without its write-ahead file: %v", err)
	}
	if err := start(filepath.Join(dir, "elsewhere.wal")); !errors.Is(err, quiver.ErrCorrupt) {
		t.Fatalf("started with its write-ahead file missing: %v", err)
	}
	rc := newClusterWith(t, 1, testutil.Seed(t), func(rc *cluster) { rc.dir, rc.wal = dir, true })
	rc.leader()
	if kv := rc.converge(last); len(kv) != 11 {
		t.Fatalf("%d keys after the restart with the file, want 10 and the counter: %v", len(kv), kv)
	}
}

// TestApplyBatch: with a write-ahead file, the committed entries of many
// Readies are applied in one write transaction, and their proposers are
// told before it commits. A reader that fences (Fence, SerializableRead,
// LinearizableRead) sees every result handed out; the batch commits by
// itself once it is Config.ApplyBatch old.
func TestApplyBatch(t *testing.T) {
	ctx := func() context.Context {
		x, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return x
	}
	// raw reads key from the database as it is, without a fence.
	raw := func(db *quiver.DB, key string) (v string) {
		t.Helper()
		err := db.View(func(tx *quiver.Tx) error {
			if b := tx.Bucket([]byte("kv")); b != nil {
				v = string(b.Get([]byte(key)))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	txid := func(db *quiver.DB) (id int) {
		t.Helper()
		if err := db.View(func(tx *quiver.Tx) error { id = tx.ID(); return nil }); err != nil {
			t.Fatal(err)
		}
		return id
	}
	t.Run("held open", func(t *testing.T) {
		c := newClusterWith(t, 1, testutil.Seed(t), func(c *cluster) { c.wal = true; c.batchAge = time.Hour })
		c.leader()
		n, db := c.node(1), c.dbs[1]
		if err := n.Fence(ctx()); err != nil { // the election's entry, committed
			t.Fatal(err)
		}
		before := txid(db)
		for i := 0; i < 20; i++ {
			if _, err := c.propose(1, fmt.Sprintf("k%02d=v%02d", i, i)); err != nil {
				t.Fatal(err)
			}
		}
		if got := txid(db); got != before {
			t.Fatalf("%d engine commits during 20 proposals, want none: one batch, open", got-before)
		}
		if v := raw(db, "k19"); v != "" {
			t.Fatalf("the open batch is readable without a fence: k19=%q", v)
		}
		err := n.SerializableRead(func(tx *quiver.Tx) error {
			b := tx.Bucket([]byte("kv"))
			if b == nil {
				return errors.New("after the fence: no kv bucket")
			}
			for i := 0; i < 20; i++ {
				k := fmt.Sprintf("k%02d", i)
				if v := string(b.Get([]byte(k))); v != fmt.Sprintf("v%02d", i) {
					return fmt.Errorf("after the fence %s=%q", k, v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := txid(db); got != before+1 {
			t.Fatalf("%d engine commits for 20 proposals and a read, want 1", got-before)
		}
		// A linearizable read commits the batch too (it waits for the
		// applied index), and a fence with nothing open commits nothing.
		if _, err := c.propose(1, "k20=v20"); err != nil {
			t.Fatal(err)
		}
		err = n.LinearizableRead(ctx(), func(tx *quiver.Tx) error {
			if v := string(tx.Bucket([]byte("kv")).Get([]byte("k20"))); v != "v20" { // (the bucket exists by now)
				return fmt.Errorf("after a linearizable read k20=%q", v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		at := txid(db)
		if err := n.Fence(ctx()); err != nil {
			t.Fatal(err)
		}
		if got := txid(db); got != at {
			t.Fatalf("a fence with nothing to commit made %d commits", got-at)
		}
		// What the batch held survives a restart (a clean stop commits it).
		c.stop(1)
		c.start(1)
		c.leader()
		if kv := c.contents(1); kv["k00"] != "v00" || kv["k20"] != "v20" || appliedCount(t, kv) != 21 {
			t.Fatalf("after a restart: %v", kv)
		}
	})
	t.Run("ages", func(t *testing.T) {
		c := newClusterWith(t, 1, testutil.Seed(t), func(c *cluster) { c.wal = true })
		c.leader()
		db := c.dbs[1]
		if _, err := c.propose(1, "k=v"); err != nil {
			t.Fatal(err)
		}
		// No reader asks: the batch commits once Config.ApplyBatch has passed.
		deadline := time.Now().Add(5 * time.Second)
		for raw(db, "k") != "v" {
			if time.Now().After(deadline) {
				t.Fatal("the batch did not commit by itself within 5 s")
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// msgLog is a Transport that keeps what it is given.
type msgLog struct {
	mu   sync.Mutex
	msgs []*pb.Message
}

func (l *msgLog) Send(msgs []*pb.Message) {
	l.mu.Lock()
	l.msgs = append(l.msgs, msgs...)
	l.mu.Unlock()
}

func (l *msgLog) SendSnapshot(context.Context, *pb.Message, io.Reader) error {
	return errors.New("msgLog: no snapshots")
}

// waitFor waits until n messages of type typ were sent.
func (l *msgLog) waitFor(t *testing.T, typ pb.MessageType, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		k := 0
		for _, m := range l.msgs {
			if m.GetType() == typ {
				k++
			}
		}
		l.mu.Unlock()
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %v sent in 10 s, want %d", k, typ, n)
		}
	}
}

// onWriteFile calls before ahead of each WriteAt.
type onWriteFile struct {
	quiver.File
	before func()
}

func (f onWriteFile) WriteAt(p []byte, off int64) (int, error) {
	f.before()
	return f.File.WriteAt(p, off)
}

// TestApplyBatchReplacedEntries: a follower's open batch holds entries of
// term 2, some committed; a leader of term 3 replaces the uncommitted ones
// and commits its own in one Ready. The batch commits before that Ready's
// record is written, and must not store the Ready's HardState (a commit
// index over the new entries) over the old entries; the record must carry
// it. A process killed as the record is written (the database as the page
// cache holds it, the file without the record) must not find a commit
// index that covers entries of term 2 past the old commit.
func TestApplyBatchReplacedEntries(t *testing.T) {
	dir := t.TempDir()
	dbPath, walPath := filepath.Join(dir, "n.db"), filepath.Join(dir, "n.wal")
	db, err := quiver.Open(dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	copyOut := func(from, to string) {
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(to, b, 0o600)
		}
		if err != nil {
			t.Error(err)
		}
	}
	var mu sync.Mutex
	records := 0
	before := func() {
		mu.Lock()
		defer mu.Unlock()
		if records++; records == 2 { // the second Ready's record, about to be written
			copyOut(dbPath, filepath.Join(dir, "killed.db"))
			copyOut(walPath, filepath.Join(dir, "killed.wal"))
		}
	}
	msgs := &msgLog{}
	n, err := StartNode(Config{ID: 1, Peers: []uint64{1, 2, 3}, DB: db, StateMachine: kvMachine{}, Transport: msgs,
		TickInterval: time.Hour, WAL: walPath, ApplyBatch: time.Hour,
		WALOpenFile: func(path string, flag int, mode os.FileMode) (quiver.File, error) {
			f, err := quiver.OpenOSFile(path, flag, mode)
			if err != nil {
				return nil, err
			}
			return onWriteFile{File: f, before: before}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	entry := func(index, term uint64, kv string) *pb.Entry {
		data := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 2), 1) // node 2's proposal 1
		return &pb.Entry{Index: new(index), Term: new(term), Type: pb.EntryType_EntryNormal.Enum(), Data: append(data, kv...)}
	}
	app := func(from, term, prev, prevTerm, commit uint64, ents []*pb.Entry) {
		if err := n.Step(&pb.Message{Type: pb.MessageType_MsgApp.Enum(), From: new(from), To: new(uint64(1)), Term: new(term),
			Index: new(prev), LogTerm: new(prevTerm), Commit: new(commit), Entries: ents}); err != nil {
			t.Fatal(err)
		}
	}
	var old []*pb.Entry
	for i := uint64(2); i <= 10; i++ {
		old = append(old, entry(i, 2, fmt.Sprintf("k%d=old", i)))
	}
	app(2, 2, 1, 1, 5, old) // term 2: entries 2..10, 2..5 committed (applied in the batch)
	msgs.waitFor(t, pb.MessageType_MsgAppResp, 1)
	var replaced []*pb.Entry
	for i := uint64(7); i <= 10; i++ {
		replaced = append(replaced, entry(i, 3, fmt.Sprintf("k%d=new", i)))
	}
	app(3, 3, 6, 2, 10, replaced) // term 3: 7..10 replaced, all committed
	msgs.waitFor(t, pb.MessageType_MsgAppResp, 2)
	// The acknowledgement goes once the record is durable, before the
	// entries are applied.
	for deadline := time.Now().Add(10 * time.Second); n.Applied() < 10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("applied %d in 10 s, want 10", n.Applied())
		}
	}
	err = n.SerializableRead(func(tx *quiver.Tx) error {
		if v := string(tx.Bucket([]byte("kv")).Get([]byte("k7"))); v != "new" {
			return fmt.Errorf("k7=%q, want new", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The second record carries the new HardState.
	var gen uint64
	if err := db.View(func(tx *quiver.Tx) error {
		gen = binary.BigEndian.Uint64(tx.Bucket(bucketName).Get(walGenKey))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w, err := openWAL(walPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	var hss []*pb.HardState
	err = w.replay(gen, func(hs *pb.HardState, _ []*pb.Entry) error { hss = append(hss, hs); return nil })
	w.close()
	if err != nil {
		t.Fatal(err)
	}
	if len(hss) < 2 || hss[1].GetTerm() != 3 || hss[1].GetCommit() != 10 {
		t.Fatalf("the replacing Ready's record holds HardState %v, want term 3, commit 10 (records: %v)", hss[len(hss)-1], hss)
	}
	// The killed process's files: whatever the database holds, its commit
	// index covers no entry of term 2 past 5.
	kdb, err := quiver.Open(filepath.Join(dir, "killed.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer kdb.Close()
	s, err := OpenStorage(kdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recoverWAL(kdb, s, filepath.Join(dir, "killed.wal"), nil); err != nil {
		t.Fatal(err)
	}
	if s, err = OpenStorage(kdb, nil); err != nil {
		t.Fatal(err)
	}
	hs, _, err := s.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(6); i <= hs.GetCommit(); i++ {
		if term, err := s.Term(i); err != nil || term == 2 && i > 5 {
			t.Fatalf("after the kill: commit index %d, entry %d of term %d (%v): never committed", hs.GetCommit(), i, term, err)
		}
	}
}
