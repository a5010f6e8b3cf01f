package server

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/quiverdb/quiver/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// rangeEnd is etcd's range end of key as mvcc takes it: none is the key
// alone, "\x00" every key from the key on (mvcc reads it the same way), and
// an end below the key an empty range, as etcd answers it (mvcc would
// refuse it).
func rangeEnd(key, end []byte) []byte {
	switch {
	case len(end) == 0:
		return nil
	case len(end) == 1 && end[0] == 0:
		return end
	case bytes.Compare(end, key) < 0:
		return key // [key, key): nothing
	}
	return end
}

// sortOrder is the order r asks for, NONE when it is the store's own
// (keys ascending). etcd sorts ascending when a target other than the key
// is named without an order.
func sortOrder(r *pb.RangeRequest) pb.RangeRequest_SortOrder {
	if r.SortOrder == pb.RangeRequest_NONE && r.SortTarget != pb.RangeRequest_KEY {
		return pb.RangeRequest_ASCEND
	}
	if r.SortOrder == pb.RangeRequest_ASCEND && r.SortTarget == pb.RangeRequest_KEY {
		return pb.RangeRequest_NONE // the store's own order
	}
	return r.SortOrder
}

func filtered(r *pb.RangeRequest) bool {
	return r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
}

// fetchOptions is what to read from the store for r: everything when r
// sorts or filters (the limit applies after), else r's limit.
func fetchOptions(r *pb.RangeRequest) mvcc.RangeOptions {
	// Sorting by value needs the values, even for keys only.
	byValue := sortOrder(r) != pb.RangeRequest_NONE && r.SortTarget == pb.RangeRequest_VALUE
	ro := mvcc.RangeOptions{Rev: r.Revision, CountOnly: r.CountOnly, KeysOnly: r.KeysOnly && !byValue}
	if sortOrder(r) == pb.RangeRequest_NONE && !filtered(r) && r.Limit > 0 {
		ro.Limit = r.Limit
	}
	return ro
}

// rangeResponse answers r from what the store read with fetchOptions(r):
// filtered by revisions, sorted, then limited, as etcd does. Count is the
// number of keys in the range, whatever the filters and the limit.
func rangeResponse(res *mvcc.RangeResult, r *pb.RangeRequest) *pb.RangeResponse {
	out := &pb.RangeResponse{Count: int64(res.Count)}
	if r.CountOnly {
		return out
	}
	kvs := res.KVs
	if filtered(r) {
		keep := kvs[:0:0]
		for _, kv := range kvs {
			if (r.MinModRevision == 0 || kv.ModRevision >= r.MinModRevision) &&
				(r.MaxModRevision == 0 || kv.ModRevision <= r.MaxModRevision) &&
				(r.MinCreateRevision == 0 || kv.CreateRevision >= r.MinCreateRevision) &&
				(r.MaxCreateRevision == 0 || kv.CreateRevision <= r.MaxCreateRevision) {
				keep = append(keep, kv)
			}
		}
		kvs = keep
	}
	if order := sortOrder(r); order != pb.RangeRequest_NONE {
		less := lessBy(r.SortTarget)
		if order == pb.RangeRequest_DESCEND {
			asc := less
			less = func(a, b *mvcc.KeyValue) bool { return asc(b, a) }
		}
		sort.SliceStable(kvs, func(i, j int) bool { return less(&kvs[i], &kvs[j]) })
	}
	switch {
	case r.Limit > 0 && int64(len(kvs)) > r.Limit:
		kvs, out.More = kvs[:r.Limit], true
	case r.Limit > 0 && !filtered(r) && int64(res.Count) > int64(len(kvs)):
		out.More = true // the store stopped at the limit
	}
	for _, kv := range kvs {
		out.Kvs = append(out.Kvs, kvOf(kv, r.KeysOnly))
	}
	return out
}

func lessBy(t pb.RangeRequest_SortTarget) func(a, b *mvcc.KeyValue) bool {
	switch t {
	case pb.RangeRequest_VERSION:
		return func(a, b *mvcc.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		return func(a, b *mvcc.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		return func(a, b *mvcc.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		return func(a, b *mvcc.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	}
	return func(a, b *mvcc.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
}

func kvOf(kv mvcc.KeyValue, keysOnly bool) *mvccpb.KeyValue {
	out := &mvccpb.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
	if !keysOnly {
		out.Value = kv.Value
	}
	return out
}

// compares converts etcd's comparisons.
func compares(cs []*pb.Compare) ([]mvcc.Compare, error) {
	out := make([]mvcc.Compare, 0, len(cs))
	for _, c := range cs {
		mc := mvcc.Compare{Key: c.Key, RangeEnd: rangeEnd(c.Key, c.RangeEnd)}
		switch c.Result {
		case pb.Compare_EQUAL:
			mc.Result = mvcc.Equal
		case pb.Compare_GREATER:
			mc.Result = mvcc.Greater
		case pb.Compare_LESS:
			mc.Result = mvcc.Less
		case pb.Compare_NOT_EQUAL:
			mc.Result = mvcc.NotEqual
		default:
			return nil, fmt.Errorf("%w: comparison result %d", errUnsupported, c.Result)
		}
		switch c.Target {
		case pb.Compare_VERSION:
			mc.Target, mc.Version = mvcc.CompareVersion, c.GetVersion()
		case pb.Compare_CREATE:
			mc.Target, mc.CreateRevision = mvcc.CompareCreate, c.GetCreateRevision()
		case pb.Compare_MOD:
			mc.Target, mc.ModRevision = mvcc.CompareMod, c.GetModRevision()
		case pb.Compare_VALUE:
			mc.Target, mc.Value = mvcc.CompareValue, c.GetValue()
		case pb.Compare_LEASE:
			mc.Target, mc.Lease = mvcc.CompareLease, c.GetLease()
		default:
			return nil, fmt.Errorf("%w: comparison target %d", errUnsupported, c.Target)
		}
		out = append(out, mc)
	}
	return out, nil
}
