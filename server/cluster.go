package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/quiverdb/quiver"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	rpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// MemberInfo is what a server knows of a member besides its raft id.
type MemberInfo struct {
	Name       string
	PeerURLs   []string
	ClientURLs []string
}

// membersBucket holds what the log says of each member, as an etcd
// Member: its name and client URLs as it published them (etcd's
// ClusterMemberAttrSet), its peer URLs and learner flag as the
// configuration change that added or updated it gave them.
var membersBucket = []byte("server.members")

// registry is the replicated record of the members.
type registry struct {
	mu sync.Mutex
	m  map[uint64]*pb.Member
}

func (g *registry) load(db *quiver.DB) error {
	m := map[uint64]*pb.Member{}
	err := db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket(membersBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			rec := &pb.Member{}
			if len(k) != 8 || proto.Unmarshal(v, rec) != nil {
				return fmt.Errorf("server: member record %x: %w", k, quiver.ErrCorrupt)
			}
			m[binary.BigEndian.Uint64(k)] = rec
			return nil
		})
	})
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.m = m
	g.mu.Unlock()
	return nil
}

// update changes member id's record in tx (nil: removes it) and in memory.
func (g *registry) update(tx *quiver.Tx, id uint64, change func(*pb.Member) *pb.Member) error {
	g.mu.Lock()
	cur := g.m[id]
	g.mu.Unlock()
	next := &pb.Member{ID: id}
	if cur != nil {
		next = proto.Clone(cur).(*pb.Member)
	}
	next = change(next)
	b, err := tx.CreateBucketIfNotExists(membersBucket)
	if err != nil {
		return err
	}
	key := binary.BigEndian.AppendUint64(nil, id)
	if next == nil {
		err = b.Delete(key)
	} else {
		var v []byte
		if v, err = proto.Marshal(next); err == nil {
			err = b.Put(key, v)
		}
	}
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if next == nil {
		delete(g.m, id)
	} else {
		g.m[id] = next
	}
	return nil
}

func (g *registry) get(id uint64) *pb.Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[id]
}

// setAttributes applies a ClusterMemberAttrSet.
func (g *registry) setAttributes(tx *quiver.Tx, r *membershippb.ClusterMemberAttrSetRequest) error {
	if r.MemberAttributes == nil {
		return fmt.Errorf("%w: member attributes without attributes", errUnsupported)
	}
	return g.update(tx, r.Member_ID, func(m *pb.Member) *pb.Member {
		m.Name, m.ClientURLs = r.MemberAttributes.Name, r.MemberAttributes.ClientUrls
		return m
	})
}

// publish proposes the member's own attributes once there is a leader, as
// etcd's members do at start, so that every member lists its client URLs;
// it gives up when the server stops.
func (s *Server) publish() {
	me := s.cfg.Members[s.cfg.ID]
	if me.Name == "" && len(me.ClientURLs) == 0 {
		return
	}
	r := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: s.cfg.ID, MemberAttributes: &membershippb.Attributes{Name: me.Name, ClientUrls: me.ClientURLs}}}
	for {
		if m := s.members.get(s.cfg.ID); m != nil && m.Name == me.Name && slices.Equal(m.ClientURLs, me.ClientURLs) {
			return // published before, by this run or an earlier one
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		_, err := s.propose(ctx, r)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// member is what the server can say of member id: its record in the log
// over what Config.Members says.
func (s *Server) member(id uint64, learner bool) *pb.Member {
	info := s.cfg.Members[id]
	out := &pb.Member{ID: id, Name: info.Name, PeerURLs: info.PeerURLs, ClientURLs: info.ClientURLs, IsLearner: learner}
	if rec := s.members.get(id); rec != nil {
		if rec.Name != "" {
			out.Name = rec.Name
		}
		if len(rec.PeerURLs) > 0 {
			out.PeerURLs = rec.PeerURLs
		}
		if len(rec.ClientURLs) > 0 {
			out.ClientURLs = rec.ClientURLs
		}
	}
	return out
}

// memberIDOf is the id of a member added with peer URL u: the new member
// finds the same one from its own --initial-advertise-peer-urls.
func memberIDOf(token, u string) uint64 {
	return max(xxhash.Sum64String(token+"\x00url\x00"+u), 1)
}

// clusterServer is etcd's Cluster service: the members of the raft
// configuration, named from Config.Members and the log; members added,
// removed, promoted and updated through raft's configuration changes.
type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

func (c *clusterServer) list() []*pb.Member {
	s := c.s
	_, cs, _ := s.node.Storage().InitialState()
	var out []*pb.Member
	for _, id := range slices.Sorted(slices.Values(cs.GetVoters())) {
		out = append(out, s.member(id, false))
	}
	for _, id := range slices.Sorted(slices.Values(cs.GetLearners())) {
		out = append(out, s.member(id, true))
	}
	return out
}

func (c *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.Linearizable {
		if err := c.current(ctx); err != nil {
			return nil, err
		}
	} else if err := c.s.fence(ctx); err != nil {
		return nil, err
	}
	return &pb.MemberListResponse{Header: c.s.header(c.s.store.Rev()), Members: c.list()}, nil
}

// current waits until this member has applied everything committed
// before the request (ReadIndex): its view of the members is then the
// cluster's, for the checks a change makes before it is proposed.
func (c *clusterServer) current(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, c.s.cfg.RequestTimeout)
	defer cancel()
	if err := c.s.node.ReadIndex(rctx); err != nil {
		return c.s.raftError(rctx, err)
	}
	return nil
}

// change proposes one configuration change of member id, with m (its peer
// URLs) as the context.
func (c *clusterServer) change(ctx context.Context, typ rpb.ConfChangeType, id uint64, m *pb.Member) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.s.cfg.RequestTimeout)
	defer cancel()
	err = c.s.node.ProposeConfChange(ctx, &rpb.ConfChangeV2{
		Changes: []*rpb.ConfChangeSingle{{Type: typ.Enum(), NodeId: new(id)}}, Context: data})
	if err != nil && ctx.Err() == nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	if err != nil {
		return c.s.raftError(ctx, err)
	}
	return nil
}

