package fuzz_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testhook"
)

// FuzzOps decodes its input into a sequence of operations on nested
// buckets (puts with values from empty to several pages, deletes, bucket
// creation and deletion, sequences, cursor walks that delete as they go,
// runs of puts, reads) ended by commits, rollbacks and reopens, and applies
// them both to a database of 1 KiB pages, so that a few keys split and
// merge pages, and to a map model. It compares everything the database
// holds with the model, through cursors in both directions, Seek and Get,
// inside the write transaction before each commit or rollback, after each
// commit, rollback and reopen, in a read transaction held across commits,
// and in hot backups (Tx.WriteTo) opened as databases; Check runs after
// every commit and reopen and on every backup.
//
// Every byte string decodes to some operations: the first byte picks the
// freelist and the growth step, then each operation is an opcode byte and
// its argument bytes, read as zeros past the end. Keys come from a small
// alphabet, so that operations meet the same keys, and bucket names are in
// the keys' alphabet too, so that key operations meet buckets and bucket
// operations meet keys.
func FuzzOps(f *testing.F) {
	for _, seed := range opsSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		runOps(t, in)
	})
}

// Opcodes: the operation of an opcode byte is its value modulo opCount.
// The arguments of each are listed beside it.
const (
	opPut          = iota // bucket, key, value length
	opPutRun              // bucket, first key, count, value length, fill percent
	opDelete              // bucket, key
	opCreateBucket        // parent (0: the root), name, mode (bit 0: IfNotExists)
	opDeleteBucket        // parent (0: the root), name
	opNestedPut           // path, key, value length
	opNextSequence        // bucket
	opSetSequence         // bucket, value
	opCursorDelete        // bucket, start, delete mask, seek key
	opGet                 // bucket, key
	opCommit              //
	opRollback            //
	opReopen              // mode: bit 0 commit first, bit 1 other freelist, bit 2 read-only open between
	opReader              // (begins a read transaction, or checks and ends the open one)
	opBackup              // mode: bit 0 from the open read transaction, bit 1 from the write transaction
	opCompact             // mode: bits 0-2 operations run while the copy catches up, bits 3-4 the copy's TxMaxSize, bits 5-6 operations run just before writers are blocked
	opCount
)

// Bounds on one input, so that an execution takes milliseconds.
const (
	opsMaxOps        = 200
	opsMaxValueBytes = 512 << 10 // beyond this, values are short
	opsMaxDepth      = 4         // nesting of buckets, the top level being 1
	opsMaxBackups    = 8
	opsPageSize      = 1024
)

// opsValueLens are the value lengths: empty, inline, a large part of a
// page, and spanning 3 and 9 overflow pages and more.
var opsValueLens = []int{0, 1, 7, 30, 100, 250, 600, 1000, 3000, 9000, 20000}

// opsLongKeys are the lengths of the long keys: some fill most of a page
// and some need overflow pages in leaves and branches alike.
var opsLongKeys = []int{100, 400, 900, 1100, 2000, 5000, 200, 600}

// opsSequences are the special sequence values, to reach the overflow of
// NextSequence.
var opsSequences = []uint64{1 << 32, 1<<63 - 1, 1 << 63, ^uint64(0) - 2, ^uint64(0) - 1, ^uint64(0)}

// opsFillPercents include values outside the documented range, which
// the engine must clamp.
var opsFillPercents = []float64{0.5, 0.1, 0.9, 1.0, 0, 2}

// opsKey maps an argument byte to a key: 120 short keys, and 8 long ones
// that sort among them.
func opsKey(b byte) string {
	if b < 0xf8 {
		return fmt.Sprintf("k%03d", int(b)%120)
	}
	i := int(b - 0xf8)
	return fmt.Sprintf("k%03d", i*15) + strings.Repeat("x", opsLongKeys[i])
}

// opsName maps an argument byte to a bucket name: half of them are also
// keys of the short alphabet.
func opsName(b byte) string {
	if b&8 != 0 {
		return fmt.Sprintf("k%03d", b%8)
	}
	return fmt.Sprintf("b%d", b%8)
}

// opsNames is every name opsName returns, to look each up at the root.
func opsNames() []string {
	var names []string
	for b := 0; b < 16; b++ {
		names = append(names, opsName(byte(b)))
	}
	return names
}

// modelBucket is the model of a bucket. Keys and bucket names share one
// namespace, as in the database.
type modelBucket struct {
	keys    map[string]string
	buckets map[string]*modelBucket
	seq     uint64
}

func newModelBucket() *modelBucket {
	return &modelBucket{keys: map[string]string{}, buckets: map[string]*modelBucket{}}
}

func (m *modelBucket) clone() *modelBucket {
	c := newModelBucket()
	c.seq = m.seq
	for k, v := range m.keys {
		c.keys[k] = v
	}
	for k, b := range m.buckets {
		c.buckets[k] = b.clone()
	}
	return c
}

