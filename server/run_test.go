package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRun: three members started as `quiver serve` starts them, with
// etcd's settings, serve clientv3 and /health on their client ports, and
// stop gracefully when their context ends; started again on their data,
// they still hold it.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	names := []string{"m1", "m2", "m3"}
	peer := map[string]string{}
	clientAddr := map[string]string{}
	var cluster []string
	for _, n := range names {
		peer[n], clientAddr[n] = freePort(t), freePort(t)
		cluster = append(cluster, n+"=http://"+peer[n])
	}
	start := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, len(names))
		for _, n := range names {
			cfg := DefaultMemberConfig()
			cfg.Name, cfg.DataDir = n, filepath.Join(dir, n)
			cfg.ListenClientURLs = []string{"http://" + clientAddr[n]}
			cfg.AdvertiseClientURLs = cfg.ListenClientURLs
			cfg.ListenPeerURLs = []string{"http://" + peer[n]}
			cfg.InitialAdvertisePeerURLs = cfg.ListenPeerURLs
			cfg.InitialCluster = strings.Join(cluster, ",")
			go func() { done <- Run(ctx, cfg) }()
		}
		return func() {
			cancel()
			for range names {
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Run: %v", err)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("a member did not stop in 30 s")
				}
			}
		}
	}
	stop := start()
	var addrs []string
	for _, n := range names {
		addrs = append(addrs, clientAddr[n])
	}
	cli := client(t, addrs...)
	x := ctx(t)
	var resp *clientv3.PutResponse
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err = cli.Put(x, "k", "v1"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if g := must[*clientv3.GetResponse](t)(cli.Get(x, "k")); kvs(g) != "k=v1" {
		t.Fatalf("get: %s", kvs(g))
	}
	for _, n := range names {
		r, err := http.Get("http://" + clientAddr[n] + "/health")
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]string
		_ = json.NewDecoder(r.Body).Decode(&h)
		r.Body.Close()
		if r.StatusCode != http.StatusOK || h["health"] != "true" {
			t.Fatalf("%s /health: %d %v", n, r.StatusCode, h)
		}
	}
	r, err := http.Get("http://" + clientAddr["m1"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{"etcd_server_has_leader 1", "etcd_disk_backend_commit_duration_seconds_count", "etcd_server_proposals_applied_total", "quiver_freelist_free_pages"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics has no %q:\n%s", want, body)
		}
	}
	ml := must[*clientv3.MemberListResponse](t)(cli.MemberList(x))
	if len(ml.Members) != 3 {
		t.Fatalf("member list: %v", ml.Members)
	}
	for _, m := range ml.Members {
		if m.ID != memberID("quiver-cluster", m.Name) || len(m.PeerURLs) != 1 || m.PeerURLs[0] != "http://"+peer[m.Name] {
			t.Fatalf("member %+v", m)
		}
	}
	// Every member's client URLs, as each published them through the log.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ml = must[*clientv3.MemberListResponse](t)(clientv3.NewCluster(client(t, clientAddr["m2"])).MemberList(x))
		n := 0
		for _, m := range ml.Members {
			if len(m.ClientURLs) == 1 && m.ClientURLs[0] == "http://"+clientAddr[m.Name] {
				n++
			}
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member list without every member's client URL: %v", ml.Members)
		}
	}
	cli.Close()
	stop()

	// Again, on the same data.
	stop = start()
	defer stop()
	cli = client(t, addrs...)
	var g *clientv3.GetResponse
	for deadline := time.Now().Add(20 * time.Second); ; {
		if g, err = cli.Get(x, "k"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || kvs(g) != "k=v1" || g.Kvs[0].ModRevision != resp.Header.Revision {
		t.Fatalf("after a restart: %v, %v", g, err)
	}

	// A fourth member, added through the Cluster service and started as
	// `quiver serve --initial-cluster-state existing`: the others learn
	// its address from the change, it catches up and serves.
	p4, c4 := freePort(t), freePort(t)
	add := must[*clientv3.MemberAddResponse](t)(cli.MemberAdd(x, []string{"http://" + p4}))
	cfg := DefaultMemberConfig()
	cfg.Name, cfg.DataDir = "m4", filepath.Join(dir, "m4")
	cfg.ListenClientURLs = []string{"http://" + c4}
	cfg.AdvertiseClientURLs = cfg.ListenClientURLs
	cfg.ListenPeerURLs = []string{"http://" + p4}
	cfg.InitialAdvertisePeerURLs = cfg.ListenPeerURLs
	cfg.InitialCluster = strings.Join(append(cluster, "m4=http://"+p4), ",")
	cfg.InitialClusterState = "existing"
	ctx4, cancel4 := context.WithCancel(context.Background())
	done4 := make(chan error, 1)
	go func() { done4 <- Run(ctx4, cfg) }()
	defer func() {
		cancel4()
		if err := <-done4; err != nil {
			t.Errorf("member 4: %v", err)
		}
	}()
	one := client(t, c4)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if g, err = one.Get(x, "k"); err == nil && kvs(g) == "k=v1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the added member did not catch up: %v, %v", g, err)
		}
	}
	ml = must[*clientv3.MemberListResponse](t)(one.MemberList(x))
	var found bool
	for _, m := range ml.Members {
		if m.ID == add.Member.ID {
			found = true
		}
	}
	if len(ml.Members) != 4 || !found {
		t.Fatalf("member list after the add: %v", ml.Members)
	}
}

// TestRunRefusesBadSettings: settings that cannot work give an error
// naming the flag, before anything listens.
func TestRunRefusesBadSettings(t *testing.T) {
	for name, change := range map[string]func(*MemberConfig){
		"name not in the cluster": func(c *MemberConfig) { c.Name = "other" },
		"bad cluster":             func(c *MemberConfig) { c.InitialCluster = "default" },
		"member twice":            func(c *MemberConfig) { c.InitialCluster = "default=http://127.0.0.1:1,default=http://127.0.0.1:2" },
		"https":                   func(c *MemberConfig) { c.ListenClientURLs = []string{"https://127.0.0.1:2379"} },
		"no port":                 func(c *MemberConfig) { c.ListenPeerURLs = []string{"http://127.0.0.1"} },
		"cluster state":           func(c *MemberConfig) { c.InitialClusterState = "maybe" },
	} {
		cfg := DefaultMemberConfig()
		cfg.DataDir = filepath.Join(t.TempDir(), "d")
		change(&cfg)
		if err := Run(context.Background(), cfg); err == nil {
			t.Fatalf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
