package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/raftadapter"
	"google.golang.org/grpc"
)

// MemberConfig is a member as `quiver serve` runs it, with etcd's settings
// under etcd's names.
type MemberConfig struct {
	Name    string // --name
	DataDir string // --data-dir: the member's database is DataDir/member.db, its raft write-ahead file DataDir/raft.wal

	ListenClientURLs         []string // --listen-client-urls
	AdvertiseClientURLs      []string // --advertise-client-urls
	ListenPeerURLs           []string // --listen-peer-urls
	InitialAdvertisePeerURLs []string // --initial-advertise-peer-urls

	InitialCluster      string // --initial-cluster: name=peerURL,...
	InitialClusterState string // --initial-cluster-state: new or existing
	InitialClusterToken string // --initial-cluster-token

	MaxRequestBytes   int   // --max-request-bytes
	QuotaBackendBytes int64 // --quota-backend-bytes (0: DefaultQuotaBackendBytes)
	// BackendBatchInterval is the longest an applied write waits for the
	// database commit that makes it readable (raftadapter's
	// Config.ApplyBatch; 0: its default, 5 ms): --backend-batch-interval,
	// etcd's name for its backend's commit interval.
	BackendBatchInterval time.Duration

	// ClientTLS serves clients over TLS (--cert-file, --key-file,
	// --trusted-ca-file, --client-cert-auth): the https:// client URLs;
	// PeerTLS secures the raft transport (the --peer-* ones), whose URLs
	// are then all https://.
	ClientTLS, PeerTLS TLSInfo

	// Ready, if set, is called once the member listens, with the addresses
	// of its client and peer listeners.
	Ready func(client, peer []string) `json:"-"`
}

// DefaultMemberConfig is what `quiver serve` runs with no flags: one
// member, data in ./default.quiver, listening on 127.0.0.1 only.
func DefaultMemberConfig() MemberConfig {
	return MemberConfig{
		Name:                     "default",
		DataDir:                  "default.quiver",
		ListenClientURLs:         []string{"http://127.0.0.1:2379"},
		AdvertiseClientURLs:      []string{"http://127.0.0.1:2379"},
		ListenPeerURLs:           []string{"http://127.0.0.1:2380"},
		InitialAdvertisePeerURLs: []string{"http://127.0.0.1:2380"},
		InitialCluster:           "default=http://127.0.0.1:2380",
		InitialClusterState:      "new",
		InitialClusterToken:      "quiver-cluster",
		MaxRequestBytes:          DefaultMaxRequestBytes,
	}
}

// clusterMember is one entry of --initial-cluster.
type clusterMember struct {
	name string
	id   uint64
	url  string // its peer URL
	peer string // host:port
}

// memberID is the raft id of member name in the cluster of token: the
// same on every member, never 0.
func memberID(token, name string) uint64 {
	return max(xxhash.Sum64String(token+"\x00"+name), 1)
}

// parseCluster parses --initial-cluster.
func parseCluster(spec, token string) ([]clusterMember, uint64, error) {
	var ms []clusterMember
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" {
			return nil, 0, fmt.Errorf("--initial-cluster: %q is not name=peer-url", part)
		}
		if seen[name] {
			return nil, 0, fmt.Errorf("--initial-cluster: member %q is named twice", name)
		}
		seen[name] = true
		host, err := hostPort(u)
		if err != nil {
			return nil, 0, fmt.Errorf("--initial-cluster: member %q: %w", name, err)
		}
		ms = append(ms, clusterMember{name: name, id: memberID(token, name), url: u, peer: host})
	}
	// The cluster's id derives from the token alone, so that a member
	// added later (whose --initial-cluster names more members) has the
	// same; give each cluster its own token, as etcd asks.
	return ms, max(xxhash.Sum64String("cluster\x00"+token), 1), nil
}

// hostPort is the host:port of an http:// or https:// URL.
func hostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("URL %q: %w", raw, errScheme)
	}
	if u.Port() == "" {
		return "", fmt.Errorf("URL %q has no port", raw)
	}
	return u.Host, nil
}