// modelEntry is a key or a nested bucket of a model bucket.
type modelEntry struct {
	name   string
	value  string
	bucket *modelBucket // nil for a key
}

// entries lists keys and nested buckets in the database's order: bytewise,
// which is Go's string order.
func (m *modelBucket) entries() []modelEntry {
	out := make([]modelEntry, 0, len(m.keys)+len(m.buckets))
	for k, v := range m.keys {
		out = append(out, modelEntry{name: k, value: v})
	}
	for k, b := range m.buckets {
		out = append(out, modelEntry{name: k, bucket: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// modelPaths lists the paths of every bucket below the model root, parents
// before children, in order: the operations' way of naming a bucket.
func modelPaths(root *modelBucket) [][]string {
	var out [][]string
	var walk func(m *modelBucket, path []string)
	walk = func(m *modelBucket, path []string) {
		names := make([]string, 0, len(m.buckets))
		for k := range m.buckets {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			p := append(append([]string(nil), path...), k)
			out = append(out, p)
			walk(m.buckets[k], p)
		}
	}
	walk(root, nil)
	return out
}

// opsInput hands out the input's bytes, zeros past its end.
type opsInput struct {
	b []byte
	i int
}

func (in *opsInput) next() byte {
	if in.i >= len(in.b) {
		return 0
	}
	in.i++
	return in.b[in.i-1]
}

func (in *opsInput) done() bool { return in.i >= len(in.b) }

// opsRun is the state of one execution: the database, its open write and
// read transactions, and the models.
type opsRun struct {
	t    *testing.T
	path string
	opts quiver.Options
	db   *quiver.DB

	tx        *quiver.Tx   // open write transaction, or nil
	committed *modelBucket // the last commit
	work      *modelBucket // what tx holds, when tx is open

	reader *quiver.Tx   // open read transaction, or nil
	snap   *modelBucket // what reader holds

	op         int      // index of the operation being applied
	compacting bool     // operations run inside a compaction
	trace      []string // one line per operation, printed on failure
	valueBytes int
	backups    int
}

func runOps(t *testing.T, data []byte) {
	in := &opsInput{b: data}
	mode := in.next()
	types := quiver.FreelistTypes()
	r := &opsRun{
		t:         t,
		path:      filepath.Join(t.TempDir(), "db"),
		committed: newModelBucket(),
		opts: quiver.Options{
			PageSize:     opsPageSize,
			NoSync:       true, // nothing here is about durability; fsync would dominate
			FreelistType: types[int(mode)%len(types)],
		},
	}
	if mode&0x10 != 0 {
		r.opts.AllocSize = 8 * opsPageSize // many small growths and remaps
	}
	r.logf("open: freelist %s, alloc size %d", r.opts.FreelistType, r.opts.AllocSize)
	r.open()
	t.Cleanup(r.close)
	for r.op = 0; r.op < opsMaxOps && !in.done(); r.op++ {
		r.apply(in)
	}
	r.endReader()
	r.commit()
	r.verify("at the end")
	r.check("at the end")
	if os.Getenv("QUIVER_OPS_TRACE") != "" {
		t.Logf("operations:\n%s", strings.Join(r.trace, "\n"))
	}
}

// logf records a line of the trace.
func (r *opsRun) logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf("%3d ", r.op)+fmt.Sprintf(format, args...))
}

// fatalf fails the execution with the trace of operations that led there.
func (r *opsRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("op %d: %s\noperations:\n%s", r.op, fmt.Sprintf(format, args...), strings.Join(r.trace, "\n"))
}

func (r *opsRun) open() {
	db, err := quiver.Open(r.path, 0o600, &r.opts)
	if err != nil {
		r.fatalf("open: %v", err)
	}
	r.db = db
}

// close ends whatever is open; it runs as a cleanup after a failure too.
func (r *opsRun) close() {
	if r.reader != nil {
		_ = r.reader.Rollback()
		r.reader = nil
	}
	if r.tx != nil {
		_ = r.tx.Rollback()
		r.tx = nil
	}
	if r.db != nil {
		if err := r.db.Close(); err != nil {
			r.t.Errorf("close: %v", err)
		}
		r.db = nil
	}
}

// begin opens the write transaction if none is.
func (r *opsRun) begin() {
	if r.tx != nil {
		return
	}
	tx, err := r.db.Begin(true)
	if err != nil {
		r.fatalf("begin: %v", err)
	}
	r.tx = tx
	r.work = r.committed.clone()
}

// bucket returns the database and model buckets at path in the write
// transaction.
func (r *opsRun) bucket(path []string) (*quiver.Bucket, *modelBucket) {
	b := r.tx.Bucket([]byte(path[0]))
	m := r.work.buckets[path[0]]
	for _, name := range path[1:] {
		if b == nil {
			break
		}
		b = b.Bucket([]byte(name))
		m = m.buckets[name]
	}
	if b == nil {
		r.fatalf("bucket %q: missing from the write transaction", path)
	}
	return b, m
}

// pickBucket names a bucket of the write transaction by an argument byte;
// ok is false when there is none.
func (r *opsRun) pickBucket(arg byte) (path []string, ok bool) {
	paths := modelPaths(r.work)
	if len(paths) == 0 {
		return nil, false
	}
	return paths[int(arg)%len(paths)], true
}

// value builds a deterministic value of the length an argument byte picks,
// distinct for each operation.
func (r *opsRun) value(arg byte) string {
	n := opsValueLens[int(arg)%len(opsValueLens)]
	if r.valueBytes+n > opsMaxValueBytes {
		n = int(arg) % 8
	}
	r.valueBytes += n
	tag := fmt.Sprintf("v%d.", r.op)
	if n <= len(tag) {
		return tag[:n]
	}
	return tag + strings.Repeat(string(rune('a'+r.op%26)), n-len(tag))
}

// expect fails unless err is want (nil: no error).
func (r *opsRun) expect(what string, err, want error) {
	r.t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		r.fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func (r *opsRun) apply(in *opsInput) {
	op := int(in.next()) % opCount
	if r.compacting && (op == opReopen || op == opCompact) {
		arg := in.next()
		r.logf("opcode %d (%d) skipped during a compaction", op, arg)
		return
	}
	switch op {
	case opCommit:
		r.logf("commit")
		r.endWrite(true)
		return
	case opRollback:
		r.logf("rollback")
		r.endWrite(false)
		return
	case opReopen:
		r.reopen(in.next())
		return
	case opReader:
		r.toggleReader()
		return
	case opBackup:
		r.backup(in.next())
		return
	case opCompact:
		r.compact(in, in.next())
		return
	}
	r.begin()
	switch op {
	case opPut:
		pick, k, vl := in.next(), opsKey(in.next()), in.next()
		path, ok := r.pickBucket(pick)
		if !ok {
			r.logf("put %.12q: no bucket", k)
			return
		}
		r.put(path, k, r.value(vl), true)
	case opPutRun:
		pick, first, count, vl, fill := in.next(), in.next(), in.next(), in.next(), in.next()
		path, ok := r.pickBucket(pick)
		if !ok {
			r.logf("put run: no bucket")
			return
		}
		b, _ := r.bucket(path)
		// FillPercent is not persisted, but the write transaction keeps
		// the bucket it handed out, so it applies at this commit.
		b.FillPercent = opsFillPercents[int(fill)%len(opsFillPercents)]
		n := 1 + int(count)%40
		r.logf("put run in %q: %d keys from %d, fill %v", path, n, first%120, b.FillPercent)
		for i := 0; i < n; i++ {
			j := (int(first)%120 + i) % 120
			if count&0x80 != 0 {
				j = (int(first)%120 + n - 1 - i) % 120 // descending
			}
			r.put(path, opsKey(byte(j)), r.value(vl), false)
		}
	case opDelete:
		pick, k := in.next(), opsKey(in.next())
		path, ok := r.pickBucket(pick)
		if !ok {
			r.logf("delete %.12q: no bucket", k)
			return
		}
		b, m := r.bucket(path)
		r.logf("delete %q %.12q", path, k)
		err := b.Delete([]byte(k))
		if _, isBucket := m.buckets[k]; isBucket {
			r.expect("delete of a bucket's name", err, quiver.ErrIncompatibleValue)
			return
		}
		r.expect("delete", err, nil)
		delete(m.keys, k)
	case opCreateBucket:
		pick, name, mode := in.next(), opsName(in.next()), in.next()
		r.createBucket(pick, name, mode&1 != 0)
	case opDeleteBucket:
		pick, name := in.next(), opsName(in.next())
		r.deleteBucket(pick, name)
	case opNestedPut:
		p, k, vl := in.next(), opsKey(in.next()), in.next()
		r.nestedPut(p, k, r.value(vl))
	case opNextSequence:
		path, ok := r.pickBucket(in.next())
		if !ok {
			r.logf("next sequence: no bucket")
			return
		}
		b, m := r.bucket(path)
		r.logf("next sequence %q (from %d)", path, m.seq)
		s, err := b.NextSequence()
		if m.seq == ^uint64(0) {
			r.expect("NextSequence at the maximum", err, quiver.ErrSequenceOverflow)
			return
		}
		r.expect("NextSequence", err, nil)
		m.seq++
		if s != m.seq || b.Sequence() != m.seq {
			r.fatalf("NextSequence = %d, Sequence = %d, want %d", s, b.Sequence(), m.seq)
		}
	case opSetSequence:
		pick, v := in.next(), in.next()
		path, ok := r.pickBucket(pick)
		if !ok {
			r.logf("set sequence: no bucket")
			return
		}
		seq := uint64(v)
		if int(v) >= 256-len(opsSequences) {
			seq = opsSequences[int(v)-(256-len(opsSequences))]
		}
		b, m := r.bucket(path)
		r.logf("set sequence %q %d", path, seq)
		r.expect("SetSequence", b.SetSequence(seq), nil)
		m.seq = seq
		if b.Sequence() != seq {
			r.fatalf("Sequence = %d after SetSequence(%d)", b.Sequence(), seq)
		}
	case opCursorDelete:
		pick, start, mask, seek := in.next(), in.next(), in.next(), opsKey(in.next())
		path, ok := r.pickBucket(pick)
		if !ok {
			r.logf("cursor delete: no bucket")
			return
		}
		r.cursorDelete(path, start, mask, seek)
	case opGet:
		pick, k := in.next(), opsKey(in.next())
		path, ok := r.pickBucket(pick)
		if !ok {
			r.logf("get %.12q: no bucket", k)
			return
		}
		b, m := r.bucket(path)
		r.logf("get %q %.12q", path, k)
		got := b.Get([]byte(k))
		want, exists := m.keys[k]
		if exists != (got != nil) || string(got) != want {
			r.fatalf("Get(%.12q) = %.20q (nil %v), want %.20q (exists %v)", k, got, got == nil, want, exists)
		}
	}
}

// put puts k in the bucket at path; log is false for the puts of a run,
// which is traced as one line.
func (r *opsRun) put(path []string, k, v string, log bool) {
	b, m := r.bucket(path)
	if log {
		r.logf("put %q %.12q (%d bytes)", path, k, len(v))
	}
	err := b.Put([]byte(k), []byte(v))
	if _, isBucket := m.buckets[k]; isBucket {
		r.expect("put over a bucket", err, quiver.ErrIncompatibleValue)
		return
	}
	r.expect("put", err, nil)
	m.keys[k] = v
}

// createBucket creates name in the bucket pick names, or at the root.
func (r *opsRun) createBucket(pick byte, name string, ifNotExists bool) {
	paths := modelPaths(r.work)
	j := int(pick) % (len(paths) + 1)
	var parent []string
	if j > 0 {
		parent = paths[j-1]
	}
	if len(parent) >= opsMaxDepth {
		r.logf("create bucket %q in %q: too deep", name, parent)
		return
	}
	r.logf("create bucket %q in %q (if not exists %v)", name, parent, ifNotExists)
	m := r.work
	var err error
	var got *quiver.Bucket
	if parent == nil {
		if ifNotExists {
			got, err = r.tx.CreateBucketIfNotExists([]byte(name))
		} else {
			got, err = r.tx.CreateBucket([]byte(name))
		}
	} else {
		var b *quiver.Bucket
		b, m = r.bucket(parent)
		if ifNotExists {
			got, err = b.CreateBucketIfNotExists([]byte(name))
		} else {
			got, err = b.CreateBucket([]byte(name))
		}
	}
	_, isKey := m.keys[name]
	_, isBucket := m.buckets[name]
	switch {
	case isKey:
		r.expect("create bucket over a key", err, quiver.ErrIncompatibleValue)
	case isBucket && !ifNotExists:
		r.expect("create of an existing bucket", err, quiver.ErrBucketExists)
	default:
		r.expect("create bucket", err, nil)
		if got == nil {
			r.fatalf("create bucket returned no bucket")
		}
		if !isBucket {
			m.buckets[name] = newModelBucket()
		} else if got.Sequence() != m.buckets[name].seq {
			r.fatalf("CreateBucketIfNotExists of an existing bucket: sequence %d, want %d", got.Sequence(), m.buckets[name].seq)
		}
	}
}

// deleteBucket deletes name in the bucket pick names, or at the root.
func (r *opsRun) deleteBucket(pick byte, name string) {
	paths := modelPaths(r.work)
	j := int(pick) % (len(paths) + 1)
	r.logf("delete bucket %q in %q", name, func() []string {
		if j == 0 {
			return nil
		}
		return paths[j-1]
	}())
	m := r.work
	var err error
	if j == 0 {
		err = r.tx.DeleteBucket([]byte(name))
	} else {
		var b *quiver.Bucket
		b, m = r.bucket(paths[j-1])
		err = b.DeleteBucket([]byte(name))
	}
	_, isKey := m.keys[name]
	_, isBucket := m.buckets[name]
	switch {
	case isKey:
		r.expect("delete bucket of a key", err, quiver.ErrIncompatibleValue)
	case !isBucket:
		r.expect("delete of a missing bucket", err, quiver.ErrBucketNotFound)
	default:
		r.expect("delete bucket", err, nil)
		delete(m.buckets, name)
	}
}

// nestedPut creates (if needed) a path of two or three buckets that p
// names, then puts k in the last one.
func (r *opsRun) nestedPut(p byte, k, v string) {
	path := []string{opsName(p % 4), opsName(p >> 2 % 16)}
	if p&0x40 != 0 {
		path = append(path, opsName(p>>3%16))
	}
	r.logf("nested put %q %.12q (%d bytes)", path, k, len(v))
	b, err := r.tx.CreateBucketIfNotExists([]byte(path[0]))
	r.expect("create top bucket", err, nil)
	m := r.work.buckets[path[0]]
	if m == nil {
		m = newModelBucket()
		r.work.buckets[path[0]] = m
	}
	for _, name := range path[1:] {
		child, err := b.CreateBucketIfNotExists([]byte(name))
		if _, isKey := m.keys[name]; isKey {
			r.expect("create bucket over a key", err, quiver.ErrIncompatibleValue)
			return
		}
		r.expect("create nested bucket", err, nil)
		if m.buckets[name] == nil {
			m.buckets[name] = newModelBucket()
		}
		b, m = child, m.buckets[name]
	}
	err = b.Put([]byte(k), []byte(v))
	if _, isBucket := m.buckets[k]; isBucket {
		r.expect("put over a bucket", err, quiver.ErrIncompatibleValue)
		return
	}
	r.expect("nested put", err, nil)
	m.keys[k] = v
}

// cursorDelete walks a bucket with a cursor, forwards or backwards from the
// start that start picks, deleting the entries whose bit is set in mask
// (taken in turn), and checks each step against the model.
func (r *opsRun) cursorDelete(path []string, start, mask byte, seek string) {
	b, m := r.bucket(path)
	all := m.entries()
	backward := start&1 != 0
	from := 0 // index in all of the first entry visited
	c := b.Cursor()
	var k, v []byte
	var how string
	switch {
	case start&2 == 0 && !backward:
		how = "First"
		k, v = c.First()
	case start&2 == 0:
		how = "Last"
		k, v = c.Last()
		from = len(all) - 1
	default:
		how = fmt.Sprintf("Seek(%.12q)", seek)
		k, v = c.Seek([]byte(seek))
		from = sort.Search(len(all), func(i int) bool { return all[i].name >= seek })
	}
	steps := 1 + int(start>>2)%64
	r.logf("cursor delete %q: %s, %s, mask %08b, %d steps", path, how, map[bool]string{false: "Next", true: "Prev"}[backward], mask, steps)
	for i, step := from, 0; step < steps; step++ {
		if i < 0 || i >= len(all) {
			if k != nil {
				r.fatalf("cursor step %d: got %.12q past the end", step, k)
			}
			return
		}
		want := all[i]
		if string(k) != want.name {
			r.fatalf("cursor step %d: got key %.12q, want %.12q", step, k, want.name)
		}
		if want.bucket != nil && v != nil || want.bucket == nil && string(v) != want.value {
			r.fatalf("cursor step %d at %.12q: got value %.20q, want %.20q (bucket %v)", step, k, v, want.value, want.bucket != nil)
		}
		if mask>>(step%8)&1 != 0 {
			err := c.Delete()
			if want.bucket != nil {
				r.expect("Cursor.Delete on a bucket", err, quiver.ErrIncompatibleValue)
			} else {
				r.expect("Cursor.Delete", err, nil)
				delete(m.keys, want.name)
			}
		}
		if backward {
			k, v = c.Prev()
			i--
		} else {
			k, v = c.Next()
			i++
		}
	}
}

// endWrite commits or rolls back the write transaction, if one is open,
// and compares the database with the model.
func (r *opsRun) endWrite(commit bool) {
	if r.tx == nil {
		return
	}
	// The transaction sees its own writes.
	if err := compareTx(r.tx, r.work); err != nil {
		r.fatalf("in the write transaction: %v", err)
	}
	if commit {
		if err := r.tx.Commit(); err != nil {
			r.fatalf("commit: %v", err)
		}
		r.committed = r.work
	} else if err := r.tx.Rollback(); err != nil {
		r.fatalf("rollback: %v", err)
	}
	r.tx, r.work = nil, nil
	if commit {
		r.verify("after commit")
		r.check("after commit")
	} else {
		r.verify("after rollback")
	}
	if r.reader != nil {
		if err := compareTx(r.reader, r.snap); err != nil {
			r.fatalf("read transaction across a commit: %v", err)
		}
	}
}

func (r *opsRun) commit() { r.endWrite(true) }

// verify compares the last commit with the model in a read transaction.
func (r *opsRun) verify(when string) {
	err := r.db.View(func(tx *quiver.Tx) error { return compareTx(tx, r.committed) })
	if err != nil {
		r.fatalf("%s: %v", when, err)
	}
}

// check runs Check in a read transaction.
func (r *opsRun) check(when string) {
	var problems []string
	err := r.db.View(func(tx *quiver.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, err.Error())
		}
		return nil
	})
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		r.fatalf("check %s:\n%s", when, strings.Join(problems, "\n"))
	}
}

