package server

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// leaderIndex returns the index of the member that leads.
func (c *testCluster) leaderIndex(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range c.servers {
			if st := s.node.Status(); st.Lead == s.cfg.ID {
				return i
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no leader in 10 s")
	return -1
}

// TestLease: grant, attach keys, keep alive through a follower and the
// leader, time to live with keys, revoke (the keys go in its revision),
// expiry decided by the leader, and etcd's errors.
func TestLease(t *testing.T) {
	c := newTestCluster(t, 3)
	cli := client(t, c.addrs...)
	x := ctx(t)
	g := must[*clientv3.LeaseGrantResponse](t)(cli.Grant(x, 5))
	if g.ID == 0 || g.TTL != 5 {
		t.Fatalf("grant: %+v", g)
	}
	must[*clientv3.PutResponse](t)(cli.Put(x, "a", "1", clientv3.WithLease(g.ID)))
	must[*clientv3.PutResponse](t)(cli.Put(x, "b", "2", clientv3.WithLease(g.ID)))
	must[*clientv3.PutResponse](t)(cli.Put(x, "b", "3")) // b lets go of the lease
	ttl := must[*clientv3.LeaseTimeToLiveResponse](t)(cli.TimeToLive(x, g.ID, clientv3.WithAttachedKeys()))
	if ttl.GrantedTTL != 5 || ttl.TTL <= 0 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "a" {
		t.Fatalf("time to live: %+v", ttl)
	}
	for _, addr := range c.addrs { // through every member, followers too
		ka := must[*clientv3.LeaseKeepAliveResponse](t)(client(t, addr).KeepAliveOnce(x, g.ID))
		if ka.TTL != 5 {
			t.Fatalf("keep-alive through %s: %+v", addr, ka)
		}
	}
	leases := must[*clientv3.LeaseLeasesResponse](t)(cli.Leases(x))
	if len(leases.Leases) != 1 || leases.Leases[0].ID != g.ID {
		t.Fatalf("leases: %+v", leases.Leases)
	}
	rv := must[*clientv3.LeaseRevokeResponse](t)(cli.Revoke(x, g.ID))
	gr := must[*clientv3.GetResponse](t)(cli.Get(x, "", clientv3.WithPrefix()))
	if kvs(gr) != "b=3" || gr.Header.Revision != rv.Header.Revision {
		t.Fatalf("after revoke: %s at %d (revoke at %d)", kvs(gr), gr.Header.Revision, rv.Header.Revision)
	}
	if ttl := must[*clientv3.LeaseTimeToLiveResponse](t)(cli.TimeToLive(x, g.ID)); ttl.TTL != -1 {
		t.Fatalf("time to live of a revoked lease: %d", ttl.TTL)
	}
	if _, err := cli.Put(x, "c", "1", clientv3.WithLease(g.ID)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("put with a revoked lease: %v", err)
	}
	if _, err := cli.Revoke(x, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := cli.Grant(x, 1e10); !errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
		t.Fatalf("a TTL of 1e10 s: %v", err)
	}
	if ka, err := cli.KeepAliveOnce(x, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keep-alive of a revoked lease: %+v, %v", ka, err)
	}
	fixed := must[*clientv3.LeaseGrantResponse](t)(cli.Lease.Grant(x, 3))
	if _, err := cli.Do(x, clientv3.OpPut("d", "1", clientv3.WithLease(fixed.ID))); err != nil {
		t.Fatal(err)
	}

	// Expiry: a short lease's keys go, on every member, without a
	// keep-alive; a kept one stays.
	short := must[*clientv3.LeaseGrantResponse](t)(cli.Grant(x, 2))
	kept := must[*clientv3.LeaseGrantResponse](t)(cli.Grant(x, 2))
	must[*clientv3.PutResponse](t)(cli.Put(x, "short", "1", clientv3.WithLease(short.ID)))
	must[*clientv3.PutResponse](t)(cli.Put(x, "kept", "1", clientv3.WithLease(kept.ID)))
	kc := must[<-chan *clientv3.LeaseKeepAliveResponse](t)(cli.KeepAlive(x, kept.ID))
	go func() {
		for range kc {
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if g := must[*clientv3.GetResponse](t)(cli.Get(x, "short")); len(g.Kvs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a 2 s lease did not expire in 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond)
	if g := must[*clientv3.GetResponse](t)(cli.Get(x, "kept")); len(g.Kvs) != 1 {
		t.Fatal("a lease kept alive expired")
	}
}

// TestLeaseSurvivesLeaderChange: the leader checkpoints remaining TTLs
// through the log; when it stops, the new leader counts from the
// checkpoint, not from the full TTL.
func TestLeaseSurvivesLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.LeaseCheckpointInterval = 200 * time.Millisecond })
	cli := client(t, c.addrs...)
	x := ctx(t)
	g := must[*clientv3.LeaseGrantResponse](t)(cli.Grant(x, 30))
	time.Sleep(3 * time.Second)
	lead := c.leaderIndex(t)
	c.stops[lead]()
	newLead := -1
	deadline := time.Now().Add(10 * time.Second)
	for newLead < 0 || newLead == lead {
		if time.Now().After(deadline) {
			t.Fatal("no new leader")
		}
		for i, s := range c.servers {
			if i != lead && s.node.Status().Lead == s.cfg.ID {
				newLead = i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // it took over the leases
	ttl := must[*clientv3.LeaseTimeToLiveResponse](t)(client(t, c.addrs[newLead]).TimeToLive(x, g.ID))
	if ttl.TTL < 20 || ttl.TTL > 28 {
		t.Fatalf("remaining TTL on the new leader %d s, want about 27 (granted 30, 3 s ago)", ttl.TTL)
	}
	t.Logf("granted 30 s, 3 s before the leader stopped: the new leader gives %d s", ttl.TTL)
}

// TestLeaseTimeToLiveOnFollowers: a follower asks the leader, so every
// member gives the leader's remaining TTL (not the granted one, which is
// all a follower's own record holds before a checkpoint), with the keys.
func TestLeaseTimeToLiveOnFollowers(t *testing.T) {
	c := newTestCluster(t, 3)
	cli := client(t, c.addrs...)
	x := ctx(t)
	g := must[*clientv3.LeaseGrantResponse](t)(cli.Grant(x, 10))
	must[*clientv3.PutResponse](t)(cli.Put(x, "held", "v", clientv3.WithLease(g.ID)))
	time.Sleep(2500 * time.Millisecond)
	for i, addr := range c.addrs {
		ttl := must[*clientv3.LeaseTimeToLiveResponse](t)(client(t, addr).TimeToLive(x, g.ID, clientv3.WithAttachedKeys()))
		if ttl.TTL < 5 || ttl.TTL > 8 || ttl.GrantedTTL != 10 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "held" {
			t.Fatalf("member %d: TTL %d of %d, keys %q; want about 7 of 10, [held]", i, ttl.TTL, ttl.GrantedTTL, ttl.Keys)
		}
	}
	unknown := must[*clientv3.LeaseTimeToLiveResponse](t)(client(t, c.addrs[(c.leaderIndex(t)+1)%3]).TimeToLive(x, 12345))
	if unknown.TTL != -1 {
		t.Fatalf("an unknown lease through a follower: TTL %d", unknown.TTL)
	}
}

// TestConcurrencyMutexAcrossMembers: clientv3's concurrency.Mutex, built
// on leases, revisions and watches, excludes across members.
func TestConcurrencyMutexAcrossMembers(t *testing.T) {
	c := newTestCluster(t, 3)
	x := ctx(t)
	var sessions []*concurrency.Session
	for _, addr := range c.addrs {
		s, err := concurrency.NewSession(client(t, addr), concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sessions = append(sessions, s)
	}
	inside := make(chan int, 3)
	done := make(chan error, 3)
	var holding atomic.Int32
	for i, s := range sessions {
		go func() {
			m := concurrency.NewMutex(s, "/lock")
			if err := m.Lock(x); err != nil {
				done <- err
				return
			}
			if holding.Add(1) != 1 {
				done <- errors.New("two holders at once")
				return
			}
			inside <- i
			time.Sleep(50 * time.Millisecond)
			holding.Add(-1)
			done <- m.Unlock(x)
		}()
	}
	for range sessions {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if len(inside) != 3 {
		t.Fatalf("%d of 3 got the lock", len(inside))
	}
	// An election: one leader, seen by every member.
	e := concurrency.NewElection(sessions[0], "/elect")
	if err := e.Campaign(x, "m0"); err != nil {
		t.Fatal(err)
	}
	for i, s := range sessions {
		l, err := concurrency.NewElection(s, "/elect").Leader(x)
		if err != nil || string(l.Kvs[0].Value) != "m0" {
			t.Fatalf("member %d sees leader %v, %v", i, l, err)
		}
	}
}
