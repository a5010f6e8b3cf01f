package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/quiverdb/quiver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// DefaultQuotaBackendBytes is etcd's default space quota (2 GiB).
const DefaultQuotaBackendBytes = 2 << 30

// ErrNoSpace refuses a request that writes while the NOSPACE alarm is
// raised (etcd's "database space exceeded").
var ErrNoSpace = errors.New("server: database space exceeded")

// alarmsBucket holds the raised alarms, one key per member and alarm
// type (8-byte member id, 4-byte type), as the log raised them: every
// member has the same.
var alarmsBucket = []byte("server.alarms")

// alarmSet is the replicated record of the raised alarms.
type alarmSet struct {
	mu sync.Mutex
	m  map[string]*pb.AlarmMember
	// types has bit t set while an alarm of type t is raised: what every
	// request checks, without the lock.
	types atomic.Uint64
}

// retype recomputes types from m. mu held.
func (as *alarmSet) retype() {
	var bits uint64
	for _, a := range as.m {
		if a.Alarm >= 0 && a.Alarm < 64 {
			bits |= 1 << uint(a.Alarm)
		}
	}
	as.types.Store(bits)
}

func alarmKey(a *pb.AlarmMember) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, a.MemberID), uint32(a.Alarm))
}

func (as *alarmSet) load(db *quiver.DB) error {
	m := map[string]*pb.AlarmMember{}
	err := db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket(alarmsBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			if len(k) != 12 {
				return fmt.Errorf("server: alarm record %x: %w", k, quiver.ErrCorrupt)
			}
			a := &pb.AlarmMember{MemberID: binary.BigEndian.Uint64(k), Alarm: pb.AlarmType(binary.BigEndian.Uint32(k[8:]))}
			m[string(k)] = a
			return nil
		})
	})
	if err != nil {
		return err
	}
	as.mu.Lock()
	as.m = m
	as.retype()
	as.mu.Unlock()
	return nil
}

// list returns the raised alarms of type t (NONE: of every type), ordered
// by member and type.
func (as *alarmSet) list(t pb.AlarmType) []*pb.AlarmMember {
	as.mu.Lock()
	defer as.mu.Unlock()
	var out []*pb.AlarmMember
	for _, a := range as.m {
		if t == pb.AlarmType_NONE || a.Alarm == t {
			out = append(out, &pb.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm})
		}
	}
	slices.SortFunc(out, func(a, b *pb.AlarmMember) int { return slices.Compare(alarmKey(a), alarmKey(b)) })
	return out
}

// raised reports whether an alarm of type t is raised by any member.
func (as *alarmSet) raised(t pb.AlarmType) bool {
	return t >= 0 && t < 64 && as.types.Load()&(1<<uint(t)) != 0
}

// apply applies an AlarmRequest from the log: ACTIVATE raises the alarm
// (the response lists it), DEACTIVATE clears it (the response lists it if
// it was raised), GET lists them.
func (as *alarmSet) apply(tx *quiver.Tx, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	a := &pb.AlarmMember{MemberID: r.MemberID, Alarm: r.Alarm}
	key := alarmKey(a)
	resp := &pb.AlarmResponse{}
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = as.list(r.Alarm)
		return resp, nil
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm == pb.AlarmType_NONE {
			return resp, nil
		}
		b, err := tx.CreateBucketIfNotExists(alarmsBucket)
		if err != nil {
			return nil, err
		}
		if err := b.Put(key, nil); err != nil {
			return nil, err
		}
		as.mu.Lock()
		as.m[string(key)] = a
		as.retype()
		as.mu.Unlock()
		resp.Alarms = []*pb.AlarmMember{a}
		return resp, nil
	case pb.AlarmRequest_DEACTIVATE:
		as.mu.Lock()
		_, ok := as.m[string(key)]
		as.mu.Unlock()
		if !ok {
			return resp, nil
		}
		if b := tx.Bucket(alarmsBucket); b != nil {
			if err := b.Delete(key); err != nil {
				return nil, err
			}
		}
		as.mu.Lock()
		delete(as.m, string(key))
		as.retype()
		as.mu.Unlock()
		resp.Alarms = []*pb.AlarmMember{a}
		return resp, nil
	}
	return nil, fmt.Errorf("%w: alarm action %v", errUnsupported, r.Action)
}