// toggleReader begins a read transaction, or compares the open one with
// the commit it began at and ends it.
func (r *opsRun) toggleReader() {
	if r.reader == nil {
		r.logf("begin reader")
		tx, err := r.db.Begin(false)
		if err != nil {
			r.fatalf("begin reader: %v", err)
		}
		r.reader, r.snap = tx, r.committed
		return
	}
	r.logf("end reader")
	r.endReader()
}

func (r *opsRun) endReader() {
	if r.reader == nil {
		return
	}
	err := compareTx(r.reader, r.snap)
	if rerr := r.reader.Rollback(); rerr != nil && err == nil {
		err = fmt.Errorf("rollback: %w", rerr)
	}
	r.reader, r.snap = nil, nil
	if err != nil {
		r.fatalf("read transaction: %v", err)
	}
}

// backup copies a snapshot with WriteTo (a hot backup while a write
// transaction is open), opens the copy, compares it with the model of its
// snapshot, checks it, and writes to it.
func (r *opsRun) backup(mode byte) {
	if r.backups >= opsMaxBackups {
		r.logf("backup: no more")
		return
	}
	r.backups++
	tx, want, from := r.reader, r.snap, "the read transaction"
	switch {
	case mode&1 != 0 && r.reader != nil:
	case mode&2 != 0:
		// A write transaction's copy is the commit it started from: its
		// own changes are not on disk yet.
		r.begin()
		tx, want, from = r.tx, r.committed, "the write transaction"
	default:
		var err error
		if tx, err = r.db.Begin(false); err != nil {
			r.fatalf("begin: %v", err)
		}
		defer func() { _ = tx.Rollback() }()
		want, from = r.committed, "a new read transaction"
	}
	r.logf("backup from %s", from)
	var buf bytes.Buffer
	n, err := tx.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		r.fatalf("WriteTo: %d bytes, buffer %d: %v", n, buf.Len(), err)
	}
	if n > tx.Size() {
		r.fatalf("WriteTo wrote %d bytes, more than Size %d", n, tx.Size())
	}
	path := fmt.Sprintf("%s.backup%d", r.path, r.backups)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		r.fatalf("%v", err)
	}
	db, err := quiver.Open(path, 0o600, &r.opts)
	if err != nil {
		r.fatalf("open the backup from %s: %v", from, err)
	}
	defer db.Close()
	verify := func(when string, want *modelBucket) {
		err := db.View(func(tx *quiver.Tx) error {
			if err := compareTx(tx, want); err != nil {
				return err
			}
			var problems []string
			for err := range tx.Check() {
				problems = append(problems, err.Error())
			}
			if len(problems) > 0 {
				return fmt.Errorf("check:\n%s", strings.Join(problems, "\n"))
			}
			return nil
		})
		if err != nil {
			r.fatalf("backup from %s, %s: %v", from, when, err)
		}
	}
	verify("as copied", want)
	// The copy takes writes: its freelist is its own.
	after := want.clone()
	err = db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("backup"))
		if err != nil {
			return err
		}
		for i := 0; i < 20; i++ {
			if err := b.Put([]byte(fmt.Sprintf("%03d", i)), bytes.Repeat([]byte{'b'}, 200)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.fatalf("backup from %s: write: %v", from, err)
	}
	m := after.buckets["backup"]
	if m == nil {
		m = newModelBucket()
		after.buckets["backup"] = m
	}
	for i := 0; i < 20; i++ {
		m.keys[fmt.Sprintf("%03d", i)] = strings.Repeat("b", 200)
	}
	verify("after a write", after)
}

