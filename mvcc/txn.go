package mvcc

import (
	"bytes"
	"fmt"

	"github.com/quiverdb/quiver"
)

// CompareTarget is what a Compare looks at.
type CompareTarget int

const (
	CompareValue CompareTarget = iota
	CompareVersion
	CompareCreate
	CompareMod
	CompareLease
)

// CompareResult is how a Compare relates the key's field to its operand.
type CompareResult int

const (
	Equal CompareResult = iota
	Greater
	Less
	NotEqual
)

// Compare is a condition of a Txn on a key (or each key of a range).
type Compare struct {
	Key []byte
	// RangeEnd, if set, makes the condition hold for every key in
	// [Key, RangeEnd) (an empty non-nil end: every key from Key on).
	RangeEnd []byte
	Target   CompareTarget
	Result   CompareResult
	// The operand of Target.
	Value                                []byte
	Version, CreateRevision, ModRevision int64
	Lease                                int64
}

// OpType is the kind of an Op.
type OpType int

const (
	OpTypeRange OpType = iota
	OpTypePut
	OpTypeDelete
)

// Op is one operation of a Txn.
type Op struct {
	Type  OpType
	Key   []byte
	End   []byte // Range and Delete: see Range
	Value []byte // Put
	Lease int64  // Put
	Range RangeOptions
}

// OpPut, OpDelete and OpRange build operations.
func OpPut(key, value []byte, lease int64) Op {
	return Op{Type: OpTypePut, Key: key, Value: value, Lease: lease}
}
func OpDelete(key, end []byte) Op { return Op{Type: OpTypeDelete, Key: key, End: end} }
func OpRange(key, end []byte, ro RangeOptions) Op {
	return Op{Type: OpTypeRange, Key: key, End: end, Range: ro}
}

// Txn is a transaction: if every condition in If holds, Then runs, else
// Else; either way as one atomic change with one revision.
type Txn struct {
	If   []Compare
	Then []Op
	Else []Op
	// NoWait returns as soon as the change is applied and visible to later
	// writes, without waiting for it to be durable (a crash may lose it;
	// reads see it once it is durable).
	NoWait bool
}

// OpResult is the result of one Op: Range for a range, Deleted for a
// delete.
type OpResult struct {
	Range   *RangeResult
	Deleted int64
}

// TxnResult is the result of a Txn.
type TxnResult struct {
	Succeeded bool
	// Rev is the revision of the transaction's change, or the current
	// revision if it changed nothing.
	Rev     int64
	Results []OpResult
}

