package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// leaseLoop is the leader's side of leases: it follows leadership,
// revokes expired leases through the log and checkpoints remaining TTLs.
func (s *Server) leaseLoop() {
	defer close(s.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastCheckpoint := time.Now()
	var lead uint64
	revoking := map[int64]bool{}
	// A revoke that failed (no leader for a while, or refused: a lease
	// with more keys than one transaction takes) is tried again later,
	// not at every tick.
	backoff := map[int64]time.Time{}
	type outcome struct {
		id  int64
		err error
	}
	results := make(chan outcome, 64)
	for {
		select {
		case <-s.stop:
			return
		case o := <-results:
			delete(revoking, o.id)
			if o.err != nil {
				backoff[o.id] = time.Now().Add(10 * time.Second)
			} else {
				delete(backoff, o.id)
			}
			continue
		case <-tick.C:
		}
		st := s.node.Status()
		if st.Lead != lead && st.Lead != raft.None {
			s.metrics.leaderChanges.Inc()
		}
		lead = st.Lead
		leading := st.RaftState == raft.StateLeader
		s.lessor.setLeading(leading)
		if !leading {
			continue
		}
		now := time.Now()
		for _, id := range s.lessor.expired(now, 64) {
			if revoking[id] || len(revoking) >= 16 || now.Before(backoff[id]) {
				continue
			}
			revoking[id] = true
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
				defer cancel()
				_, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
				select {
				case results <- outcome{id, err}:
				case <-s.stop:
				}
			}()
		}
		if time.Since(lastCheckpoint) >= s.cfg.LeaseCheckpointInterval {
			lastCheckpoint = time.Now()
			cps := s.lessor.remainings()
			for len(cps) > 0 {
				batch := cps[:min(len(cps), checkpointBatch)]
				cps = cps[len(batch):]
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
					defer cancel()
					_, _ = s.propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: batch}})
				}()
			}
		}
	}
}

// leaseServer is etcd's Lease service.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (l *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.TTL > maxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	req := &pb.LeaseGrantRequest{TTL: r.TTL, ID: r.ID}
	for req.ID == 0 || l.s.lessor.exists(req.ID) && r.ID == 0 {
		req.ID = rand.Int64N(1<<62) + 1 // the proposer picks, so every member applies the same
	}
	v, err := l.s.propose(ctx, &pb.InternalRaftRequest{LeaseGrant: req})
	if err != nil {
		return nil, err
	}
	resp := v.(*pb.LeaseGrantResponse)
	if err := l.s.fence(ctx); err != nil { // (the header's revision: see Compact)
		return nil, err
	}
	resp.Header = l.s.header(l.s.store.Rev())
	return resp, nil
}

func (l *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	v, err := l.s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: r})
	if err != nil {
		return nil, err
	}
	resp := v.(*pb.LeaseRevokeResponse)
	resp.Header = l.s.header(resp.Header.GetRevision())
	return resp, nil
}

// LeaseKeepAlive renews leases: on the leader at once, on a follower
// through the log (a checkpoint of the full TTL, which the leader applies
// as a renewal). A lease that does not exist gets TTL 0, as in etcd.
func (l *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	s := l.s
	ctx := stream.Context()
	for {
		r, err := stream.Recv()
		if err != nil {
			return err
		}
		// ReadIndex first: this member has applied every grant and revoke
		// before the request, and a leader knows it still leads.
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		err = s.node.ReadIndex(rctx)
		cancel()
		if err != nil {
			return s.raftError(rctx, err)
		}
		ttl, leading, clear := s.lessor.renew(r.ID)
		checkpoint := int64(-1) // none
		switch {
		case leading && clear:
			checkpoint = 0 // a new leader must not count from an old checkpoint
		case !leading:
			if t, _, _, ok := s.lessor.status(r.ID, false); ok {
				ttl, checkpoint = t, t // renewed by the leader when applied
			}
		}
		if checkpoint >= 0 {
			_, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
				Checkpoints: []*pb.LeaseCheckpoint{{ID: r.ID, Remaining_TTL: checkpoint}}}})
			if err != nil {
				return err
			}
			if !s.lessor.exists(r.ID) {
				ttl = 0 // revoked before the renewal
			}
		}
		if err := stream.Send(&pb.LeaseKeepAliveResponse{Header: s.header(s.store.Rev()), ID: r.ID, TTL: ttl}); err != nil {
			return err
		}
	}
}