// opsTxMaxSizes are the compaction copy's transaction sizes: one
// transaction, a commit per key, and in between.
var opsTxMaxSizes = []int64{0, 1, 4096, 1 << 20}

// compact commits the write transaction, then compacts the database online
// while the operations that follow in the input run, committed, at two
// stages: before the catch-up round (the copy has to find and apply their
// changes) and just before writers are blocked for the last round. Then
// it compares the database and the open reader, which began on the old
// file, with their models.
func (r *opsRun) compact(in *opsInput, mode byte) {
	during, last := int(mode&7), int(mode>>5&3)
	max := opsTxMaxSizes[mode>>3&3]
	r.logf("compact (%d operations during the catch-up, %d before the last round, tx max size %d)", during, last, max)
	r.endWrite(true) // the last round needs the writer lock
	run := func(n int) {
		for ; n > 0 && !in.done() && r.op+1 < opsMaxOps; n-- {
			r.op++
			r.apply(in)
		}
		r.endWrite(true)
	}
	unhook := testhook.Set(r.db.Path(), &testhook.Hooks{Compact: func(_, stage string) {
		switch stage {
		case "round":
			run(during)
			during = 0
		case "final":
			run(last)
		}
	}})
	r.compacting = true
	defer func() { unhook(); r.compacting = false }()
	if _, err := r.db.Compact(context.Background(), &quiver.CompactOptions{TxMaxSize: max}); err != nil {
		r.fatalf("compact: %v", err)
	}
	r.verify("after compaction")
	r.check("after compaction")
	if r.reader != nil {
		if err := compareTx(r.reader, r.snap); err != nil {
			r.fatalf("read transaction across a compaction: %v", err)
		}
	}
}

