package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
	"github.com/quiverdb/quiver/raftadapter"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// testCluster is n members in one process: raft over the in-process
// network, each member's gRPC on its own 127.0.0.1 port.
type testCluster struct {
	t       testing.TB
	nw      *raftadapter.Network
	dir     string
	set     []func(*Config)
	servers []*Server
	addrs   []string
	stops   []func() // stop member i (once)
}

func newTestCluster(t testing.TB, n int, set ...func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, nw: raftadapter.NewNetwork(testutil.Seed(t)), dir: t.TempDir(), set: set}
	var peers []uint64
	for i := 1; i <= n; i++ {
		peers = append(peers, uint64(i))
	}
	for _, id := range peers {
		c.add(id, peers)
	}
	return c
}

// add starts member id of a new cluster of peers, or, with no peers, a
// member joining a running one; it returns its index.
func (c *testCluster) add(id uint64, peers []uint64) int {
	t := c.t
	t.Helper()
	db, err := quiver.Open(filepath.Join(c.dir, fmt.Sprintf("m%d.db", id)), 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: id, ClusterID: 0x5eed, Peers: peers, Join: len(peers) == 0, DB: db, Transport: c.nw.Endpoint(id), TickInterval: 5 * time.Millisecond, ClusterToken: "test"}
	for _, f := range c.set {
		f(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.nw.Attach(id, s.Node())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(s.GRPCOptions()...)
	s.Register(g)
	go g.Serve(ln)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			c.nw.Detach(id)
			g.Stop()
			if err := s.Close(); err != nil {
				t.Errorf("member %d: %v", id, err)
			}
			db.Close()
		})
	}
	t.Cleanup(stop)
	c.stops = append(c.stops, stop)
	c.servers = append(c.servers, s)
	c.addrs = append(c.addrs, ln.Addr().String())
	return len(c.servers) - 1
}