// LeaseTimeToLive answers with the leader's deadline: on the leader from
// its lessor, on a follower by asking the leader over the peer transport,
// as etcd's followers do (a transport that cannot ask leaves the follower
// its last checkpoint, at most the TTL). An unknown lease has TTL -1, as
// in etcd.
func (l *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	s := l.s
	if lead := s.node.Status().Lead; lead != 0 && lead != s.cfg.ID && s.asker != nil {
		resp, err := s.askTimeToLive(ctx, lead, r)
		if err != nil {
			return nil, err
		}
		resp.Header = s.header(s.store.Rev())
		return resp, nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	err := s.node.ReadIndex(rctx)
	cancel()
	if err != nil {
		return nil, s.raftError(rctx, err)
	}
	ttl, remaining, keys, ok := s.lessor.status(r.ID, r.Keys)
	if !ok {
		return &pb.LeaseTimeToLiveResponse{Header: s.header(s.store.Rev()), ID: r.ID, TTL: -1}, nil
	}
	return &pb.LeaseTimeToLiveResponse{Header: s.header(s.store.Rev()), ID: r.ID, TTL: remaining, GrantedTTL: ttl, Keys: keys}, nil
}

func (l *leaseServer) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	s := l.s
	if err := s.fence(ctx); err != nil {
		return nil, err
	}
	resp := &pb.LeaseLeasesResponse{Header: s.header(s.store.Rev())}
	for _, id := range s.lessor.ids() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
	}
	return resp, nil
}

// Requests a member answers over the peer transport (raftadapter.Asker):
// a kind byte, then the request.
const askTimeToLive = 'T' // a LeaseTimeToLiveRequest, answered by the leader

// askTimeToLive asks the leader lead for a lease's time to live.
func (s *Server) askTimeToLive(ctx context.Context, lead uint64, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	req, err := proto.Marshal(r)
	if err != nil {
		return nil, toGRPC(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	raw, err := s.asker.Ask(ctx, lead, append([]byte{askTimeToLive}, req...))
	if err != nil {
		if ctx.Err() != nil {
			return nil, s.raftError(ctx, ctx.Err())
		}
		return nil, status.Errorf(codes.Unavailable, "etcdserver: asking the leader for the lease's time to live: %v", err)
	}
	resp := &pb.LeaseTimeToLiveResponse{}
	if err := proto.Unmarshal(raw, resp); err != nil {
		return nil, status.Errorf(codes.Internal, "etcdserver: the leader's answer: %v", err)
	}
	return resp, nil
}

// answer answers another member's request (raftadapter.AskHandler).
func (s *Server) answer(ctx context.Context, from uint64, req []byte) ([]byte, error) {
	if len(req) == 0 || req[0] != askTimeToLive {
		return nil, fmt.Errorf("server: unknown request from %x", from)
	}
	r := &pb.LeaseTimeToLiveRequest{}
	if err := proto.Unmarshal(req[1:], r); err != nil {
		return nil, fmt.Errorf("server: a time-to-live request from %x: %w", from, err)
	}
	if s.node.Status().Lead != s.cfg.ID {
		return nil, errors.New("etcdserver: not leader")
	}
	// ReadIndex: it still leads, and has applied every grant and revoke
	// committed before the question (the asker's, say).
	if err := s.node.ReadIndex(ctx); err != nil {
		return nil, err
	}
	resp := &pb.LeaseTimeToLiveResponse{ID: r.ID, TTL: -1}
	if ttl, remaining, keys, ok := s.lessor.status(r.ID, r.Keys); ok {
		resp.TTL, resp.GrantedTTL, resp.Keys = remaining, ttl, keys
	}
	return proto.Marshal(resp)
}