// reopen ends the transactions, closes the database and opens it again,
// with the other freelist or through a read-only open if mode says so.
func (r *opsRun) reopen(mode byte) {
	r.logf("reopen (commit first %v, other freelist %v, read-only between %v)", mode&1 != 0, mode&2 != 0, mode&4 != 0)
	r.endReader()
	r.endWrite(mode&1 != 0)
	if err := r.db.Close(); err != nil {
		r.db = nil
		r.fatalf("close: %v", err)
	}
	r.db = nil
	if mode&2 != 0 {
		types := quiver.FreelistTypes()
		for i, ft := range types {
			if ft == r.opts.FreelistType {
				r.opts.FreelistType = types[(i+1)%len(types)]
				break
			}
		}
	}
	if mode&4 != 0 {
		ro := r.opts
		ro.ReadOnly = true
		db, err := quiver.Open(r.path, 0o600, &ro)
		if err != nil {
			r.fatalf("read-only open: %v", err)
		}
		r.db = db
		r.verify("read-only open")
		r.check("read-only open")
		if _, err := db.Begin(true); !errors.Is(err, quiver.ErrDatabaseReadOnly) {
			r.fatalf("Begin(true) on a read-only database: %v", err)
		}
		if err := db.Close(); err != nil {
			r.fatalf("read-only close: %v", err)
		}
		r.db = nil
	}
	r.open()
	r.verify("after reopen")
	r.check("after reopen")
}

