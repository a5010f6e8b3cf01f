package etcddiff

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/pkg/v3/traceutil"
	etxn "go.etcd.io/etcd/server/v3/etcdserver/txn"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	betesting "go.etcd.io/etcd/server/v3/storage/backend/testing"
	emvcc "go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
)

var (
	seedFlag = flag.Uint64("seed", 0, "seed of the random operations (0: from the clock; also QUIVER_SEED)")
	opsFlag  = flag.Int("ops", 3000, "operations per run (also QUIVER_DIFF_OPS)")
)

func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed, _ = strconv.ParseUint(os.Getenv("QUIVER_SEED"), 10, 64)
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	return seed
}

// pair is one quiver store and one etcd store given the same operations.
type pair struct {
	t    *testing.T
	r    *rand.Rand
	step int
	log  []string

	path string
	qdb  *quiver.DB
	q    *mvcc.Store

	b      backend.Backend
	e      emvcc.KV
	lessor *lease.FakeLessor
}

var keys = []string{"a", "ab", "abc", "b", "ba", "c", "d", "da", "db", "e", "f", "g"}

const leases = 4 // lease ids 0 (none) to leases-1

func newPair(t *testing.T, seed uint64) *pair {
	p := &pair{t: t, r: rand.New(rand.NewPCG(seed, 7)), path: filepath.Join(t.TempDir(), "q.db")}
	p.lessor = &lease.FakeLessor{LeaseSet: map[lease.LeaseID]struct{}{}}
	for id := 1; id < leases; id++ {
		p.lessor.Grant(lease.LeaseID(id), 60)
	}
	p.b, _ = betesting.NewDefaultTmpBackend(t)
	p.openQuiver()
	p.openEtcd()
	t.Cleanup(func() {
		p.q.Close()
		p.qdb.Close()
		p.e.Close()
		betesting.Close(t, p.b)
	})
	return p
}

func (p *pair) openQuiver() {
	db, err := quiver.Open(p.path, 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		p.t.Fatal(err)
	}
	s, err := mvcc.Open(db, &mvcc.Options{CompactionBatch: 1 + p.r.IntN(20)})
	if err != nil {
		p.t.Fatal(err)
	}
	p.qdb, p.q = db, s
}

func (p *pair) openEtcd() {
	p.e = emvcc.NewStore(zap.NewNop(), p.b, p.lessor, emvcc.StoreConfig{CompactionBatchLimit: 1 + p.r.IntN(20)})
}

func (p *pair) logf(format string, args ...any) {
	p.log = append(p.log, fmt.Sprintf("%4d ", p.step)+fmt.Sprintf(format, args...))
}

func (p *pair) fatalf(format string, args ...any) {
	p.t.Helper()
	tail := p.log
	if len(tail) > 40 {
		tail = tail[len(tail)-40:]
	}
	p.t.Fatalf("step %d: %s\nlast operations:\n%s", p.step, fmt.Sprintf(format, args...), strings.Join(tail, "\n"))
}

func (p *pair) key() []byte { return []byte(keys[p.r.IntN(len(keys))]) }

// rangeEnd returns a range end for key: nil (the key alone), a later key,
// or "to the end" (toEnd, which each side spells its own way).
func (p *pair) rangeEnd(key []byte) (end []byte, toEnd bool) {
	switch p.r.IntN(4) {
	case 0:
		return nil, false
	case 1:
		return nil, true
	default:
		for {
			e := p.key()
			if bytes.Compare(e, key) >= 0 {
				return e, false
			}
		}
	}
}

func (p *pair) value() []byte {
	return []byte(strconv.Itoa(p.r.IntN(5)))
}

// errClass names an error for comparison: both stores must fail alike.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, mvcc.ErrCompacted), errors.Is(err, emvcc.ErrCompacted):
		return "compacted"
	case errors.Is(err, mvcc.ErrFutureRev), errors.Is(err, emvcc.ErrFutureRev):
		return "future"
	}
	return "error: " + err.Error()
}

