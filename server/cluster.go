package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/quiverdb/quiver"
	"go.etcd.io/etcd/api/v3/membershippb"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// MemberInfo is what a server knows of a member besides its raft id.
type MemberInfo struct {
	Name       string
	PeerURLs   []string
	ClientURLs []string
}

// membersBucket holds the attributes each member published through the
// log (etcd's ClusterMemberAttrSet): id -> membershippb.Attributes.
var membersBucket = []byte("server.members")

// attributes is the replicated view of the members' published attributes.
type attributes struct {
	mu sync.Mutex
	m  map[uint64]*membershippb.Attributes
}

func (a *attributes) load(db *quiver.DB) error {
	m := map[uint64]*membershippb.Attributes{}
	err := db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket(membersBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			at := &membershippb.Attributes{}
			if len(k) != 8 || proto.Unmarshal(v, at) != nil {
				return fmt.Errorf("server: member record %x: %w", k, quiver.ErrCorrupt)
			}
			m[binary.BigEndian.Uint64(k)] = at
			return nil
		})
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.m = m
	a.mu.Unlock()
	return nil
}

// set applies a ClusterMemberAttrSet.
func (a *attributes) set(tx *quiver.Tx, r *membershippb.ClusterMemberAttrSetRequest) error {
	if r.MemberAttributes == nil {
		return fmt.Errorf("%w: member attributes without attributes", errUnsupported)
	}
	v, err := proto.Marshal(r.MemberAttributes)
	if err != nil {
		return err
	}
	b, err := tx.CreateBucketIfNotExists(membersBucket)
	if err != nil {
		return err
	}
	if err := b.Put(binary.BigEndian.AppendUint64(nil, r.Member_ID), v); err != nil {
		return err
	}
	a.mu.Lock()
	a.m[r.Member_ID] = proto.Clone(r.MemberAttributes).(*membershippb.Attributes)
	a.mu.Unlock()
	return nil
}

func (a *attributes) get(id uint64) *membershippb.Attributes {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[id]
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
		if at := s.attrs.get(s.cfg.ID); at != nil && proto.Equal(at, r.ClusterMemberAttrSet.MemberAttributes) {
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

// clusterServer is etcd's Cluster service. So far it lists the members of
// the raft configuration, named from Config.Members and the attributes
// they published; changing membership through it is to come
// (raftadapter.Node.ProposeConfChange does it from Go).
type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

func (c *clusterServer) MemberList(context.Context, *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	s := c.s
	_, cs, _ := s.node.Storage().InitialState()
	resp := &pb.MemberListResponse{Header: s.header(s.store.Rev())}
	add := func(id uint64, learner bool) {
		info := s.cfg.Members[id]
		if at := s.attrs.get(id); at != nil {
			info.Name, info.ClientURLs = at.Name, at.ClientUrls
		}
		resp.Members = append(resp.Members, &pb.Member{ID: id, Name: info.Name, PeerURLs: info.PeerURLs, ClientURLs: info.ClientURLs, IsLearner: learner})
	}
	for _, id := range slices.Sorted(slices.Values(cs.GetVoters())) {
		add(id, false)
	}
	for _, id := range slices.Sorted(slices.Values(cs.GetLearners())) {
		add(id, true)
	}
	return resp, nil
}