// client returns a clientv3 client of the members at addrs.
func client(t testing.TB, addrs ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: addrs, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// ctx bounds a test's calls. Tests share one across several calls, so
// the bound is wide enough for a loaded CI machine: a server that hangs
// still fails the test, 30 s later.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// kvs renders a get's keys and values.
func kvs(r *clientv3.GetResponse) string {
	var b strings.Builder
	for _, kv := range r.Kvs {
		fmt.Fprintf(&b, "%s=%s ", kv.Key, kv.Value)
	}
	return strings.TrimSpace(b.String())
}

// TestKV drives the KV service with etcd's own client: puts, gets with
// every range option, deletes, transactions (nested too) and the errors
// etcd gives, on a 3-member cluster, through every member.
func TestKV(t *testing.T) {
	c := newTestCluster(t, 3)
	cli := client(t, c.addrs...)
	kv := clientv3.NewKV(cli)
	x := ctx(t)

	put := must[*clientv3.PutResponse](t)
	get := must[*clientv3.GetResponse](t)
	r1 := put(kv.Put(x, "a", "1"))
	put(kv.Put(x, "b", "2"))
	put(kv.Put(x, "c", "3"))
	r4 := put(kv.Put(x, "a", "4", clientv3.WithPrevKV()))
	if r4.PrevKv == nil || string(r4.PrevKv.Value) != "1" || r4.Header.Revision != r1.Header.Revision+3 {
		t.Fatalf("put with prev_kv: %+v (first put at %d)", r4, r1.Header.Revision)
	}
	if r4.Header.ClusterId != 0x5eed || r4.Header.MemberId == 0 || r4.Header.RaftTerm == 0 {
		t.Fatalf("header %+v", r4.Header)
	}

	// Every member, linearizable and serializable.
	for _, addr := range c.addrs {
		one := clientv3.NewKV(client(t, addr))
		if g := get(one.Get(x, "a")); kvs(g) != "a=4" || g.Header.Revision != r4.Header.Revision {
			t.Fatalf("get a through %s: %s at %d", addr, kvs(g), g.Header.Revision)
		}
		deadline := time.Now().Add(5 * time.Second)
		for kvs(get(one.Get(x, "a", clientv3.WithSerializable()))) != "a=4" {
			if time.Now().After(deadline) {
				t.Fatalf("a serializable get through %s never saw a=4", addr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	cases := []struct {
		name string
		key  string
		opts []clientv3.OpOption
		want string
		more bool
		cnt  int64
	}{
		{"prefix", "", []clientv3.OpOption{clientv3.WithPrefix()}, "a=4 b=2 c=3", false, 3},
		{"from key", "b", []clientv3.OpOption{clientv3.WithFromKey()}, "b=2 c=3", false, 2},
		{"range", "a", []clientv3.OpOption{clientv3.WithRange("c")}, "a=4 b=2", false, 2},
		{"limit", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(2)}, "a=4 b=2", true, 3},
		{"at a revision", "a", []clientv3.OpOption{clientv3.WithRev(r1.Header.Revision)}, "a=1", false, 1},
		{"sort by key descending", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}, "c=3 b=2 a=4", false, 3},
		{"sort by mod revision", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend)}, "b=2 c=3 a=4", false, 3},
		{"sort by value, limited", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend), clientv3.WithLimit(1)}, "a=4", true, 3},
		{"sort by version", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend), clientv3.WithLimit(1)}, "a=4", true, 3},
		{"min mod revision", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMinModRev(r1.Header.Revision + 2)}, "a=4 c=3", false, 3},
		{"max create revision", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMaxCreateRev(r1.Header.Revision + 1)}, "a=4 b=2", false, 3},
		{"count only", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}, "", false, 3},
		{"keys only", "b", []clientv3.OpOption{clientv3.WithKeysOnly()}, "b=", false, 1},
		{"keys only, sorted by value", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend)}, "b= c= a=", false, 3},
		{"missing", "zz", nil, "", false, 0},
		{"end below the key", "c", []clientv3.OpOption{clientv3.WithRange("a")}, "", false, 0},
	}
	for _, tc := range cases {
		g := get(kv.Get(x, tc.key, tc.opts...)) // "" with WithPrefix: every key
		if kvs(g) != tc.want || g.More != tc.more || g.Count != tc.cnt {
			t.Fatalf("%s: %q more %v count %d; want %q more %v count %d", tc.name, kvs(g), g.More, g.Count, tc.want, tc.more, tc.cnt)
		}
	}

	// Put with ignore_value keeps the value; on a missing key it fails.
	put(kv.Put(x, "b", "", clientv3.WithIgnoreValue()))
	if g := get(kv.Get(x, "b")); kvs(g) != "b=2" || g.Kvs[0].Version != 2 {
		t.Fatalf("after a put with ignore_value: %s version %d", kvs(g), g.Kvs[0].Version)
	}
	if _, err := kv.Put(x, "nope", "", clientv3.WithIgnoreValue()); !errors.Is(err, rpctypes.ErrKeyNotFound) {
		t.Fatalf("ignore_value on a missing key: %v", err)
	}

	// Delete with prev_kv.
	d, err := kv.Delete(x, "b", clientv3.WithRange("d"), clientv3.WithPrevKV())
	if err != nil || d.Deleted != 2 || len(d.PrevKvs) != 2 || string(d.PrevKvs[1].Value) != "3" {
		t.Fatalf("delete [b, d) with prev_kv: %+v, %v", d, err)
	}

	// Transactions: a compare-and-swap that holds, one that fails, and a
	// nested one whose inner comparison sees the state before the outer.
	tr, err := kv.Txn(x).If(clientv3.Compare(clientv3.Value("a"), "=", "4")).
		Then(clientv3.OpPut("a", "5"), clientv3.OpGet("a")).Else(clientv3.OpGet("b")).Commit()
	if err != nil || !tr.Succeeded || len(tr.Responses) != 2 || string(tr.Responses[1].GetResponseRange().Kvs[0].Value) != "5" {
		t.Fatalf("txn that holds: %+v, %v", tr, err)
	}
	tr, err = kv.Txn(x).If(clientv3.Compare(clientv3.Version("a"), "=", 1)).Then(clientv3.OpPut("a", "x")).Else(clientv3.OpGet("a")).Commit()
	if err != nil || tr.Succeeded || string(tr.Responses[0].GetResponseRange().Kvs[0].Value) != "5" {
		t.Fatalf("txn that fails: %+v, %v", tr, err)
	}
	tr, err = kv.Txn(x).Then(
		clientv3.OpPut("n", "1"),
		clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision("n"), "=", 0)},
			[]clientv3.Op{clientv3.OpPut("m", "created")}, []clientv3.Op{clientv3.OpPut("m", "existed")}),
	).Commit()
	if err != nil || len(tr.Responses) != 2 || !tr.Responses[1].GetResponseTxn().Succeeded {
		t.Fatalf("nested txn: %+v, %v", tr, err)
	}
	if g := get(kv.Get(x, "m")); kvs(g) != "m=created" || g.Kvs[0].ModRevision != tr.Header.Revision {
		t.Fatalf("after the nested txn: %s", kvs(g))
	}

	// etcd's errors.
	for _, e := range []struct {
		name string
		err  error
		want error
	}{
		{"empty key", func() error { _, err := kv.Put(x, "", "v"); return err }(), rpctypes.ErrEmptyKey},
		{"future revision", func() error { _, err := kv.Get(x, "a", clientv3.WithRev(1<<40)); return err }(), rpctypes.ErrFutureRev},
		{"duplicate key", func() error {
			_, err := kv.Txn(x).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
			return err
		}(), rpctypes.ErrDuplicateKey},
		{"ignore_value with a value", func() error { _, err := kv.Put(x, "a", "v", clientv3.WithIgnoreValue()); return err }(), rpctypes.ErrValueProvided},
		{"ignore_lease with a lease", func() error {
			_, err := kv.Put(x, "a", "", clientv3.WithIgnoreLease(), clientv3.WithLease(7))
			return err
		}(), rpctypes.ErrLeaseProvided},
		{"request too large", func() error { _, err := kv.Put(x, "big", strings.Repeat("v", DefaultMaxRequestBytes+1)); return err }(), rpctypes.ErrRequestTooLarge},
	} {
		if !errors.Is(e.err, e.want) {
			t.Fatalf("%s: %v, want %v", e.name, e.err, e.want)
		}
	}
}