func showKV(key, value []byte, create, mod, version, lease int64) string {
	return fmt.Sprintf("%s=%q c%d m%d v%d l%d", key, value, create, mod, version, lease)
}

func showQ(kvs []mvcc.KeyValue) string {
	var s []string
	for _, kv := range kvs {
		s = append(s, showKV(kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func showE(kvs []*mvccpb.KeyValue) string {
	var s []string
	for _, kv := range kvs {
		s = append(s, showKV(kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// pastRev returns a revision to read at: 0 (current), or one around the
// compacted and current revisions, errors included.
func (p *pair) pastRev() int64 {
	cur, c := p.q.Rev(), p.q.CompactRev()
	switch p.r.IntN(6) {
	case 0:
		return 0
	case 1:
		return cur + 1 // future
	case 2:
		return max(c-1, 1) // compacted, when there was a compaction
	default:
		lo := max(c, 1)
		return lo + p.r.Int64N(cur-lo+1)
	}
}

func (p *pair) doRange() {
	key := p.key()
	end, toEnd := p.rangeEnd(key)
	qend, eend := end, end
	if toEnd {
		qend, eend = []byte{}, []byte{}
	}
	rev := p.pastRev()
	limit := int64(0)
	if p.r.IntN(3) == 0 {
		limit = 1 + p.r.Int64N(3)
	}
	countOnly, keysOnly := p.r.IntN(6) == 0, p.r.IntN(6) == 0
	p.logf("range %s-%q (to end %v) rev %d limit %d count-only %v keys-only %v", key, end, toEnd, rev, limit, countOnly, keysOnly)
	qr, qerr := p.q.Range(key, qend, mvcc.RangeOptions{Rev: rev, Limit: limit, CountOnly: countOnly, KeysOnly: keysOnly})
	rd := p.e.Read(emvcc.ConcurrentReadTxMode, traceutil.TODO())
	er, eerr := rd.Range(context.Background(), key, eend, emvcc.RangeOptions{Rev: rev, Limit: limit, CountOnly: countOnly, FastKeysOnly: keysOnly, WithTotalCount: true})
	rd.End()
	if errClass(qerr) != errClass(eerr) {
		p.fatalf("range errors: quiver %v, etcd %v", qerr, eerr)
	}
	if qerr != nil {
		return
	}
	if qr.Rev != er.Rev || qr.Count != er.Count || showQ(qr.KVs) != showE(er.KVs) {
		p.fatalf("range differs:\nquiver rev %d count %d %s\netcd   rev %d count %d %s", qr.Rev, qr.Count, showQ(qr.KVs), er.Rev, er.Count, showE(er.KVs))
	}
}

// txnOps generates a list of operations that changes no key twice.
func (p *pair) txnOps() ([]mvcc.Op, []*pb.RequestOp) {
	var qops []mvcc.Op
	var eops []*pb.RequestOp
	puts := map[string]bool{}
	type span struct {
		key, end []byte
		toEnd    bool
	}
	var dels []span
	inSpan := func(k []byte, d span) bool {
		if d.end == nil && !d.toEnd {
			return bytes.Equal(k, d.key)
		}
		return bytes.Compare(k, d.key) >= 0 && (d.toEnd || bytes.Compare(k, d.end) < 0)
	}
	covered := func(k []byte) bool {
		for _, d := range dels {
			if inSpan(k, d) {
				return true
			}
		}
		return false
	}
	for n := p.r.IntN(4); n > 0; n-- {
		switch p.r.IntN(3) {
		case 0:
			k := p.key()
			if puts[string(k)] || covered(k) {
				continue
			}
			puts[string(k)] = true
			v, l := p.value(), p.r.Int64N(leases)
			qops = append(qops, mvcc.OpPut(k, v, l))
			eops = append(eops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: v, Lease: l}}})
		case 1:
			k := p.key()
			end, toEnd := p.rangeEnd(k)
			d := span{k, end, toEnd}
			clash := false
			for pk := range puts {
				clash = clash || inSpan([]byte(pk), d)
			}
			if clash {
				continue
			}
			dels = append(dels, d)
			e := end
			if toEnd {
				e = []byte{0}
			}
			qops = append(qops, mvcc.OpDelete(k, e))
			eops = append(eops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: k, RangeEnd: e}}})
		default:
			k := p.key()
			end, toEnd := p.rangeEnd(k)
			if toEnd {
				end = []byte{0}
			}
			rev := p.pastRev()
			limit := int64(0)
			if p.r.IntN(3) == 0 {
				limit = 1 + p.r.Int64N(2)
			}
			qops = append(qops, mvcc.OpRange(k, end, mvcc.RangeOptions{Rev: rev, Limit: limit}))
			eops = append(eops, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: k, RangeEnd: end, Revision: rev, Limit: limit}}})
		}
	}
	return qops, eops
}

