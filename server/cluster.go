package server

import (
	"context"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// MemberInfo is what a server knows of a member besides its raft id.
type MemberInfo struct {
	Name       string
	PeerURLs   []string
	ClientURLs []string
}

// clusterServer is etcd's Cluster service. So far it lists the members of
// the raft configuration, named from Config.Members; changing membership
// through it is to come (raftadapter.Node.ProposeConfChange does it from
// Go).
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
