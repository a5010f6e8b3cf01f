package server

import (
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestMembers: a member added through the Cluster service as a learner
// joins with an empty database, catches up, is promoted, and serves; a
// member is removed; etcd's errors for the calls that cannot be made.
func TestMembers(t *testing.T) {
	c := newTestCluster(t, 3)
	cli := client(t, c.addrs...)
	x := ctx(t)
	for i := 0; i < 20; i++ {
		must[*clientv3.PutResponse](t)(cli.Put(x, "k", "v"))
	}
	add := must[*clientv3.MemberAddResponse](t)(cli.MemberAddAsLearner(x, []string{"http://127.0.0.1:1"}))
	if !add.Member.IsLearner || add.Member.ID != memberIDOf("test", "http://127.0.0.1:1") || len(add.Members) != 4 {
		t.Fatalf("member add: %+v", add)
	}
	if _, err := cli.MemberAdd(x, []string{"http://127.0.0.1:1"}); !errors.Is(err, rpctypes.ErrPeerURLExist) {
		t.Fatalf("adding a peer URL again: %v", err)
	}
	// clientv3 checks URLs itself: the server's check, through the raw API.
	raw := pb.NewClusterClient(cli.ActiveConnection())
	for _, u := range []string{"ftp://127.0.0.1:5", "http://127.0.0.1", "://"} {
		if _, err := raw.MemberAdd(x, &pb.MemberAddRequest{PeerURLs: []string{u}}); !errors.Is(err, rpctypes.ErrGRPCMemberBadURLs) {
			t.Fatalf("adding peer URL %q: %v", u, err)
		}
	}
	i := c.add(add.Member.ID, nil)
	one := client(t, c.addrs[i])
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, err := one.Get(x, "k", clientv3.WithSerializable())
		if err == nil && kvs(g) == "k=v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new member did not catch up: %v, %v", g, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := cli.MemberPromote(x, 1); !errors.Is(err, rpctypes.ErrMemberNotLearner) {
		t.Fatalf("promoting a voter: %v", err)
	}
	pr := must[*clientv3.MemberPromoteResponse](t)(cli.MemberPromote(x, add.Member.ID))
	for _, m := range pr.Members {
		if m.IsLearner {
			t.Fatalf("after promote: %+v", pr.Members)
		}
	}
	must[*clientv3.PutResponse](t)(one.Put(x, "through", "the new member"))
	// Remove a follower, through one member (which has applied the
	// removal when the call returns); removing the leader would only add
	// an election to wait for.
	lead := c.leaderIndex(t)
	victim, via := uint64(0), -1
	for j := 0; j < 3; j++ {
		if j != lead && victim == 0 {
			victim = c.servers[j].cfg.ID
		} else if j != lead {
			via = j
		}
	}
	if via < 0 {
		via = lead
	}
	through := client(t, c.addrs[via])
	rm := must[*clientv3.MemberRemoveResponse](t)(through.MemberRemove(x, victim))
	if len(rm.Members) != 3 {
		t.Fatalf("after remove: %+v", rm.Members)
	}
	if _, err := through.MemberRemove(x, victim); !errors.Is(err, rpctypes.ErrMemberNotFound) {
		t.Fatalf("removing twice: %v", err)
	}
	up := must[*clientv3.MemberUpdateResponse](t)(through.MemberUpdate(x, add.Member.ID, []string{"http://127.0.0.1:2"}))
	for _, m := range up.Members {
		if m.ID == add.Member.ID && (len(m.PeerURLs) != 1 || m.PeerURLs[0] != "http://127.0.0.1:2") {
			t.Fatalf("after update: %+v", m)
		}
	}
}