var (
	qTargets = []mvcc.CompareTarget{mvcc.CompareValue, mvcc.CompareVersion, mvcc.CompareCreate, mvcc.CompareMod, mvcc.CompareLease}
	eTargets = []pb.Compare_CompareTarget{pb.Compare_VALUE, pb.Compare_VERSION, pb.Compare_CREATE, pb.Compare_MOD, pb.Compare_LEASE}
	qResults = []mvcc.CompareResult{mvcc.Equal, mvcc.Greater, mvcc.Less, mvcc.NotEqual}
	eResults = []pb.Compare_CompareResult{pb.Compare_EQUAL, pb.Compare_GREATER, pb.Compare_LESS, pb.Compare_NOT_EQUAL}
)

func (p *pair) compares() ([]mvcc.Compare, []*pb.Compare) {
	var qc []mvcc.Compare
	var ec []*pb.Compare
	for n := p.r.IntN(3); n > 0; n-- {
		k := p.key()
		var end []byte
		if p.r.IntN(4) == 0 {
			e, toEnd := p.rangeEnd(k)
			if toEnd {
				e = []byte{0}
			}
			end = e
		}
		ti, ri := p.r.IntN(len(qTargets)), p.r.IntN(len(qResults))
		c := mvcc.Compare{Key: k, RangeEnd: end, Target: qTargets[ti], Result: qResults[ri]}
		e := &pb.Compare{Key: k, RangeEnd: end, Target: eTargets[ti], Result: eResults[ri]}
		cur := p.q.Rev()
		switch c.Target {
		case mvcc.CompareValue:
			c.Value = p.value()
			e.TargetUnion = &pb.Compare_Value{Value: c.Value}
		case mvcc.CompareVersion:
			c.Version = p.r.Int64N(4)
			e.TargetUnion = &pb.Compare_Version{Version: c.Version}
		case mvcc.CompareCreate:
			c.CreateRevision = p.r.Int64N(cur + 2)
			e.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: c.CreateRevision}
		case mvcc.CompareMod:
			c.ModRevision = p.r.Int64N(cur + 2)
			e.TargetUnion = &pb.Compare_ModRevision{ModRevision: c.ModRevision}
		case mvcc.CompareLease:
			c.Lease = p.r.Int64N(leases)
			e.TargetUnion = &pb.Compare_Lease{Lease: c.Lease}
		}
		qc, ec = append(qc, c), append(ec, e)
	}
	return qc, ec
}