// compareTx compares everything tx sees with the model root: the top-level
// bucket names through the root cursor both ways and by name, then every
// bucket.
func compareTx(tx *quiver.Tx, root *modelBucket) error {
	want := root.entries()
	c := tx.Cursor()
	i := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if i >= len(want) {
			return fmt.Errorf("root: extra bucket %.12q", k)
		}
		if string(k) != want[i].name || v != nil {
			return fmt.Errorf("root: bucket %d is %.12q (value %.12q), want %.12q", i, k, v, want[i].name)
		}
		i++
	}
	if i != len(want) {
		return fmt.Errorf("root: bucket %.12q missing going forwards", want[i].name)
	}
	i = len(want) - 1
	for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
		if i < 0 || string(k) != want[i].name {
			return fmt.Errorf("root backwards: got bucket %.12q at %d", k, i)
		}
		i--
	}
	if i != -1 {
		return fmt.Errorf("root: bucket %.12q missing going backwards", want[i].name)
	}
	for _, name := range opsNames() {
		if (tx.Bucket([]byte(name)) != nil) != (root.buckets[name] != nil) {
			return fmt.Errorf("root: Bucket(%q) != nil is %v, want %v", name, tx.Bucket([]byte(name)) != nil, root.buckets[name] != nil)
		}
	}
	for _, e := range want {
		if err := compareBucket(tx.Bucket([]byte(e.name)), e.bucket, e.name); err != nil {
			return err
		}
	}
	return tx.Err()
}

