package main

import (
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"github.com/quiverdb/quiver/server"
	"github.com/spf13/cobra"
)

func newServeCommand() *cobra.Command {
	cfg := server.DefaultMemberConfig()
	var clientURLs, advClientURLs, peerURLs, advPeerURLs string
	var snapshotCount uint64
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "run a member of a replicated key/value cluster that speaks etcd's v3 API",
		Long: `Serve runs one member of a quiver cluster: a replicated key/value store (raft
over TCP between members, the log and the data in one quiver file) that speaks
etcd's v3 gRPC API, so that etcd's clients (clientv3, etcdctl) work against it.
Its flags are etcd's, for the same settings. With none, it runs a cluster of
one, with its data in ./default.quiver, listening on 127.0.0.1:2379 (clients)
and 127.0.0.1:2380 (peers) only.

Served so far: KV, Watch, Lease, Maintenance, Cluster, and
/health and /metrics (Prometheus) on the client port; see the README's "Run a
cluster". Other calls answer Unimplemented. It stops gracefully on SIGTERM or
SIGINT.

--quota-backend-bytes (default 2 GiB) bounds the database's space in use,
the raft log's included: a write past it is refused and raises the NOSPACE
alarm, which refuses writes until it is cleared (etcdctl alarm disarm) once
space is freed (a delete and a compaction). --snapshot-count is accepted for
etcd's command lines: quiver compacts its raft log by size instead.
--backend-batch-interval (default 5ms) is how long applied writes may share
one database commit: a write is answered once it is applied, and reads wait
for its commit; watchers get its event with that commit.

TLS: https:// client URLs serve with --cert-file and --key-file;
--client-cert-auth demands client certificates signed by --trusted-ca-file.
The peer flags (--peer-cert-file and so on) secure the raft transport both
ways; all peer URLs are then https://.`,
		Example: `  quiver serve
  quiver serve --name m1 --data-dir m1.quiver \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster m1=http://127.0.0.1:2380,m2=http://127.0.0.1:12380,m3=http://127.0.0.1:22380`,
		Args: argsBetween(0, 0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			split := func(s string) []string {
				var out []string
				for _, p := range strings.Split(s, ",") {
					if p = strings.TrimSpace(p); p != "" {
						out = append(out, p)
					}
				}
				return out
			}
			cfg.ListenClientURLs, cfg.AdvertiseClientURLs = split(clientURLs), split(advClientURLs)
			cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = split(peerURLs), split(advPeerURLs)
			if cfg.MaxRequestBytes <= 0 {
				return usagef("invalid --max-request-bytes %d: want at least 1", cfg.MaxRequestBytes)
			}
			if cfg.QuotaBackendBytes < 0 {
				return usagef("invalid --quota-backend-bytes %d: want 0 (the default) or more", cfg.QuotaBackendBytes)
			}
			if cfg.BackendBatchInterval < 0 {
				return usagef("invalid --backend-batch-interval %v: want 0 (the default) or more", cfg.BackendBatchInterval)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			out := cmd.OutOrStdout()
			cfg.Ready = func(client, peer []string) {
				fmt.Fprintf(out, "quiver serve: member %q serving clients on %s, peers on %s\n", cfg.Name, strings.Join(client, ","), strings.Join(peer, ","))
			}
			if err := server.Run(ctx, cfg); err != nil {
				return &failure{err}
			}
			fmt.Fprintf(out, "quiver serve: member %q stopped\n", cfg.Name)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", cfg.Name, "the member's name in --initial-cluster")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "the member's directory (its database is member.db there)")
	f.StringVar(&clientURLs, "listen-client-urls", strings.Join(cfg.ListenClientURLs, ","), "URLs to serve clients on (http://host:port, comma-separated)")
	f.StringVar(&advClientURLs, "advertise-client-urls", strings.Join(cfg.AdvertiseClientURLs, ","), "client URLs to tell others")
	f.StringVar(&peerURLs, "listen-peer-urls", strings.Join(cfg.ListenPeerURLs, ","), "URL to serve peers on")
	f.StringVar(&advPeerURLs, "initial-advertise-peer-urls", strings.Join(cfg.InitialAdvertisePeerURLs, ","), "peer URLs to tell others")
	f.StringVar(&cfg.InitialCluster, "initial-cluster", cfg.InitialCluster, "the first members: name=peer-url,...")
	f.StringVar(&cfg.InitialClusterState, "initial-cluster-state", cfg.InitialClusterState, "new (bootstrap the cluster) or existing (join a running one, after etcdctl member add)")
	f.StringVar(&cfg.InitialClusterToken, "initial-cluster-token", cfg.InitialClusterToken, "the cluster's token: member and cluster ids derive from it")
	f.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "the largest request a client may send")
	f.Int64Var(&cfg.QuotaBackendBytes, "quota-backend-bytes", server.DefaultQuotaBackendBytes, "the space the database may use before writes are refused and the NOSPACE alarm raised")
	f.StringVar(&cfg.ClientTLS.CertFile, "cert-file", "", "the client port's TLS certificate (PEM)")
	f.StringVar(&cfg.ClientTLS.KeyFile, "key-file", "", "the client port's TLS key (PEM)")
	f.StringVar(&cfg.ClientTLS.TrustedCAFile, "trusted-ca-file", "", "CAs whose client certificates --client-cert-auth accepts")
	f.BoolVar(&cfg.ClientTLS.ClientCertAuth, "client-cert-auth", false, "demand a client certificate signed by --trusted-ca-file")
	f.StringVar(&cfg.PeerTLS.CertFile, "peer-cert-file", "", "the peer transport's TLS certificate (PEM; used to serve and to dial)")
	f.StringVar(&cfg.PeerTLS.KeyFile, "peer-key-file", "", "the peer transport's TLS key (PEM)")
	f.StringVar(&cfg.PeerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "CAs that sign the peers' certificates")
	f.BoolVar(&cfg.PeerTLS.ClientCertAuth, "peer-client-cert-auth", false, "demand a peer certificate signed by --peer-trusted-ca-file")
	f.DurationVar(&cfg.BackendBatchInterval, "backend-batch-interval", 0, "the longest an applied write waits for the database commit that shows it to reads that do not wait for it and to watchers (0: 5ms)")
	f.Uint64Var(&snapshotCount, "snapshot-count", 0, "accepted for etcd's command lines; quiver compacts its log by size")
	return cmd
}