func (p *pair) doTxn() {
	qc, ec := p.compares()
	qthen, ethen := p.txnOps()
	qelse, eelse := p.txnOps()
	p.logf("txn if %d compares then %d ops else %d ops: %v", len(qc), len(qthen), len(qelse), describe(qc, qthen, qelse))
	qr, qerr := p.q.Txn(&mvcc.Txn{If: qc, Then: qthen, Else: qelse})
	er, _, eerr := etxn.Txn(context.Background(), zap.NewNop(), &pb.TxnRequest{Compare: ec, Success: ethen, Failure: eelse}, false, p.e, p.lessor, false)
	if errClass(qerr) != errClass(eerr) {
		p.fatalf("txn errors: quiver %v, etcd %v", qerr, eerr)
	}
	if qerr != nil {
		return
	}
	if qr.Succeeded != er.Succeeded || qr.Rev != er.Header.Revision || len(qr.Results) != len(er.Responses) {
		p.fatalf("txn differs: quiver succeeded %v rev %d, etcd succeeded %v rev %d", qr.Succeeded, qr.Rev, er.Succeeded, er.Header.Revision)
	}
	for i, res := range er.Responses {
		switch r := res.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			q := qr.Results[i].Range
			e := r.ResponseRange
			if q == nil || showQ(q.KVs) != showE(e.Kvs) || int64(q.Count) != e.Count {
				p.fatalf("txn range %d differs:\nquiver %+v\netcd   count %d %s", i, q, e.Count, showE(e.Kvs))
			}
		case *pb.ResponseOp_ResponseDeleteRange:
			if qr.Results[i].Deleted != r.ResponseDeleteRange.Deleted {
				p.fatalf("txn delete %d: quiver deleted %d, etcd %d", i, qr.Results[i].Deleted, r.ResponseDeleteRange.Deleted)
			}
		}
	}
}

func describe(qc []mvcc.Compare, then, els []mvcc.Op) string {
	var b strings.Builder
	for _, c := range qc {
		fmt.Fprintf(&b, "[cmp %s-%q t%d r%d v%q ver%d c%d m%d l%d] ", c.Key, c.RangeEnd, c.Target, c.Result, c.Value, c.Version, c.CreateRevision, c.ModRevision, c.Lease)
	}
	for i, ops := range [][]mvcc.Op{then, els} {
		b.WriteString([]string{"then:", " else:"}[i])
		for _, op := range ops {
			fmt.Fprintf(&b, " {%d %s-%q %q l%d rev%d lim%d}", op.Type, op.Key, op.End, op.Value, op.Lease, op.Range.Rev, op.Range.Limit)
		}
	}
	return b.String()
}

func (p *pair) doCompact() {
	cur, c := p.q.Rev(), p.q.CompactRev()
	rev := c + 1 + p.r.Int64N(max(cur-c, 1))
	switch p.r.IntN(8) {
	case 0:
		rev = c // compacted already
	case 1:
		rev = cur + 1 // the future
	}
	p.logf("compact %d (current %d, compacted %d)", rev, cur, c)
	qdone, qerr := p.q.Compact(rev)
	edone, eerr := p.e.Compact(traceutil.TODO(), rev)
	if errClass(qerr) != errClass(eerr) {
		p.fatalf("compact errors: quiver %v, etcd %v", qerr, eerr)
	}
	if qerr == nil {
		<-qdone
		<-edone
		p.sameRevisions("after compaction")
	}
}

// sameRevisions requires both stores to hold the same revisions (records
// of puts and deletions): compaction must delete the same ones.
func (p *pair) sameRevisions(when string) {
	var q, e []string
	err := p.qdb.View(func(tx *quiver.Tx) error {
		return tx.Bucket([]byte("mvcc.rev")).ForEach(func(k, _ []byte) error {
			q = append(q, fmt.Sprintf("%d.%d", binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:])))
			return nil
		})
	})
	if err != nil {
		p.fatalf("%s: %v", when, err)
	}
	rtx := p.b.ReadTx()
	rtx.RLock()
	_ = rtx.UnsafeForEach(schema.Key, func(k, _ []byte) error {
		r := emvcc.BytesToRev(k)
		e = append(e, fmt.Sprintf("%d.%d", r.Main, r.Sub))
		return nil
	})
	rtx.RUnlock()
	if strings.Join(q, " ") != strings.Join(e, " ") {
		p.fatalf("%s: stored revisions differ:\nquiver %v\netcd   %v", when, q, e)
	}
}