// isHTTPS reports whether raw is an https:// URL (and checks it as
// hostPort does).
func isHTTPS(raw string) (bool, error) {
	if _, err := hostPort(raw); err != nil {
		return false, err
	}
	u, _ := url.Parse(raw)
	return u.Scheme == "https", nil
}

// Run runs a member until ctx ends, then stops it gracefully: the client
// listeners close, requests in flight end, the raft node stops and the
// database is closed.
func Run(ctx context.Context, cfg MemberConfig) error {
	if cfg.Name == "" || cfg.DataDir == "" {
		return errors.New("--name and --data-dir must not be empty")
	}
	if cfg.InitialClusterState != "new" && cfg.InitialClusterState != "existing" {
		return fmt.Errorf("--initial-cluster-state %q: want new or existing", cfg.InitialClusterState)
	}
	members, clusterID, err := parseCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		return err
	}
	var self *clusterMember
	var ids []uint64
	peers := map[uint64]string{}
	for i, m := range members {
		ids = append(ids, m.id)
		if m.name == cfg.Name {
			self = &members[i]
		} else {
			peers[m.id] = m.peer
		}
	}
	if self == nil {
		return fmt.Errorf("--name %q is not in --initial-cluster %q", cfg.Name, cfg.InitialCluster)
	}
	if cfg.InitialClusterState == "existing" {
		// A member added through the Cluster service: its id derives
		// from its peer URL, as MemberAdd derived it.
		if len(cfg.InitialAdvertisePeerURLs) == 0 {
			return errors.New("--initial-advertise-peer-urls must not be empty")
		}
		self.id = memberIDOf(cfg.InitialClusterToken, cfg.InitialAdvertisePeerURLs[0])
		delete(peers, self.id)
	}
	if len(cfg.ListenPeerURLs) == 0 || len(cfg.ListenClientURLs) == 0 {
		return errors.New("--listen-peer-urls and --listen-client-urls must not be empty")
	}
	peerListen, err := hostPort(cfg.ListenPeerURLs[0])
	if err != nil {
		return fmt.Errorf("--listen-peer-urls: %w", err)
	}
	var clientListen []string
	for _, u := range cfg.ListenClientURLs {
		h, err := hostPort(u)
		if err != nil {
			return fmt.Errorf("--listen-client-urls: %w", err)
		}
		clientListen = append(clientListen, h)
	}

	var clientTLS, peerTLS *tls.Config
	if !cfg.ClientTLS.Empty() {
		if clientTLS, err = cfg.ClientTLS.config(""); err != nil {
			return err
		}
	} else if cfg.ClientTLS.TrustedCAFile != "" || cfg.ClientTLS.ClientCertAuth {
		return errors.New("--trusted-ca-file and --client-cert-auth need --cert-file and --key-file")
	}
	if !cfg.PeerTLS.Empty() {
		if peerTLS, err = cfg.PeerTLS.config("peer-"); err != nil {
			return err
		}
	} else if cfg.PeerTLS.TrustedCAFile != "" || cfg.PeerTLS.ClientCertAuth {
		return errors.New("--peer-trusted-ca-file and --peer-client-cert-auth need --peer-cert-file and --peer-key-file")
	}
	// Each client URL chooses TLS by its scheme; the peers' all use it
	// or none do.
	for _, u := range cfg.ListenClientURLs {
		if https, _ := isHTTPS(u); https && clientTLS == nil {
			return fmt.Errorf("--listen-client-urls: %s is https:// but --cert-file and --key-file are not given", u)
		}
	}
	if err := schemeTLS(cfg.ListenPeerURLs, peerTLS != nil, "--listen-peer-urls"); err != nil {
		return err
	}
	if err := schemeTLS(cfg.InitialAdvertisePeerURLs, peerTLS != nil, "--initial-advertise-peer-urls"); err != nil {
		return err
	}
	var peerList []string
	for _, m := range members {
		peerList = append(peerList, m.url)
	}
	if err := schemeTLS(peerList, peerTLS != nil, "--initial-cluster"); err != nil {
		return err
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	fsync := NewFsyncTimer()
	db, err := quiver.Open(filepath.Join(cfg.DataDir, "member.db"), 0o600, &quiver.Options{Timeout: 5 * time.Second, OpenFile: fsync.OpenFile})
	if err != nil {
		return fmt.Errorf("opening the data: %w", err)
	}
	defer db.Close()
	tr, err := raftadapter.NewTCPTransport(raftadapter.TCPConfig{ID: self.id, ClusterID: clusterID, Listen: peerListen, Peers: peers, TLS: peerTLS})
	if err != nil {
		return fmt.Errorf("listening for peers: %w", err)
	}
	defer tr.Close()
	infos := map[uint64]MemberInfo{}
	for _, m := range members {
		infos[m.id] = MemberInfo{Name: m.name, PeerURLs: []string{m.url}}
	}
	infos[self.id] = MemberInfo{Name: self.name, PeerURLs: cfg.InitialAdvertisePeerURLs, ClientURLs: cfg.AdvertiseClientURLs}
	scfg := Config{ID: self.id, ClusterID: clusterID, Peers: ids, DB: db, Transport: tr, WAL: filepath.Join(cfg.DataDir, "raft.wal"), ApplyBatch: cfg.BackendBatchInterval, MaxRequestBytes: cfg.MaxRequestBytes, QuotaBackendBytes: cfg.QuotaBackendBytes, Members: infos, FsyncTimer: fsync,
		ClusterToken: cfg.InitialClusterToken,
		OnPeer: func(id uint64, urls []string) {
			switch {
			case id == self.id:
			case urls == nil:
				tr.RemovePeer(id)
			default:
				if h, err := hostPort(urls[0]); err == nil {
					tr.AddPeer(id, h)
				}
			}
		}}
	if cfg.InitialClusterState == "existing" {
		scfg.Peers, scfg.Join = nil, true
	}
	srv, err := New(scfg)
	if err != nil {
		return fmt.Errorf("%w", err)
	}
	defer srv.Close()
	tr.Attach(srv.Node())

	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	defer g.Stop()
	hs := &http.Server{Handler: srv.httpHandler(g), ReadHeaderTimeout: 10 * time.Second}
	defer hs.Close()
	var addrs []string
	errc := make(chan error, 2*len(clientListen))
	for i, h := range clientListen {
		ln, err := net.Listen("tcp", h)
		if err != nil {
			return fmt.Errorf("listening for clients: %w", err)
		}
		addrs = append(addrs, ln.Addr().String())
		var cfgTLS *tls.Config
		if https, _ := isHTTPS(cfg.ListenClientURLs[i]); https {
			cfgTLS = clientTLS
		}
		split := newSplitListener(ln, cfgTLS)
		defer split.Close()
		go func() { errc <- g.Serve(split.grpcL) }()
		go func() { errc <- hs.Serve(split.httpL) }()
	}
	if cfg.Ready != nil {
		cfg.Ready(addrs, []string{tr.Addr()})
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serving clients: %w", err)
		}
	}
	// Requests in flight get a moment to end; streams (watches, lease
	// keep-alives) never do, and are cut by the deferred Close.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// The HTTP server first: it carries gRPC too on a TLS port, and its
	// Shutdown lets requests end, where gRPC's GracefulStop would cancel
	// those it serves through ServeHTTP.
	_ = hs.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-sctx.Done():
		g.Stop()
		<-stopped
	}
	return nil
}

// httpHandler serves /health and /metrics on the client port, as etcd's
// does, and the gRPC requests of TLS connections (see splitListener).
func (s *Server) httpHandler(g *grpc.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		healthy := s.node.Status().Lead != 0
		w.Header().Set("Content-Type", "application/json")
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"health": fmt.Sprint(healthy), "reason": map[bool]string{true: "", false: "no leader"}[healthy]})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