// TestCompact: a compaction through the log: reads below it fail with
// etcd's error on every member, a second one at or below it too, a
// physical one returns once the old revisions are gone, and a watch from
// below it gets the compacted response.
// TestReadsAfterWrites: with the raft write-ahead file a member answers a
// write before the database shows it (its apply batch commits later), so
// every read that does not wait for raft's read index fences: a
// serializable get, a status and a watch from the current revision, each
// right after a put on the same member, see the put.
func TestReadsAfterWrites(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.WAL = filepath.Join(t.TempDir(), "raft.wal") })
	cli := client(t, c.addrs...)
	x := ctx(t)
	for i := 0; i < 200; i++ {
		k, v := fmt.Sprintf("k%d", i%7), fmt.Sprintf("v%d", i)
		put := must[*clientv3.PutResponse](t)(cli.Put(x, k, v))
		g := must[*clientv3.GetResponse](t)(cli.Get(x, k, clientv3.WithSerializable()))
		if kvs(g) != k+"="+v || g.Header.Revision < put.Header.Revision {
			t.Fatalf("put %d: serializable get after it: %s at revision %d, want %s=%s at %d or later", i, kvs(g), g.Header.Revision, k, v, put.Header.Revision)
		}
		if i%20 == 10 {
			// Answers to writes whose header is the store's revision,
			// each right after a put.
			p1 := must[*clientv3.PutResponse](t)(cli.Put(x, "other", v))
			lg := must[*clientv3.LeaseGrantResponse](t)(cli.Grant(x, 60))
			p2 := must[*clientv3.PutResponse](t)(cli.Put(x, "other", v))
			cp := must[*clientv3.CompactResponse](t)(cli.Compact(x, p2.Header.Revision))
			if lg.ResponseHeader.Revision < p1.Header.Revision || cp.Header.Revision < p2.Header.Revision {
				t.Fatalf("a lease grant answered at revision %d after a put at %d; a compaction at %d after a put at %d", lg.ResponseHeader.Revision, p1.Header.Revision, cp.Header.Revision, p2.Header.Revision)
			}
		}
		if i%20 == 0 {
			st := must[*clientv3.StatusResponse](t)(cli.Status(x, c.addrs[0]))
			if st.Header.Revision < put.Header.Revision {
				t.Fatalf("put %d: status after it at revision %d, want %d or later", i, st.Header.Revision, put.Header.Revision)
			}
		}
	}
	for i := 0; i < 20; i++ {
		first := must[*clientv3.PutResponse](t)(cli.Put(x, "w", "before"))
		wx, cancel := context.WithCancel(x)
		wc := cli.Watch(wx, "w", clientv3.WithCreatedNotify())
		select {
		case r := <-wc:
			if !r.Created || r.Header.Revision < first.Header.Revision {
				t.Fatalf("watch %d: created %v at revision %d, after a put of revision %d", i, r.Created, r.Header.Revision, first.Header.Revision)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch %d: not created in 10 s", i)
		}
		second := must[*clientv3.PutResponse](t)(cli.Put(x, "w", "after"))
		select {
		case r := <-wc:
			if err := r.Err(); err != nil || len(r.Events) == 0 {
				t.Fatalf("watch %d: %v, %d events", i, err, len(r.Events))
			}
			if got := r.Events[0].Kv.ModRevision; got != second.Header.Revision {
				t.Fatalf("watch %d created after the put of revision %d: first event at %d, want %d", i, first.Header.Revision, got, second.Header.Revision)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch %d: no event in 10 s", i)
		}
		cancel()
	}
}

func TestCompact(t *testing.T) {
	c := newTestCluster(t, 3)
	cli := client(t, c.addrs...)
	x := ctx(t)
	var last *clientv3.PutResponse
	for i := 0; i < 10; i++ {
		last = must[*clientv3.PutResponse](t)(cli.Put(x, "k", fmt.Sprint(i)))
	}
	at := last.Header.Revision - 3
	if _, err := cli.Compact(x, at, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	for _, addr := range c.addrs {
		one := client(t, addr)
		if _, err := one.Get(x, "k", clientv3.WithRev(at-1)); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("a read below the compaction through %s: %v", addr, err)
		}
		if g := must[*clientv3.GetResponse](t)(one.Get(x, "k", clientv3.WithRev(at))); kvs(g) != "k=6" {
			t.Fatalf("a read at the compaction through %s: %s", addr, kvs(g))
		}
	}
	if _, err := cli.Compact(x, at); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compacting again at %d: %v", at, err)
	}
	if _, err := cli.Compact(x, last.Header.Revision+100); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("compacting past the revision: %v", err)
	}
	select {
	case r := <-cli.Watch(x, "k", clientv3.WithRev(at-2)):
		if r.CompactRevision != at || !errors.Is(r.Err(), rpctypes.ErrCompacted) {
			t.Fatalf("a watch from below the compaction: %+v, %v", r, r.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to a watch from below the compaction")
	}
}
