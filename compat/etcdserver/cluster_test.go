package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"
)

// TestClusterOnQuiver runs etcd v3.7.3's server, built against the compat
// module, as a 3-member cluster and drives it with clientv3: writes, a
// watch, a compare-and-swap, leases (revoked and expired), the leader
// killed and restarted, compaction, defragmentation of every member, a
// snapshot, and a restart of the whole cluster, after which every key is
// as it was. The members' files are quiver's.
func TestClusterOnQuiver(t *testing.T) {
	c := newCluster(t, 3)
	for _, m := range c.members {
		c.start(m, bins.etcdQuiver)
	}
	cli := c.client(c.endpoints()...)
	c.waitServing(cli)

	// Writes, seen in order by a watch opened before them.
	first, err := cli.Put(ctxT(t), "start", "x")
	if err != nil {
		c.fail("put: %v", err)
	}
	w := cli.Watch(ctxT(t), "k/", clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision+1))
	const n = 100
	for i := 0; i < n; i++ {
		if _, err := cli.Put(ctxT(t), fmt.Sprintf("k/%03d", i), fmt.Sprintf("v%d", i)); err != nil {
			c.fail("put %d: %v", i, err)
		}
	}
	for seen := 0; seen < n; {
		select {
		case resp, ok := <-w:
			if !ok || resp.Err() != nil {
				c.fail("watch ended after %d events: %v", seen, resp.Err())
			}
			for _, ev := range resp.Events {
				want := fmt.Sprintf("k/%03d", seen)
				if string(ev.Kv.Key) != want || ev.Kv.ModRevision != first.Header.Revision+1+int64(seen) {
					c.fail("watch event %d: %s at %d, want %s at %d", seen, ev.Kv.Key, ev.Kv.ModRevision, want, first.Header.Revision+1+int64(seen))
				}
				seen++
			}
		case <-time.After(30 * time.Second):
			c.fail("watch: %d of %d events in 30 s", seen, n)
		}
	}

	// A compare-and-swap that wins and one that loses.
	for _, tc := range []struct {
		old  string
		wins bool
	}{{"v7", true}, {"v7", false}} {
		r, err := cli.Txn(ctxT(t)).If(clientv3.Compare(clientv3.Value("k/007"), "=", tc.old)).
			Then(clientv3.OpPut("k/007", "swapped")).Commit()
		if err != nil || r.Succeeded != tc.wins {
			c.fail("txn: %v, succeeded %v, want %v", err, r != nil && r.Succeeded, tc.wins)
		}
	}

	// Leases: one revoked, one left to expire; each takes its key along.
	long, err := cli.Grant(ctxT(t), 600)
	if err != nil {
		c.fail("grant: %v", err)
	}
	short, err := cli.Grant(ctxT(t), 1)
	if err != nil {
		c.fail("grant: %v", err)
	}
	for key, id := range map[string]clientv3.LeaseID{"lease/long": long.ID, "lease/short": short.ID} {
		if _, err := cli.Put(ctxT(t), key, "x", clientv3.WithLease(id)); err != nil {
			c.fail("put with lease: %v", err)
		}
	}
	if _, err := cli.KeepAliveOnce(ctxT(t), long.ID); err != nil {
		c.fail("keep-alive: %v", err)
	}
	ttl, err := cli.TimeToLive(ctxT(t), long.ID, clientv3.WithAttachedKeys())
	if err != nil || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "lease/long" {
		c.fail("time-to-live: %v %v", err, ttl)
	}
	if _, err := cli.Revoke(ctxT(t), long.ID); err != nil {
		c.fail("revoke: %v", err)
	}
	waitGone := func(key string) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			g, err := cli.Get(ctxT(t), key)
			if err == nil && len(g.Kvs) == 0 {
				return
			}
			if time.Now().After(deadline) {
				c.fail("%s still there 30 s after its lease ended (%v)", key, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitGone("lease/long")
	waitGone("lease/short")

	// The leader killed: the others go on, and it catches up when back.
	leader := c.leader(cli)
	c.kill(leader)
	// Until the others elect a leader, puts time out (etcd's behaviour,
	// as on bbolt); a put is repeated until it succeeds, for a minute at
	// most. Repeating a put of the same value is harmless here.
	deadline := time.Now().Add(time.Minute)
	for i := 0; i < 20; i++ {
		for {
			x, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := cli.Put(x, fmt.Sprintf("after-kill/%02d", i), "x")
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.fail("put with the leader down: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c.start(leader, bins.etcdQuiver)
	c.waitServing(cli)
	alone := c.client(leader.client)
	deadline = time.Now().Add(30 * time.Second)
	for {
		g, err := alone.Get(ctxT(t), "after-kill/19", clientv3.WithSerializable())
		if err == nil && len(g.Kvs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			c.fail("restarted %s has not caught up in 30 s (%v)", leader.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Deletes, a physical compaction, and defrag (quiver's online
	// compaction of the file) on every member.
	del, err := cli.Delete(ctxT(t), "k/05", clientv3.WithPrefix())
	if err != nil || del.Deleted != 10 {
		c.fail("delete: %v (%v)", err, del)
	}
	if _, err := cli.Compact(ctxT(t), del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		c.fail("compact: %v", err)
	}
	if _, err := cli.Get(ctxT(t), "k/000", clientv3.WithRev(first.Header.Revision)); err != rpctypes.ErrCompacted {
		c.fail("get below the compaction: %v, want %v", err, rpctypes.ErrCompacted)
	}
	for _, m := range c.members {
		if _, err := cli.Defragment(ctxT(t), m.client); err != nil {
			c.fail("defragment %s: %v", m.name, err)
		}
	}
	before, rev := dump(t, cli)
	if len(before) != 1+n-10+20 {
		c.fail("%d keys, want %d", len(before), 1+n-10+20)
	}

	// A snapshot, streamed and checked by clientv3's own snapshot
	// package, is a quiver file holding etcd's buckets.
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if _, err := snapshot.SaveWithVersion(ctxT(t), zap.NewNop(), clientv3.Config{Endpoints: []string{c.members[0].client}}, snap); err != nil {
		c.fail("snapshot save: %v", err)
	}
	checkEtcdFile(t, snap, len(before))

	// The whole cluster stopped and started again: nothing lost.
	for _, m := range c.members {
		c.stop(m)
	}
	for _, m := range c.members {
		checkEtcdFile(t, filepath.Join(m.dir, "member", "snap", "db"), len(before))
	}
	for _, m := range c.members {
		c.start(m, bins.etcdQuiver)
	}
	cli = c.client(c.endpoints()...) // a new connection, without the old one's backoff
	c.waitServing(cli)
	after, rev2 := dump(t, cli)
	if rev2 != rev || !reflect.DeepEqual(after, before) {
		c.fail("after a restart: %d keys at revision %d, want %d at %d", len(after), rev2, len(before), rev)
	}
}

// checkEtcdFile opens an etcd backend file with quiver, checks it, and
// counts the live keys of its newest revisions: at least want keys must
// be stored in its "key" bucket (older revisions may be there too).
func checkEtcdFile(t *testing.T, path string, want int) {
	t.Helper()
	db, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *quiver.Tx) error {
		for _, name := range []string{"key", "meta", "lease", "members"} {
			if tx.Bucket([]byte(name)) == nil {
				return fmt.Errorf("no %q bucket", name)
			}
		}
		if got := tx.Bucket([]byte("key")).Stats().KeyN; got < want {
			return fmt.Errorf("%d revisions in the key bucket, want at least %d", got, want)
		}
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestMigrateMemberFromBbolt writes to a member of etcd on bbolt, stops
// it, shows that etcd on quiver refuses the bbolt file and names the
// conversion, converts it with quiver import --from-bbolt, and starts the
// member on quiver: the same keys with the same revisions and versions,
// the same leases, the same compacted revision, and the next write gets
// the next revision.
func TestMigrateMemberFromBbolt(t *testing.T) {
	c := newCluster(t, 1)
	m := c.members[0]
	c.start(m, bins.etcdBbolt)
	cli := c.client(m.client)
	c.waitServing(cli)
	lease, err := cli.Grant(ctxT(t), 3600)
	if err != nil {
		c.fail("grant: %v", err)
	}
	var compactAt int64
	for i := 0; i < 300; i++ {
		key := fmt.Sprintf("key/%02d", i%100)
		var opts []clientv3.OpOption
		if i%50 == 0 {
			opts = append(opts, clientv3.WithLease(lease.ID))
		}
		r, err := cli.Put(ctxT(t), key, strings.Repeat(fmt.Sprint(i), 1+i%40), opts...)
		if err != nil {
			c.fail("put: %v", err)
		}
		if i == 150 {
			compactAt = r.Header.Revision
		}
	}
	if _, err := cli.Delete(ctxT(t), "key/1", clientv3.WithPrefix()); err != nil {
		c.fail("delete: %v", err)
	}
	if _, err := cli.Compact(ctxT(t), compactAt); err != nil {
		c.fail("compact: %v", err)
	}
	before, rev := dump(t, cli)
	c.stop(m)

	db := filepath.Join(m.dir, "member", "snap", "db")
	c.start(m, bins.etcdQuiver)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		c.fail("etcd on quiver still runs on a bbolt file after 30 s")
	}
	c.kill(m)
	if log, _ := os.ReadFile(m.dir + ".log"); !strings.Contains(string(log), "quiver import --from-bbolt") {
		c.fail("etcd on quiver, given a bbolt file, does not name quiver import --from-bbolt")
	}

	out, err := exec.Command(bins.quiver, "import", "--from-bbolt", db, db+".quiver").CombinedOutput()
	if err != nil {
		c.fail("quiver import: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if err := os.Rename(db, db+".bbolt"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(db+".quiver", db); err != nil {
		t.Fatal(err)
	}
	c.start(m, bins.etcdQuiver)
	c.waitServing(cli)
	after, rev2 := dump(t, cli)
	if rev2 != rev || !reflect.DeepEqual(after, before) {
		c.fail("after the import: %d keys at revision %d, want %d at %d", len(after), rev2, len(before), rev)
	}
	if _, err := cli.Get(ctxT(t), "key/00", clientv3.WithRev(compactAt-1)); err != rpctypes.ErrCompacted {
		c.fail("get below the compaction: %v, want %v", err, rpctypes.ErrCompacted)
	}
	if _, err := cli.Get(ctxT(t), "key/00", clientv3.WithRev(compactAt)); err != nil {
		c.fail("get at the compacted revision: %v", err)
	}
	ttl, err := cli.TimeToLive(ctxT(t), lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) == 0 {
		c.fail("the lease after the import: %v %+v", err, ttl)
	}
	p, err := cli.Put(ctxT(t), "new", "x")
	if err != nil {
		c.fail("the first put after the import: %v", err)
	}
	if p.Header.Revision != rev+1 {
		c.fail("the first put after the import: revision %d, want %d", p.Header.Revision, rev+1)
	}
}