// Txn runs t. The conditions and the operations see every write applied
// before it, durable or not, and the operations see the earlier
// operations of t. It returns once its change is durable unless t.NoWait.
func (s *Store) Txn(t *Txn) (*TxnResult, error) {
	if err := checkTxn(t); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if err := s.writable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	for len(s.pending) >= s.opts.MaxBatchOps && s.failed == nil && !s.closed {
		s.room.Wait()
	}
	if err := s.writable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	// Records leave the uncommitted map only under s.mu, once durable: a
	// revision missing from it is in an engine snapshot taken now. Only
	// compares and ranges read records.
	r := &reader{uncommitted: s.uncommitted}
	var tx *quiver.Tx
	if needsRecords(t) {
		var err error
		if tx, err = s.db.Begin(false); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		r.revs = tx.Bucket(revBucket)
	}
	res, b, err := s.apply(r, t)
	if b == nil && err == nil && s.rev > s.committed.Load() {
		// Nothing changed, but what t read may include writes not yet
		// durable: t returns when they are.
		if b = s.inflight; len(s.pending) > 0 {
			b = s.batch
		}
	}
	s.mu.Unlock()
	if tx != nil {
		// The results hold copies: the snapshot is not kept while t
		// waits for its commit.
		if rerr := tx.Rollback(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return nil, err
	}
	if b != nil {
		s.poke()
		if !t.NoWait {
			<-b.done
			if b.err != nil {
				return nil, fmt.Errorf("%w: %w", ErrFailed, b.err)
			}
		}
	}
	return res, nil
}

// checkTxn validates the keys and ranges of t's conditions and operations.
func checkTxn(t *Txn) error {
	for _, c := range t.If {
		if err := checkRange(c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	for _, ops := range [][]Op{t.Then, t.Else} {
		if err := checkOps(ops); err != nil {
			return err
		}
	}
	return nil
}

// needsRecords reports whether t reads records: its compares or ranges.
func needsRecords(t *Txn) bool {
	if len(t.If) > 0 {
		return true
	}
	for _, ops := range [][]Op{t.Then, t.Else} {
		for _, op := range ops {
			if op.Type == OpTypeRange {
				return true
			}
		}
	}
	return false
}

func (s *Store) writable() error {
	if s.closed {
		return ErrClosed
	}
	if s.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	return nil
}

// checkOps validates the keys of ops and that no key is changed twice.
func checkOps(ops []Op) error {
	if len(ops) == 1 && ops[0].Type == OpTypePut {
		return checkPut(ops[0])
	}
	puts := map[string]bool{}
	for _, op := range ops {
		switch op.Type {
		case OpTypePut:
			if err := checkPut(op); err != nil {
				return err
			}
			if puts[string(op.Key)] {
				return fmt.Errorf("%w: %q", ErrDuplicateKey, op.Key)
			}
			puts[string(op.Key)] = true
		case OpTypeDelete, OpTypeRange:
			if err := checkRange(op.Key, op.End); err != nil {
				return err
			}
		default:
			return fmt.Errorf("mvcc: unknown operation type %d", op.Type)
		}
	}
	for _, op := range ops {
		if op.Type != OpTypeDelete {
			continue
		}
		for k := range puts {
			if inRange([]byte(k), op.Key, op.End) {
				return fmt.Errorf("%w: %q is put and deleted", ErrDuplicateKey, k)
			}
		}
	}
	return nil
}

// checkPut checks a put's key, and that its record fits in an engine
// value: a put that could not commit would fail the store.
func checkPut(op Op) error {
	if len(op.Key) == 0 {
		return ErrEmptyKey
	}
	return checkPutSize(len(op.Key), len(op.Value))
}

// checkPutSize checks that the record of a key and value of these lengths
// fits in an engine value.
func checkPutSize(key, value int) error {
	if n := recordSize(&KeyValue{}) + key + value; int64(n) > quiver.MaxValueSize {
		return fmt.Errorf("%w: a key and value of %d bytes", quiver.ErrValueTooLarge, key+value)
	}
	return nil
}

func inRange(k, key, end []byte) bool {
	if end == nil {
		return bytes.Equal(k, key)
	}
	return bytes.Compare(k, key) >= 0 && (isToEnd(end) || bytes.Compare(k, end) < 0)
}

// apply evaluates and applies t in memory. s.mu held. It returns the batch
// the change joined, nil if nothing changed.
func (s *Store) apply(r *reader, t *Txn) (*TxnResult, *batch, error) {
	begin := s.rev
	ok, err := s.compare(r, t.If, begin)
	if err != nil {
		return nil, nil, err
	}
	ops := t.Then
	if !ok {
		ops = t.Else
	}
	// Count the changes first, so that a transaction is applied whole or
	// not at all.
	main := begin + 1
	changes := 0
	deleted := map[string]bool{}
	s.index.mu.RLock()
	for _, op := range ops {
		switch op.Type {
		case OpTypePut:
			changes++
		case OpTypeDelete:
			s.index.visit(op.Key, op.End, begin, func(k []byte, _ keyState) bool {
				if !deleted[string(k)] {
					deleted[string(k)] = true
					changes++
				}
				return true
			})
		}
	}
	s.index.mu.RUnlock()
	if changes > MaxTxnOps {
		return nil, nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyOps, changes, MaxTxnOps)
	}
	// A range fails only on its revision: check them all, against the
	// revision before the transaction as etcd does, before changing
	// anything. (Rev 0, the current revision, sees the earlier changes.)
	for _, op := range ops {
		if op.Type == OpTypeRange {
			if err := s.checkRev(op.Range.Rev, begin); err != nil {
				return nil, nil, err
			}
		}
	}
	res := &TxnResult{Succeeded: ok, Rev: begin, Results: make([]OpResult, len(ops))}
	sub := int64(0)
	for i, op := range ops {
		cur := begin
		if sub > 0 {
			cur = main
		}
		switch op.Type {
		case OpTypeRange:
			rr, err := s.rangeKeys(r, op.Key, op.End, op.Range, cur)
			if err != nil {
				if sub > 0 {
					// Half applied: only a damaged store gets here.
					s.failed = err
				}
				return nil, nil, err
			}
			res.Results[i].Range = rr
		case OpTypePut:
			s.put(op.Key, op.Value, op.Lease, Revision{Main: main, Sub: sub})
			sub++
		case OpTypeDelete:
			var keys []string
			s.index.mu.RLock()
			s.index.visit(op.Key, op.End, cur, func(k []byte, _ keyState) bool {
				keys = append(keys, string(k))
				return true
			})
			s.index.mu.RUnlock()
			for _, k := range keys {
				s.tombstone([]byte(k), Revision{Main: main, Sub: sub})
				sub++
			}
			res.Results[i].Deleted = int64(len(keys))
		}
	}
	if sub == 0 {
		return res, nil, nil
	}
	s.rev = main
	res.Rev = main
	return res, s.batch, nil
}

// put applies a put of key at r. s.mu held.
func (s *Store) put(key, value []byte, lease int64, r Revision) {
	kv := KeyValue{Key: key, Value: value, Lease: lease, CreateRevision: r.Main, Version: 1}
	if st, ok := s.index.put(key, r); ok {
		kv.CreateRevision, kv.Version = st.created, st.version+1
	}
	s.stage(r, appendRecord(make([]byte, 0, recordSize(&kv)), &kv, false))
}

// tombstone applies a delete of the live key at r. s.mu held.
func (s *Store) tombstone(key []byte, r Revision) {
	s.index.tombstone(key, r)
	s.stage(r, appendRecord(nil, &KeyValue{Key: key}, true))
}

// stage adds the record of r to the pending batch. s.mu held.
func (s *Store) stage(r Revision, rec []byte) {
	var p pending
	putRevKey(p.key[:], r)
	p.rec = rec
	s.pending = append(s.pending, p)
	s.uncommitted[r] = rec
}

// compare evaluates the conditions at revision rev.
func (s *Store) compare(r *reader, cs []Compare, rev int64) (bool, error) {
	for _, c := range cs {
		rr, err := s.rangeKeys(r, c.Key, c.RangeEnd, RangeOptions{}, rev)
		if err != nil {
			return false, err
		}
		if len(rr.KVs) == 0 {
			if c.Target == CompareValue {
				return false, nil // a missing key has no value to compare
			}
			if !compareKV(&c, &KeyValue{}) {
				return false, nil
			}
			continue
		}
		for i := range rr.KVs {
			if !compareKV(&c, &rr.KVs[i]) {
				return false, nil
			}
		}
	}
	return true, nil
}

func compareKV(c *Compare, kv *KeyValue) bool {
	var cmp int
	switch c.Target {
	case CompareValue:
		cmp = bytes.Compare(kv.Value, c.Value)
	case CompareVersion:
		cmp = cmpInt(kv.Version, c.Version)
	case CompareCreate:
		cmp = cmpInt(kv.CreateRevision, c.CreateRevision)
	case CompareMod:
		cmp = cmpInt(kv.ModRevision, c.ModRevision)
	case CompareLease:
		cmp = cmpInt(kv.Lease, c.Lease)
	default:
		return false
	}
	switch c.Result {
	case Equal:
		return cmp == 0
	case Greater:
		return cmp > 0
	case Less:
		return cmp < 0
	case NotEqual:
		return cmp != 0
	}
	return false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