func (p *pair) doHash() {
	cur, c := p.q.Rev(), p.q.CompactRev()
	rev := int64(0)
	if p.r.IntN(3) > 0 {
		lo := max(c, 1)
		rev = lo + p.r.Int64N(cur-lo+1)
	}
	p.logf("hash %d", rev)
	qh, qc, qerr := p.q.HashKV(rev)
	eh, _, eerr := p.e.HashStorage().HashByRev(rev)
	if errClass(qerr) != errClass(eerr) {
		p.fatalf("hash errors: quiver %v, etcd %v", qerr, eerr)
	}
	// etcd says -1 before its first compaction; quiver 0.
	if qerr == nil && (qh != eh.Hash || qc != max(eh.CompactRevision, 0)) {
		p.fatalf("HashKV(%d): quiver %08x (compacted %d), etcd %08x (compacted %d)", rev, qh, qc, eh.Hash, eh.CompactRevision)
	}
}

func (p *pair) doReopen() {
	p.logf("reopen both")
	if err := p.q.Close(); err != nil {
		p.fatalf("close: %v", err)
	}
	if err := p.qdb.Close(); err != nil {
		p.fatalf("close db: %v", err)
	}
	p.openQuiver()
	p.e.Close()
	p.openEtcd()
	if q, e := p.q.Rev(), p.e.Rev(); q != e {
		p.fatalf("after reopen: quiver at revision %d, etcd %d", q, e)
	}
}

// TestDifferential applies one seeded random sequence of puts, deletes,
// transactions (compares on every target, nested ranges), ranges at past
// revisions with limits, counts and keys only, compactions (valid or not),
// HashKV and reopens to quiver's store and to etcd's, and requires the
// same result from both every time.
func TestDifferential(t *testing.T) {
	n := *opsFlag
	if s := os.Getenv("QUIVER_DIFF_OPS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	if testing.Short() {
		n = min(n, 500)
	}
	for run := 0; run < 3; run++ {
		seed := testSeed(t) + uint64(run)
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			p := newPair(t, seed)
			for p.step = 0; p.step < n; p.step++ {
				switch x := p.r.IntN(100); {
				case x < 40:
					p.doTxn()
				case x < 75:
					p.doRange()
				case x < 83:
					p.doCompact()
				case x < 93:
					p.doHash()
				case x < 96:
					p.doReopen()
				default:
					// Plain puts and deletes, the common case.
					k := p.key()
					if p.r.IntN(2) == 0 {
						v, l := p.value(), p.r.Int64N(leases)
						p.logf("put %s=%q lease %d", k, v, l)
						qr, qerr := p.q.Put(k, v, l)
						er, _, eerr := etxn.Txn(context.Background(), zap.NewNop(), &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: v, Lease: l}}}}}, false, p.e, p.lessor, false)
						if qerr != nil || eerr != nil || qr != er.Header.Revision {
							p.fatalf("put: quiver %d %v, etcd %v", qr, qerr, eerr)
						}
					} else {
						end, toEnd := p.rangeEnd(k)
						if toEnd {
							end = []byte{0}
						}
						p.logf("delete %s-%q", k, end)
						qn, qr, qerr := p.q.DeleteRange(k, end)
						er, _, eerr := etxn.Txn(context.Background(), zap.NewNop(), &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: k, RangeEnd: end}}}}}, false, p.e, p.lessor, false)
						if qerr != nil || eerr != nil || qr != er.Header.Revision || qn != er.Responses[0].GetResponseDeleteRange().Deleted {
							p.fatalf("delete: quiver %d at %d %v, etcd %v %v", qn, qr, qerr, er, eerr)
						}
					}
				}
			}
			p.step = n
			p.doHash()
			t.Logf("%d operations, revision %d, compacted at %d", n, p.q.Rev(), p.q.CompactRev())
		})
	}
}