// compareBucket compares b and its nested buckets with m: sequence, the
// entries through a cursor forwards and backwards, Seek to each entry and
// just past it, and Get of each.
func compareBucket(b *quiver.Bucket, m *modelBucket, path string) error {
	if b == nil {
		return fmt.Errorf("%s: bucket missing", path)
	}
	if b.Sequence() != m.seq {
		return fmt.Errorf("%s: sequence %d, want %d", path, b.Sequence(), m.seq)
	}
	want := m.entries()
	same := func(k, v []byte, e modelEntry) error {
		if string(k) != e.name {
			return fmt.Errorf("key %.12q, want %.12q", k, e.name)
		}
		if e.bucket != nil {
			if v != nil {
				return fmt.Errorf("bucket %.12q has value %.12q", k, v)
			}
			return nil
		}
		if v == nil || string(v) != e.value {
			return fmt.Errorf("%.12q = %.20q (%d bytes, nil %v), want %.20q (%d bytes)", k, v, len(v), v == nil, e.value, len(e.value))
		}
		return nil
	}
	c := b.Cursor()
	i := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if i >= len(want) {
			return fmt.Errorf("%s: extra key %.12q going forwards", path, k)
		}
		if err := same(k, v, want[i]); err != nil {
			return fmt.Errorf("%s: forwards at %d: %v", path, i, err)
		}
		i++
	}
	if i != len(want) {
		return fmt.Errorf("%s: key %.12q missing going forwards", path, want[i].name)
	}
	i = len(want) - 1
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if i < 0 {
			return fmt.Errorf("%s: extra key %.12q going backwards", path, k)
		}
		if err := same(k, v, want[i]); err != nil {
			return fmt.Errorf("%s: backwards at %d: %v", path, i, err)
		}
		i--
	}
	if i != -1 {
		return fmt.Errorf("%s: key %.12q missing going backwards", path, want[i].name)
	}
	for i, e := range want {
		k, v := c.Seek([]byte(e.name))
		if err := same(k, v, e); err != nil {
			return fmt.Errorf("%s: Seek: %v", path, err)
		}
		k, v = c.Seek([]byte(e.name + "\x00"))
		if i+1 < len(want) {
			if err := same(k, v, want[i+1]); err != nil {
				return fmt.Errorf("%s: Seek past %.12q: %v", path, e.name, err)
			}
		} else if k != nil {
			return fmt.Errorf("%s: Seek past the last key gave %.12q", path, k)
		}
		got := b.Get([]byte(e.name))
		if e.bucket != nil {
			if got != nil {
				return fmt.Errorf("%s: Get of bucket %.12q = %.12q", path, e.name, got)
			}
			if err := compareBucket(b.Bucket([]byte(e.name)), e.bucket, path+"/"+e.name); err != nil {
				return err
			}
		} else if got == nil || !bytes.Equal(got, []byte(e.value)) {
			return fmt.Errorf("%s: Get(%.12q) = %.20q (nil %v), want %.20q", path, e.name, got, got == nil, e.value)
		}
	}
	return nil
}

