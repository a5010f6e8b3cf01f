package server

import (
	"errors"
	"fmt"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
	"github.com/quiverdb/quiver/raftadapter"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	rpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrKeyNotFound: a put with ignore_value or ignore_lease on a key that
// does not exist (etcd's "key not found").
var ErrKeyNotFound = errors.New("server: key not found")

// machine is the replicated state machine of a server: each log entry is
// an etcd InternalRaftRequest (a Put, DeleteRange or Txn), applied to the
// mvcc store inside the raft node's transaction (Store.TxnIn). The result
// of an entry is its etcd response, or the error that refused it (the
// same on every member: it depends only on the request and the replicated
// state).
type machine struct {
	db      *quiver.DB
	store   *mvcc.Store
	lessor  *lessor
	members *registry
	alarms  *alarmSet
	// onPeer, if set, is told of a member's peer URLs (nil: removed) once
	// the change that gave them has committed.
	onPeer func(id uint64, peerURLs []string)
}

var _ raftadapter.ConfChanger = (*machine)(nil)

// ConfChanged records what a configuration change says of its members:
// the peer URLs (from the proposer's context, an etcd Member), the learner
// flag, a removal.
func (m *machine) ConfChanged(tx *quiver.Tx, cc *rpb.ConfChangeV2, context []byte, _ *rpb.ConfState) error {
	info := &pb.Member{}
	if len(context) > 0 {
		if err := proto.Unmarshal(context, info); err != nil {
			info = &pb.Member{} // not ours: no URLs to record
		}
	}
	for _, c := range cc.GetChanges() {
		id := c.GetNodeId()
		var urls []string
		err := m.members.update(tx, id, func(rec *pb.Member) *pb.Member {
			switch c.GetType() {
			case rpb.ConfChangeType_ConfChangeRemoveNode:
				return nil
			case rpb.ConfChangeType_ConfChangeAddLearnerNode:
				rec.IsLearner = true
			case rpb.ConfChangeType_ConfChangeAddNode:
				rec.IsLearner = false
			}
			if info.ID == id && len(info.PeerURLs) > 0 {
				rec.PeerURLs = info.PeerURLs
			}
			urls = rec.PeerURLs
			return rec
		})
		if err != nil {
			return err
		}
		if m.onPeer != nil && (urls != nil || c.GetType() == rpb.ConfChangeType_ConfChangeRemoveNode) {
			tx.OnCommit(func() { m.onPeer(id, urls) })
		}
	}
	return nil
}

var (
	_ raftadapter.StateMachine = (*machine)(nil)
	_ raftadapter.Restorer     = (*machine)(nil)
)

func (m *machine) Apply(tx *quiver.Tx, ents []raftadapter.Entry) ([]any, error) {
	res := make([]any, len(ents))
	for i, e := range ents {
		r := &pb.InternalRaftRequest{}
		if err := proto.Unmarshal(e.Data, r); err != nil {
			res[i] = fmt.Errorf("server: entry %d is not a request: %w", e.Index, err)
			continue
		}
		out, err := m.apply(tx, r)
		switch {
		case err == nil:
			res[i] = out
		case refusal(err):
			res[i] = err
		default:
			return nil, err // this member's own trouble: stop the node
		}
	}
	return res, nil
}

func (m *machine) Restored(*quiver.DB) error {
	if err := m.store.Reload(); err != nil {
		return err
	}
	if err := m.lessor.load(m.db, m.store); err != nil {
		return err
	}
	if err := m.members.load(m.db); err != nil {
		return err
	}
	if err := m.alarms.load(m.db); err != nil {
		return err
	}
	m.announcePeers()
	return nil
}

// announcePeers tells onPeer every member's peer URLs the record holds
// (after a start or a snapshot: no change will).
func (m *machine) announcePeers() {
	if m.onPeer == nil {
		return
	}
	m.members.mu.Lock()
	recs := make([]*pb.Member, 0, len(m.members.m))
	for _, r := range m.members.m {
		recs = append(recs, r)
	}
	m.members.mu.Unlock()
	for _, r := range recs {
		if len(r.PeerURLs) > 0 {
			m.onPeer(r.ID, r.PeerURLs)
		}
	}
}

// compacted is the result of a compaction: the deletion of the old
// revisions goes on after the entry's commit; done closes when it ends.
type compacted struct {
	done <-chan struct{}
}

func (m *machine) apply(tx *quiver.Tx, r *pb.InternalRaftRequest) (any, error) {
	if err := m.capped(r); err != nil {
		return nil, err
	}
	switch {
	case r.Alarm != nil:
		return m.alarms.apply(tx, r.Alarm)
	case r.ClusterMemberAttrSet != nil:
		if err := m.members.setAttributes(tx, r.ClusterMemberAttrSet); err != nil {
			return nil, err
		}
		return r.ClusterMemberAttrSet, nil // nothing more to answer
	case r.LeaseGrant != nil:
		return m.lessor.grant(tx, r.LeaseGrant)
	case r.LeaseRevoke != nil:
		keys, ok := m.lessor.revokeKeys(r.LeaseRevoke.ID)
		if !ok {
			return nil, ErrLeaseNotFound
		}
		var ops []mvcc.Op
		for _, k := range keys {
			ops = append(ops, mvcc.OpDelete([]byte(k), nil))
		}
		res, err := m.store.TxnIn(tx, &mvcc.Txn{Then: ops})
		if err != nil {
			return nil, err
		}
		if err := m.lessor.remove(tx, r.LeaseRevoke.ID); err != nil {
			return nil, err
		}
		return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: res.Rev}}, nil
	case r.LeaseCheckpoint != nil:
		if err := m.lessor.checkpoint(tx, r.LeaseCheckpoint); err != nil {
			return nil, err
		}
		return &pb.LeaseCheckpointResponse{}, nil
	case r.Compaction != nil:
		done, err := m.store.CompactIn(tx, r.Compaction.Revision)
		if err != nil {
			return nil, err
		}
		return compacted{done: done}, nil
	case r.Put != nil:
		resp, err := m.txn(tx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: r.Put}}}})
		if err != nil {
			return nil, err
		}
		put := resp.Responses[0].GetResponsePut()
		put.Header = resp.Header
		return put, nil
	case r.DeleteRange != nil:
		resp, err := m.txn(tx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r.DeleteRange}}}})
		if err != nil {
			return nil, err
		}
		del := resp.Responses[0].GetResponseDeleteRange()
		del.Header = resp.Header
		return del, nil
	case r.Txn != nil:
		return m.txn(tx, r.Txn)
	}
	return nil, fmt.Errorf("%w: a request of no kind this server applies", errUnsupported)
}

