package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quiverdb/quiver/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestRun: three members started as `quiver serve` starts them, with
// etcd's settings, serve clientv3 and /health on their client ports, and
// stop gracefully when their context ends; started again on their data,
// they still hold it.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	token := DefaultMemberConfig().InitialClusterToken
	names := []string{"m1", "m2", "m3"}
	peer := map[string]string{}
	clientAddr := map[string]string{}
	var cluster []string
	for _, n := range names {
		peer[n], clientAddr[n] = testutil.FreeAddr(t), testutil.FreeAddr(t)
		cluster = append(cluster, n+"=http://"+peer[n])
	}
	start := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, len(names))
		for _, n := range names {
			cfg := memberConfig(dir, "http", n, token, strings.Join(cluster, ","), peer[n], clientAddr[n])
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
	// Each call has a context of its own: starting and restarting three
	// members on a loaded machine can take longer than one 10 s timeout.
	resp := putEventually(t, cli, "k", "v1")
	if g := must[*clientv3.GetResponse](t)(cli.Get(ctx(t), "k")); kvs(g) != "k=v1" {
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
	// The put went through m1's write-ahead file (every member's, the
	// leader's at least, and each member's log holds it): its fdatasync is
	// in the histogram.
	if c := metricValue(string(body), "etcd_disk_wal_fsync_duration_seconds_count"); c < 1 {
		t.Fatalf("/metrics: etcd_disk_wal_fsync_duration_seconds_count %v, want ≥ 1:\n%s", c, body)
	}
	for _, want := range []string{"etcd_server_has_leader 1", "etcd_disk_backend_commit_duration_seconds_count", "etcd_server_proposals_applied_total", "quiver_freelist_free_pages", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics has no %q:\n%s", want, body)
		}
	}
	ml := must[*clientv3.MemberListResponse](t)(cli.MemberList(ctx(t)))
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
		ml = must[*clientv3.MemberListResponse](t)(clientv3.NewCluster(client(t, clientAddr["m2"])).MemberList(ctx(t)))
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
		if g, err = cli.Get(ctx(t), "k"); err == nil || time.Now().After(deadline) {
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
	p4, c4 := testutil.FreeAddr(t), testutil.FreeAddr(t)
	add := must[*clientv3.MemberAddResponse](t)(cli.MemberAdd(ctx(t), []string{"http://" + p4}))
	cfg := memberConfig(dir, "http", "m4", token, strings.Join(append(cluster, "m4=http://"+p4), ","), p4, c4)
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
		if g, err = one.Get(ctx(t), "k"); err == nil && kvs(g) == "k=v1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the added member did not catch up: %v, %v", g, err)
		}
	}
	ml = must[*clientv3.MemberListResponse](t)(one.MemberList(ctx(t)))
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
		"name not in the cluster":   func(c *MemberConfig) { c.Name = "other" },
		"bad cluster":               func(c *MemberConfig) { c.InitialCluster = "default" },
		"member twice":              func(c *MemberConfig) { c.InitialCluster = "default=http://127.0.0.1:1,default=http://127.0.0.1:2" },
		"https with no certificate": func(c *MemberConfig) { c.ListenClientURLs = []string{"https://127.0.0.1:2379"} },
		"peer https with no certificate": func(c *MemberConfig) {
			c.ListenPeerURLs = []string{"https://127.0.0.1:2380"}
		},
		"peer certificate, http peers": func(c *MemberConfig) { c.PeerTLS = TLSInfo{CertFile: "x", KeyFile: "y"} },
		"missing certificate file": func(c *MemberConfig) {
			c.ClientTLS = TLSInfo{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}
		},
		"client-cert-auth without a CA": func(c *MemberConfig) { c.ClientTLS = TLSInfo{ClientCertAuth: true} },
		"ftp URL":                       func(c *MemberConfig) { c.ListenClientURLs = []string{"ftp://127.0.0.1:2379"} },
		"no port":                       func(c *MemberConfig) { c.ListenPeerURLs = []string{"http://127.0.0.1"} },
		"cluster state":                 func(c *MemberConfig) { c.InitialClusterState = "maybe" },
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

