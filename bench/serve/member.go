package main

import (
	"context"
	"fmt"
	"net/url"
	"os/signal"
	"syscall"

	"github.com/quiverdb/quiver/server"
	"go.etcd.io/etcd/server/v3/embed"
)

// memberSpec is one member of a benchmark cluster, as the parent passes
// it to the child that runs it.
type memberSpec struct {
	Engine, Name, Dir string
	Client, Peer      string // host:port
	Cluster           string // name=http://peer,...
	Token             string
	QuotaBackendBytes int64
	SnapshotCount     uint64 // etcd's; 0: its default
	// Binary, when set, is an etcd server binary (etcdmain: ../../compat/etcdserver)
	// that runs the member with etcd's flags instead of this program.
	Binary string
}

// etcdFlags are the flags that run spec with an etcd binary.
func etcdFlags(spec memberSpec) []string {
	args := []string{"--name", spec.Name, "--data-dir", spec.Dir,
		"--listen-client-urls", "http://" + spec.Client, "--advertise-client-urls", "http://" + spec.Client,
		"--listen-peer-urls", "http://" + spec.Peer, "--initial-advertise-peer-urls", "http://" + spec.Peer,
		"--initial-cluster", spec.Cluster, "--initial-cluster-token", spec.Token,
		"--initial-cluster-state", "new", "--log-level", "error", "--metrics", "extensive"}
	if spec.QuotaBackendBytes > 0 {
		args = append(args, "--quota-backend-bytes", fmt.Sprint(spec.QuotaBackendBytes))
	}
	if spec.SnapshotCount > 0 {
		args = append(args, "--snapshot-count", fmt.Sprint(spec.SnapshotCount))
	}
	return args
}

// runMember runs a member until SIGTERM or SIGINT, printing READY once it
// serves.
func runMember(spec memberSpec) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch spec.Engine {
	case "quiver":
		cfg := server.DefaultMemberConfig()
		cfg.Name, cfg.DataDir = spec.Name, spec.Dir
		cfg.ListenClientURLs = []string{"http://" + spec.Client}
		cfg.AdvertiseClientURLs = cfg.ListenClientURLs
		cfg.ListenPeerURLs = []string{"http://" + spec.Peer}
		cfg.InitialAdvertisePeerURLs = cfg.ListenPeerURLs
		cfg.InitialCluster, cfg.InitialClusterToken = spec.Cluster, spec.Token
		cfg.QuotaBackendBytes = spec.QuotaBackendBytes
		cfg.Ready = func(_, _ []string) { fmt.Println("READY") }
		return server.Run(ctx, cfg)
	case "etcd":
		cfg := embed.NewConfig()
		cfg.Name, cfg.Dir = spec.Name, spec.Dir
		cu, pu := url.URL{Scheme: "http", Host: spec.Client}, url.URL{Scheme: "http", Host: spec.Peer}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		cfg.InitialCluster, cfg.InitialClusterToken = spec.Cluster, spec.Token
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.QuotaBackendBytes = spec.QuotaBackendBytes
		if spec.SnapshotCount > 0 {
			cfg.SnapshotCount = spec.SnapshotCount
		}
		cfg.LogLevel = "error"
		cfg.Metrics = "extensive"
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			return err
		}
		defer e.Close()
		select {
		case <-e.Server.ReadyNotify():
			fmt.Println("READY")
		case err := <-e.Err():
			return err
		}
		select {
		case <-ctx.Done():
		case err := <-e.Err():
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown engine %q (want quiver or etcd)", spec.Engine)
}

// memberEnv is the variable that hands a child its spec (JSON).
const memberEnv = "QUIVER_BENCH_MEMBER"