// find returns member id from the configuration, and whether it is a
// learner.
func (c *clusterServer) find(id uint64) (found, learner bool) {
	_, cs, _ := c.s.node.Storage().InitialState()
	if slices.Contains(cs.GetLearners(), id) {
		return true, true
	}
	return slices.Contains(cs.GetVoters(), id), false
}

func (c *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if len(r.PeerURLs) == 0 {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	for _, u := range r.PeerURLs {
		if _, err := hostPort(u); err != nil {
			return nil, rpctypes.ErrGRPCMemberBadURLs
		}
	}
	if err := c.current(ctx); err != nil {
		return nil, err
	}
	for _, m := range c.list() {
		for _, u := range m.PeerURLs {
			if slices.Contains(r.PeerURLs, u) {
				return nil, rpctypes.ErrGRPCPeerURLExist
			}
		}
	}
	id := memberIDOf(c.s.cfg.ClusterToken, r.PeerURLs[0])
	if found, _ := c.find(id); found {
		return nil, rpctypes.ErrGRPCMemberExist
	}
	typ := rpb.ConfChangeType_ConfChangeAddNode
	if r.IsLearner {
		typ = rpb.ConfChangeType_ConfChangeAddLearnerNode
	}
	m := &pb.Member{ID: id, PeerURLs: r.PeerURLs, IsLearner: r.IsLearner}
	if err := c.change(ctx, typ, id, m); err != nil {
		return nil, err
	}
	return &pb.MemberAddResponse{Header: c.s.header(c.s.store.Rev()), Member: m, Members: c.list()}, nil
}

func (c *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if err := c.current(ctx); err != nil {
		return nil, err
	}
	if found, _ := c.find(r.ID); !found {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	if err := c.change(ctx, rpb.ConfChangeType_ConfChangeRemoveNode, r.ID, &pb.Member{ID: r.ID}); err != nil {
		return nil, err
	}
	return &pb.MemberRemoveResponse{Header: c.s.header(c.s.store.Rev()), Members: c.list()}, nil
}

func (c *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if err := c.current(ctx); err != nil {
		return nil, err
	}
	switch found, learner := c.find(r.ID); {
	case !found:
		return nil, rpctypes.ErrGRPCMemberNotFound
	case !learner:
		return nil, rpctypes.ErrGRPCMemberNotLearner
	}
	if err := c.change(ctx, rpb.ConfChangeType_ConfChangeAddNode, r.ID, &pb.Member{ID: r.ID}); err != nil {
		return nil, err
	}
	return &pb.MemberPromoteResponse{Header: c.s.header(c.s.store.Rev()), Members: c.list()}, nil
}

func (c *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := c.current(ctx); err != nil {
		return nil, err
	}
	if found, _ := c.find(r.ID); !found {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	for _, u := range r.PeerURLs {
		if _, err := hostPort(u); err != nil {
			return nil, rpctypes.ErrGRPCMemberBadURLs
		}
	}
	if err := c.change(ctx, rpb.ConfChangeType_ConfChangeUpdateNode, r.ID, &pb.Member{ID: r.ID, PeerURLs: r.PeerURLs}); err != nil {
		return nil, err
	}
	return &pb.MemberUpdateResponse{Header: c.s.header(c.s.store.Rev()), Members: c.list()}, nil
}
