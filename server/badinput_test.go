package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/quiverdb/quiver/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestBadInputOnClientPort: garbage, a truncated HTTP/2 preface and an
// HTTP/1 request for nothing on a member's client port are answered or
// closed; the member goes on serving.
func TestBadInputOnClientPort(t *testing.T) {
	c := newTestCluster(t, 1)
	cli := client(t, c.addrs...)
	x := ctx(t)
	must[*clientv3.PutResponse](t)(cli.Put(x, "k", "v"))
	for name, data := range map[string][]byte{
		"garbage":            bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1024),
		"truncated preface":  []byte("PRI * HTTP/2.0\r\n\r\nSM"),
		"http/1 for nothing": []byte("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"),
	} {
		sendGarbage(t, c.addrs[0], name, data)
	}
	if g := must[*clientv3.GetResponse](t)(cli.Get(x, "k")); kvs(g) != "k=v" {
		t.Fatalf("after bad input: %s", kvs(g))
	}
}

// TestManyWatches: one client opens 10,000 watches on one stream; all are
// created, a put reaches every one, and the server's heap stays bounded.
func TestManyWatches(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	c := newTestCluster(t, 1)
	cli := client(t, c.addrs...)
	x := ctx(t)
	var chans []clientv3.WatchChan
	for i := 0; i < n; i++ {
		chans = append(chans, cli.Watch(x, fmt.Sprintf("w%05d", i%100), clientv3.WithCreatedNotify()))
	}
	for i, wc := range chans {
		if r := next(t, wc); !r.Created {
			t.Fatalf("watch %d: %+v", i, r)
		}
	}
	must[*clientv3.PutResponse](t)(cli.Put(x, "w00007", "v"))
	got := 0
	for i, wc := range chans {
		if i%100 != 7 {
			continue
		}
		if r := next(t, wc); len(r.Events) != 1 {
			t.Fatalf("watch %d: %+v", i, r)
		}
		got++
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d watches, %d got the put; heap in use %d MiB (client and server)", n, got, ms.HeapInuse>>20)
	if ms.HeapInuse > 512<<20 {
		t.Fatalf("heap in use %d MiB with %d watches", ms.HeapInuse>>20, n)
	}
}

// runMember runs a member as `quiver serve` does until the test ends.
func runMember(t *testing.T, cfg MemberConfig) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("member %s: %v", cfg.Name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("member %s did not stop in 30 s", cfg.Name)
		}
	})
}

// memberConfig is member name of the cluster of token whose
// --initial-cluster is cluster (name=URL,...), its data in dir/name,
// serving clients on client and peers on peer, with URLs of scheme.
func memberConfig(dir, scheme, name, token, cluster, peer, client string) MemberConfig {
	cfg := DefaultMemberConfig()
	cfg.Name, cfg.DataDir = name, filepath.Join(dir, name)
	cfg.ListenClientURLs = []string{scheme + "://" + client}
	cfg.AdvertiseClientURLs = cfg.ListenClientURLs
	cfg.ListenPeerURLs = []string{scheme + "://" + peer}
	cfg.InitialAdvertisePeerURLs = cfg.ListenPeerURLs
	cfg.InitialCluster, cfg.InitialClusterToken = cluster, token
	return cfg
}

// TestBadInputOnPeerPort: garbage, truncated HTTP/2 prefaces and HTTP/1
// for nothing on a member's client port as Run serves it; garbage and a
// truncated header on its peer port, and a member of another cluster (another token, so another
// cluster id) that names it as a peer and campaigns at it: the
// connections are refused, the member's raft term does not move, it goes
// on serving; the other cluster never gets a leader.
func TestBadInputOnPeerPort(t *testing.T) {
	peer, clientAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	runMember(t, memberConfig(t.TempDir(), "http", "m1", "good", "m1=http://"+peer, peer, clientAddr))
	cli := client(t, clientAddr)
	x := ctx(t)
	putEventually(t, cli, "k", "v")
	before := must[*clientv3.StatusResponse](t)(cli.Status(x, clientAddr))

	// The client port as Run serves it (connections split between gRPC
	// and HTTP by what they open with) takes the same.
	for name, data := range map[string][]byte{
		"garbage":            bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1024),
		"truncated preface":  []byte("PRI * HTTP/2.0\r\n\r\nSM"),
		"preface then junk":  []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
		"http/1 for nothing": []byte("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"),
		"one byte":           []byte("P"),
	} {
		sendGarbage(t, clientAddr, "client port, "+name, data)
	}
	if g, err := cli.Get(x, "k"); err != nil || kvs(g) != "k=v" {
		t.Fatalf("after bad input on the client port: %v, %v", g, err)
	}

	for name, data := range map[string][]byte{
		"garbage":          bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1024),
		"truncated header": []byte("QRAF\x02"),
		"http request":     []byte("POST /raft HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"),
	} {
		sendGarbage(t, peer, "peer port, "+name, data)
	}

	// Another cluster whose second member has the first one's peer
	// address: its campaigns reach m1 with another cluster id.
	otherPeer, otherClient := testutil.FreeAddr(t), testutil.FreeAddr(t)
	runMember(t, memberConfig(t.TempDir(), "http", "m2", "other", "m1=http://"+peer+",m2=http://"+otherPeer, otherPeer, otherClient))
	time.Sleep(2 * time.Second) // a few of its election timeouts
	other := client(t, otherClient)
	st, err := other.Status(x, otherClient)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != 0 {
		t.Fatalf("the other cluster has leader %x", st.Leader)
	}
	after := must[*clientv3.StatusResponse](t)(cli.Status(x, clientAddr))
	if after.RaftTerm != before.RaftTerm || after.Leader != before.Leader {
		t.Fatalf("term %d leader %x before the intruder, %d %x after", before.RaftTerm, before.Leader, after.RaftTerm, after.Leader)
	}
	if _, err := cli.Put(x, "k", "v2"); err != nil {
		t.Fatalf("put after the bad input: %v", err)
	}
	if ml := must[*clientv3.MemberListResponse](t)(cli.MemberList(x)); len(ml.Members) != 1 {
		t.Fatalf("members after the intruder: %v", ml.Members)
	}
}

// sendGarbage writes data to a new connection to addr, ends its writing
// side, and requires the other end to answer or close it within 40 s.
func sendGarbage(t *testing.T, addr, name string, data []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write(data)
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(40 * time.Second))
	if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: the connection was neither answered nor closed: %v", name, err)
	}
}

// putEventually puts key=value, retrying for up to 20 s while a new
// cluster elects its leader.
func putEventually(t *testing.T, cli *clientv3.Client, key, value string) *clientv3.PutResponse {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := cli.Put(ctx(t), key, value)
		if err == nil {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s: %v", key, err)
		}
	}
}