// opsSeeds are inputs that reach every operation; testdata/fuzz/FuzzOps
// holds longer ones.
func opsSeeds() [][]byte {
	return [][]byte{
		// Nested puts two and three deep, reads, a delete, commits.
		{0, opNestedPut, 0x04, 1, 3, opNestedPut, 0x44, 2, 4, opGet, 0, 1, opCommit,
			opPut, 1, 5, 2, opDelete, 0, 1, opGet, 0, 1, opCommit},
		// Runs of puts with values spanning overflow pages, a cursor that
		// deletes as it goes forwards and one backwards, a reopen.
		{1, opCreateBucket, 0, 0, 0, opPutRun, 0, 0, 39, 3, 1, opCommit,
			opPutRun, 0, 10, 0x90, 9, 3, opCursorDelete, 0, 0xfc, 0x55, 0, opCommit,
			opCursorDelete, 0, 0xfd, 0xff, 0, opReopen, 1, opCursorDelete, 0, 0xfe, 0x0f, 30},
		// Buckets over keys and keys over buckets, sequences up to the
		// overflow, a rollback, a bucket deleted with its children.
		{0x10, opCreateBucket, 0, 8, 0, opPut, 0, 0, 1, opCreateBucket, 1, 8, 1, opPut, 0, 8, 1,
			opCreateBucket, 0, 8, 1, opCreateBucket, 0, 8, 0, opSetSequence, 0, 0xff, opNextSequence, 0,
			opSetSequence, 0, 0xfe, opNextSequence, 0, opCommit, opNextSequence, 0, opRollback,
			opDeleteBucket, 1, 8, opDeleteBucket, 0, 8, opDeleteBucket, 0, 8, opCommit},
		// A reader held across commits, reopens with the other freelist and
		// through a read-only open.
		{1, opNestedPut, 0x41, 7, 8, opCommit, opReader, opPutRun, 0, 0, 20, 7, 0, opCommit,
			opDeleteBucket, 0, 1, opCommit, opReader, opReopen, 6, opNestedPut, 0x41, 7, 9,
			opReopen, 3, opReader, opPutRun, 1, 50, 0x85, 2, 4, opReopen, 0},
		// Long keys, in leaves and branches.
		{0x11, opCreateBucket, 0, 3, 0, opPutRun, 0, 0, 39, 1, 3, opPut, 0, 0xf8, 1, opPut, 0, 0xf9, 1,
			opPut, 0, 0xfc, 2, opPut, 0, 0xfd, 2, opCommit, opDelete, 0, 0xfd, opCursorDelete, 0, 0x22, 0x33, 0xfb,
			opCommit, opReopen, 0},
		// Online compactions: the first with a reader held across it and,
		// while it catches up, puts, a delete, a cursor delete, a bucket
		// deleted, a nested bucket created and a sequence; the second with
		// a commit per key and changes just before the last round.
		{1, opNestedPut, 0x41, 7, 8, opPutRun, 0, 0, 60, 4, 0, opCreateBucket, 0, 9, 0, opCommit,
			opReader, opCompact, 7 | 2<<3,
			opPut, 0, 3, 5, opDelete, 0, 7, opCursorDelete, 0, 0x10, 0x0f, 0, opDeleteBucket, 0, 9,
			opCreateBucket, 1, 12, 0, opNextSequence, 0, opPut, 1, 99, 9,
			opReader, opCompact, 1<<3 | 3<<5, opPutRun, 0, 5, 30, 6, 2, opDelete, 0, 5, opNextSequence, 0,
			opReopen, 0},
	}
}
