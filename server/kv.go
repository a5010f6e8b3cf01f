package server

import (
	"context"

	"github.com/quiverdb/quiver/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// kvServer is etcd's KV service.
type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	s := k.s
	if len(r.Key) == 0 {
		return nil, toGRPC(mvcc.ErrEmptyKey)
	}
	if s.alarms.raised(pb.AlarmType_CORRUPT) {
		return nil, rpctypes.ErrGRPCCorrupt
	}
	if !r.Serializable {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		err := s.node.ReadIndex(rctx)
		cancel()
		if err != nil {
			return nil, s.raftError(rctx, err)
		}
	} else if err := s.fence(ctx); err != nil {
		return nil, err
	}
	res, err := s.store.Range(r.Key, rangeEnd(r.Key, r.RangeEnd), fetchOptions(r))
	if err != nil {
		return nil, toGRPC(err)
	}
	resp := rangeResponse(res, r)
	resp.Header = s.header(res.Rev)
	return resp, nil
}

func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	v, err := k.s.propose(ctx, &pb.InternalRaftRequest{Put: r})
	if err != nil {
		return nil, err
	}
	resp := v.(*pb.PutResponse)
	resp.Header = k.s.header(resp.Header.GetRevision())
	return resp, nil
}

func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	v, err := k.s.propose(ctx, &pb.InternalRaftRequest{DeleteRange: r})
	if err != nil {
		return nil, err
	}
	resp := v.(*pb.DeleteRangeResponse)
	resp.Header = k.s.header(resp.Header.GetRevision())
	return resp, nil
}

func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	v, err := k.s.propose(ctx, &pb.InternalRaftRequest{Txn: r})
	if err != nil {
		return nil, err
	}
	resp := v.(*pb.TxnResponse)
	k.s.fillHeaders(resp)
	return resp, nil
}

// fillHeaders gives every header of a transaction's response, nested ones
// included, the member's fields.
func (s *Server) fillHeaders(resp *pb.TxnResponse) {
	resp.Header = s.header(resp.Header.GetRevision())
	for _, op := range resp.Responses {
		switch {
		case op.GetResponseRange() != nil:
			op.GetResponseRange().Header = resp.Header
		case op.GetResponsePut() != nil:
			op.GetResponsePut().Header = resp.Header
		case op.GetResponseDeleteRange() != nil:
			op.GetResponseDeleteRange().Header = resp.Header
		case op.GetResponseTxn() != nil:
			s.fillHeaders(op.GetResponseTxn())
		}
	}
}

func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	v, err := k.s.propose(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	if r.Physical {
		// Once the old revisions are gone from this member's file.
		select {
		case <-v.(compacted).done:
		case <-ctx.Done():
			return nil, k.s.raftError(ctx, ctx.Err())
		}
	}
	// The header's revision is the store's readable one: fenced, so that
	// it is not below a revision this member answered before.
	if err := k.s.fence(ctx); err != nil {
		return nil, err
	}
	return &pb.CompactionResponse{Header: k.s.header(k.s.store.Rev())}, nil
}