// errValueProvided and errLeaseProvided refuse a put that ignores its
// value or lease and gives one, as etcd does.
var (
	errValueProvided = errors.New("server: value is provided")
	errLeaseProvided = errors.New("server: lease is provided")
)

// errUnsupported refuses a request of a kind not implemented yet.
var errUnsupported = errors.New("server: unsupported request")

// refusal reports whether err refuses a request for what it asks (so
// every member gives the same), rather than for this member's trouble.
func refusal(err error) bool {
	if errors.Is(err, mvcc.ErrFailed) {
		return false // the engine's, whatever it wraps
	}
	for _, e := range []error{mvcc.ErrEmptyKey, mvcc.ErrInvalidRange, mvcc.ErrDuplicateKey, mvcc.ErrTooManyOps,
		mvcc.ErrCompacted, mvcc.ErrFutureRev, quiver.ErrValueTooLarge, ErrKeyNotFound, errUnsupported,
		ErrLeaseNotFound, ErrLeaseExist, ErrLeaseTTLTooLarge, errValueProvided, errLeaseProvided, ErrNoSpace, ErrCorrupt} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// txn runs an etcd transaction as one mvcc change. etcd evaluates every
// comparison on the chosen path, nested ones included, against the state
// before the transaction; so does this: the comparisons first (each set a
// Txn with conditions and no operations, which changes nothing), then the
// chosen operations, flattened, as one Txn, whose results are folded back
// into nested responses.
func (m *machine) txn(tx *quiver.Tx, t *pb.TxnRequest) (*pb.TxnResponse, error) {
	var ops []mvcc.Op
	plan, err := m.choose(tx, t, &ops)
	if err != nil {
		return nil, err
	}
	res, err := m.store.TxnIn(tx, &mvcc.Txn{Then: ops})
	if err != nil {
		return nil, err
	}
	plan.attach(m.lessor, res)
	resp := plan.response(res)
	resp.Header = &pb.ResponseHeader{Revision: res.Rev}
	return resp, nil
}

// txnPlan is the chosen path of an etcd transaction: whether its
// comparisons held, and for each of its operations where its flattened
// mvcc operations start.
type txnPlan struct {
	succeeded bool
	ops       []planOp
}

type planOp struct {
	kind  string // "range", "put", "delete", "txn"
	first int    // its first mvcc operation: the range, the prev_kv range, or the change
	lease int64  // a put's lease, as written
	rng   *pb.RangeRequest
	put   *pb.PutRequest
	del   *pb.DeleteRangeRequest
	txn   *txnPlan
}

// choose evaluates t's comparisons against the state before the
// transaction and appends the chosen operations, flattened, to ops.
func (m *machine) choose(tx *quiver.Tx, t *pb.TxnRequest, ops *[]mvcc.Op) (*txnPlan, error) {
	cmps, err := compares(t.Compare)
	if err != nil {
		return nil, err
	}
	ok := true
	if len(cmps) > 0 {
		r, err := m.store.TxnIn(tx, &mvcc.Txn{If: cmps})
		if err != nil {
			return nil, err
		}
		ok = r.Succeeded
	}
	reqs := t.Success
	if !ok {
		reqs = t.Failure
	}
	plan := &txnPlan{succeeded: ok}
	for _, req := range reqs {
		po := planOp{first: len(*ops)}
		switch {
		case req.GetRequestRange() != nil:
			rr := req.GetRequestRange()
			po.kind, po.rng = "range", rr
			*ops = append(*ops, mvcc.OpRange(rr.Key, rangeEnd(rr.Key, rr.RangeEnd), fetchOptions(rr)))
		case req.GetRequestPut() != nil:
			p := req.GetRequestPut()
			po.kind, po.put = "put", p
			if p.PrevKv {
				*ops = append(*ops, mvcc.OpRange(p.Key, nil, mvcc.RangeOptions{}))
			}
			if p.IgnoreValue && len(p.Value) != 0 {
				return nil, errValueProvided
			}
			if p.IgnoreLease && p.Lease != 0 {
				return nil, errLeaseProvided
			}
			value, lease := p.Value, p.Lease
			if p.IgnoreValue || p.IgnoreLease {
				// The key's value or lease as of the state before: read
				// it now (the same on every member).
				cur, err := m.store.TxnIn(tx, &mvcc.Txn{Then: []mvcc.Op{mvcc.OpRange(p.Key, nil, mvcc.RangeOptions{})}})
				if err != nil {
					return nil, err
				}
				kvs := cur.Results[0].Range.KVs
				if len(kvs) == 0 {
					return nil, fmt.Errorf("%w: %q", ErrKeyNotFound, p.Key)
				}
				if p.IgnoreValue {
					value = kvs[0].Value
				}
				if p.IgnoreLease {
					lease = kvs[0].Lease
				}
			}
			if lease != 0 && !m.lessor.exists(lease) {
				return nil, fmt.Errorf("%w: %x", ErrLeaseNotFound, lease)
			}
			po.lease = lease
			*ops = append(*ops, mvcc.OpPut(p.Key, value, lease))
		case req.GetRequestDeleteRange() != nil:
			d := req.GetRequestDeleteRange()
			po.kind, po.del = "delete", d
			// The keys it deletes first (their values too for prev_kv),
			// so that their leases let go of them.
			*ops = append(*ops, mvcc.OpRange(d.Key, rangeEnd(d.Key, d.RangeEnd), mvcc.RangeOptions{KeysOnly: !d.PrevKv}))
			*ops = append(*ops, mvcc.OpDelete(d.Key, rangeEnd(d.Key, d.RangeEnd)))
		case req.GetRequestTxn() != nil:
			po.kind = "txn"
			sub, err := m.choose(tx, req.GetRequestTxn(), ops)
			if err != nil {
				return nil, err
			}
			po.txn = sub
		default:
			return nil, fmt.Errorf("%w: an empty request in a transaction", mvcc.ErrEmptyKey)
		}
		plan.ops = append(plan.ops, po)
	}
	return plan, nil
}

// attach records in l the keys the transaction's puts gave a lease and
// the keys its deletes took from theirs.
func (p *txnPlan) attach(l *lessor, res *mvcc.TxnResult) {
	for _, po := range p.ops {
		switch po.kind {
		case "put":
			l.attach(string(po.put.Key), po.lease)
		case "delete":
			for _, kv := range res.Results[po.first].Range.KVs {
				l.attach(string(kv.Key), 0)
			}
		case "txn":
			po.txn.attach(l, res)
		}
	}
}

// response folds the results of the flattened operations into the
// nested etcd response.
func (p *txnPlan) response(res *mvcc.TxnResult) *pb.TxnResponse {
	resp := &pb.TxnResponse{Succeeded: p.succeeded}
	for _, po := range p.ops {
		i := po.first
		switch po.kind {
		case "range":
			rr := rangeResponse(res.Results[i].Range, po.rng)
			rr.Header = &pb.ResponseHeader{Revision: res.Rev}
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}})
		case "put":
			out := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: res.Rev}}
			if po.put.PrevKv {
				if kvs := res.Results[i].Range.KVs; len(kvs) > 0 {
					out.PrevKv = kvOf(kvs[0], false)
				}
			}
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: out}})
		case "delete":
			out := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: res.Rev}}
			if po.del.PrevKv {
				for _, kv := range res.Results[i].Range.KVs {
					out.PrevKvs = append(out.PrevKvs, kvOf(kv, false))
				}
			}
			out.Deleted = res.Results[i+1].Deleted
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: out}})
		case "txn":
			sub := po.txn.response(res)
			sub.Header = &pb.ResponseHeader{Revision: res.Rev}
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}})
		}
	}
	return resp
}