// TestRunTLS: three members serving clients and peers over TLS, both
// demanding a certificate of the cluster's CA (--client-cert-auth,
// --peer-client-cert-auth): clientv3 with such a certificate works; a
// client with none or with another CA's is refused, and so is a peer
// connection with another CA's certificate; the members go on serving.
func TestRunTLS(t *testing.T) {
	dir := t.TempDir()
	certs := testutil.NewCerts(t, dir)
	info := TLSInfo{CertFile: certs.Cert, KeyFile: certs.Key, TrustedCAFile: certs.CA, ClientCertAuth: true}
	names := []string{"m1", "m2", "m3"}
	peer, clientAddr := map[string]string{}, map[string]string{}
	var cluster, addrs []string
	for _, n := range names {
		peer[n], clientAddr[n] = testutil.FreeAddr(t), testutil.FreeAddr(t)
		cluster = append(cluster, n+"=https://"+peer[n])
		addrs = append(addrs, clientAddr[n])
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(names))
	for _, n := range names {
		cfg := memberConfig(dir, "https", n, "tls", strings.Join(cluster, ","), peer[n], clientAddr[n])
		cfg.ClientTLS, cfg.PeerTLS = info, info
		go func() { done <- Run(runCtx, cfg) }()
	}
	defer func() {
		cancel()
		for range names {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}()

	tlsClient := func(cert, key string) *clientv3.Client {
		cfg := &tls.Config{RootCAs: x509.NewCertPool()}
		pemCA, err := os.ReadFile(certs.CA)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RootCAs.AppendCertsFromPEM(pemCA)
		if cert != "" {
			kp, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{kp}
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: addrs, DialTimeout: 5 * time.Second, TLS: cfg, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return cli
	}
	cli := tlsClient(certs.Cert, certs.Key)
	putEventually(t, cli, "k", "v")
	x := ctx(t) // after the members' start, however long that took
	for _, n := range names {
		// Every member serves, so the peers' TLS carries raft.
		one := tlsClient(certs.Cert, certs.Key)
		one.SetEndpoints(clientAddr[n])
		if g, err := one.Get(x, "k"); err != nil || kvs(g) != "k=v" {
			t.Fatalf("get from %s: %v, %v", n, g, err)
		}
	}
	// /health over TLS, with HTTP/2 as Prometheus and curl negotiate it.
	kp, err := tls.LoadX509KeyPair(certs.Cert, certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pemCA, _ := os.ReadFile(certs.CA)
	pool.AppendCertsFromPEM(pemCA)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}}}}
	r, err := hc.Get("https://" + clientAddr["m1"] + "/health")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK || r.ProtoMajor != 2 {
		t.Fatalf("/health over TLS: %s, %s", r.Status, r.Proto)
	}
	for name, c := range map[string]*clientv3.Client{"no certificate": tlsClient("", ""), "another CA's certificate": tlsClient(certs.RogueCert, certs.RogueKey)} {
		short, cancel := context.WithTimeout(x, 2*time.Second)
		_, err := c.Get(short, "k")
		cancel()
		if err == nil {
			t.Fatalf("a client with %s read the data", name)
		}
		t.Logf("client with %s: %v", name, err)
	}
	// A peer connection with another CA's certificate fails its
	// handshake; a plain TCP one gets nothing.
	rogue, err := tls.LoadX509KeyPair(certs.RogueCert, certs.RogueKey)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tls.Dial("tcp", peer["m1"], &tls.Config{Certificates: []tls.Certificate{rogue}, InsecureSkipVerify: true})
	if err == nil {
		_ = pc.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = pc.Read(make([]byte, 1))
		pc.Close()
	}
	if err == nil {
		t.Fatal("a peer with another CA's certificate was let in")
	}
	t.Logf("peer with another CA's certificate: %v", err)
	if _, err := cli.Put(x, "k", "v2"); err != nil {
		t.Fatalf("put after the refusals: %v", err)
	}
}

// metricValue is the value of the sample named name in a Prometheus text
// exposition, or -1 if it has none.
func metricValue(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