// ErrCorrupt refuses the key/value and lease requests while the CORRUPT
// alarm is raised (etcd's "corrupt cluster").
var ErrCorrupt = errors.New("server: corrupt cluster")

// capped refuses, while the CORRUPT alarm is raised, every key/value and
// lease request; while NOSPACE is, what would take space: puts (in a
// transaction too, nested ones included, where etcd looks only at the top
// level) and lease grants. Deletes, compactions and revokes go on under
// NOSPACE, so that space can be freed.
func (m *machine) capped(r *pb.InternalRaftRequest) error {
	if m.alarms.raised(pb.AlarmType_CORRUPT) && (r.Put != nil || r.DeleteRange != nil || r.Txn != nil ||
		r.Compaction != nil || r.LeaseGrant != nil || r.LeaseRevoke != nil) {
		return ErrCorrupt
	}
	if !m.alarms.raised(pb.AlarmType_NOSPACE) {
		return nil
	}
	if r.Put != nil || r.LeaseGrant != nil || (r.Txn != nil && writesPut(r.Txn)) {
		return ErrNoSpace
	}
	return nil
}

// writesPut reports whether t holds a put on either path, nested ones
// included (etcd refuses such a transaction whichever path it would take).
func writesPut(t *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestPut() != nil:
				return true
			case op.GetRequestTxn() != nil && writesPut(op.GetRequestTxn()):
				return true
			}
		}
	}
	return false
}

// putCost is what a request may add to the database, etcd's estimate:
// each put's key and value and some overhead, the larger path of a
// transaction, a lease.
func putCost(r *pb.InternalRaftRequest) int64 {
	const overhead = 256
	switch {
	case r.Put != nil:
		return int64(len(r.Put.Key)+len(r.Put.Value)) + overhead
	case r.LeaseGrant != nil:
		return overhead
	case r.Txn != nil:
		return txnCost(r.Txn)
	}
	return 0
}

func txnCost(t *pb.TxnRequest) int64 {
	var most int64
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		var c int64
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil {
				c += int64(len(p.Key)+len(p.Value)) + 256
			} else if n := op.GetRequestTxn(); n != nil {
				c += txnCost(n)
			}
		}
		most = max(most, c)
	}
	return most
}

// checkQuota refuses, before proposing it, a request that would take
// space the quota does not leave, and then raises the NOSPACE alarm
// through the log, as etcd does. The space counted is the database's in
// use (its size less its free pages): unlike etcd's, it falls when a
// compaction frees pages, without a defragment.
func (s *Server) checkQuota(r *pb.InternalRaftRequest) error {
	cost := putCost(r)
	if cost == 0 {
		return nil
	}
	if s.alarms.raised(pb.AlarmType_NOSPACE) {
		return rpctypes.ErrGRPCNoSpace
	}
	if s.sizeInUse()+cost <= s.cfg.QuotaBackendBytes {
		return nil
	}
	if !s.raising.CompareAndSwap(false, true) {
		return rpctypes.ErrGRPCNoSpace
	}
	go func() {
		defer s.raising.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		defer cancel()
		_, _ = s.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: s.cfg.ID, Alarm: pb.AlarmType_NOSPACE}})
	}()
	return rpctypes.ErrGRPCNoSpace
}

// sizeInUse is the size of the member's database less its free pages.
func (s *Server) sizeInUse() int64 {
	var n int64
	_ = s.cfg.DB.View(func(tx *quiver.Tx) error {
		n = tx.Size() - int64(s.cfg.DB.Stats().FreeAlloc)
		return nil
	})
	return n
}
