// Package server is quiver's replicated key/value server with etcd's v3
// API: a raftadapter node replicating an mvcc store, served over gRPC with
// the services of go.etcd.io/etcd/api/v3/etcdserverpb, so that etcd's
// clients (clientv3, etcdctl) work against it unchanged.
//
// Every change is one raft entry, an etcd InternalRaftRequest, applied to
// the mvcc store in the raft node's engine transaction (exactly once, with
// the applied index). Reads are linearizable by default (raft's ReadIndex,
// then the member's store) or serializable (the member's store as it is).
//
// Implemented so far: the KV service's Range (every option), Put (prev_kv,
// ignore_value, ignore_lease), DeleteRange (prev_kv), Txn (nested) and
// Compact (physical too); the
// Watch service (start revision, prev_kv, filters, progress notifications
// and requests, fragments, cancel); Maintenance's Status, Hash, HashKV,
// Defragment (online), Snapshot (streamed, with etcd's sha256) and Alarm
// (the NOSPACE alarm of the space quota); Cluster (list, add, remove, promote, update); Lease (Grant, Revoke, KeepAlive, TimeToLive
// with keys, Leases: expiry decided by the leader and revoked through the
// log, remaining TTLs checkpointed); Prometheus metrics. Other services
// and calls answer Unimplemented.
package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
	"github.com/quiverdb/quiver/raftadapter"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// DefaultMaxRequestBytes is etcd's default largest request (1.5 MiB).
const DefaultMaxRequestBytes = 3 << 19

// Config configures a Server.
type Config struct {
	// ID is the member's raft id; ClusterID names the cluster in every
	// response header.
	ID, ClusterID uint64
	// Peers are the members of a new cluster (see raftadapter.Config);
	// Join starts a member added to a running one.
	Peers []uint64
	Join  bool
	// DB holds the raft log and the store; the server does not close it.
	DB *quiver.DB
	// Transport carries raft messages; attach Server.Node to it.
	Transport raftadapter.Transport
	// MemoryBudget, LogWindow and TickInterval are the node's (see
	// raftadapter.Config).
	MemoryBudget int
	LogWindow    int64
	TickInterval time.Duration
	// WAL is the node's write-ahead file (see raftadapter.Config): quiver
	// serve keeps it beside the database.
	WAL string
	// ApplyBatch is raftadapter's Config.ApplyBatch (0: its default).
	ApplyBatch time.Duration
	// MaxRequestBytes bounds a request (default DefaultMaxRequestBytes).
	MaxRequestBytes int
	// RequestTimeout bounds how long a request waits for raft (default 5 s).
	RequestTimeout time.Duration
	// ProgressNotifyInterval is how often watchers that asked for it get a
	// progress notification (default DefaultProgressNotifyInterval).
	ProgressNotifyInterval time.Duration
	// Logger receives raft's log; nil discards it.
	Logger raft.Logger
	// Members names the members (by raft id) for the Cluster service.
	Members map[uint64]MemberInfo
	// ClusterToken is the cluster's token: the id of a member added
	// through the Cluster service derives from it and its peer URL.
	ClusterToken string
	// OnPeer, if set, is told the peer URLs of a member (nil: it was
	// removed) when a configuration change gives them, and of every member
	// known at start and after a snapshot: the transport's address book.
	OnPeer func(id uint64, peerURLs []string)
	// FsyncTimer, if set, is the timer DB was opened with
	// (Options.OpenFile: FsyncTimer.OpenFile); it times the write-ahead
	// file's syncs too, and its histograms join the metrics.
	FsyncTimer *FsyncTimer
	// LeaseCheckpointInterval is how often the leader records every
	// lease's remaining TTL through the log (default
	// DefaultLeaseCheckpointInterval), so that a new leader keeps it.
	LeaseCheckpointInterval time.Duration
	// QuotaBackendBytes is the space quota (default
	// DefaultQuotaBackendBytes): a write that would take the database's
	// space in use past it is refused and raises the NOSPACE alarm, which
	// refuses writes on every member until it is cleared (etcd's
	// --quota-backend-bytes).
	QuotaBackendBytes int64
}

// DefaultLeaseCheckpointInterval is etcd's default.
const DefaultLeaseCheckpointInterval = 5 * time.Minute

// Server is one member of a cluster.
type Server struct {
	cfg     Config
	store   *mvcc.Store
	node    *raftadapter.Node
	lessor  *lessor
	members *registry
	alarms  *alarmSet
	raising atomic.Bool       // a NOSPACE alarm is being proposed
	asker   raftadapter.Asker // the transport's requests to the leader, if it has them
	metrics *metrics
	stop    chan struct{}
	done    chan struct{}
}

// New opens the store in cfg.DB and starts the member's raft node.
func New(cfg Config) (*Server, error) {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.ProgressNotifyInterval <= 0 {
		cfg.ProgressNotifyInterval = DefaultProgressNotifyInterval
	}
	if cfg.LeaseCheckpointInterval <= 0 {
		cfg.LeaseCheckpointInterval = DefaultLeaseCheckpointInterval
	}
	if cfg.QuotaBackendBytes <= 0 {
		cfg.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	store, err := mvcc.Open(cfg.DB, nil)
	if err != nil {
		return nil, err
	}
	ls := newLessor()
	if err := ls.load(cfg.DB, store); err != nil {
		store.Close()
		return nil, err
	}
	members := &registry{}
	if err := members.load(cfg.DB); err != nil {
		store.Close()
		return nil, err
	}
	alarms := &alarmSet{}
	if err := alarms.load(cfg.DB); err != nil {
		store.Close()
		return nil, err
	}
	mach := &machine{db: cfg.DB, store: store, lessor: ls, members: members, alarms: alarms, onPeer: cfg.OnPeer}
	mach.announcePeers()
	var walOpen func(string, int, os.FileMode) (quiver.File, error)
	if cfg.FsyncTimer != nil {
		walOpen = cfg.FsyncTimer.OpenWALFile
	}
	node, err := raftadapter.StartNode(raftadapter.Config{
		ID: cfg.ID, Peers: cfg.Peers, Join: cfg.Join, DB: cfg.DB, StateMachine: mach,
		Transport: cfg.Transport, MemoryBudget: cfg.MemoryBudget, LogWindow: cfg.LogWindow,
		TickInterval: cfg.TickInterval, WAL: cfg.WAL, WALOpenFile: walOpen, ApplyBatch: cfg.ApplyBatch, Logger: cfg.Logger,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, store: store, node: node, lessor: ls, members: members, alarms: alarms, stop: make(chan struct{}), done: make(chan struct{})}
	if a, ok := cfg.Transport.(raftadapter.Asker); ok {
		s.asker = a
		a.HandleAsk(s.answer)
	}
	s.metrics = newMetrics(s)
	if cfg.FsyncTimer != nil {
		s.metrics.reg.MustRegister(cfg.FsyncTimer.backend, cfg.FsyncTimer.wal)
	}
	go s.leaseLoop()
	go s.publish()
	return s, nil
}

// Metrics returns the member's Prometheus metrics (Run serves them on
// /metrics).
func (s *Server) Metrics() *prometheus.Registry { return s.metrics.reg }

// Node returns the member's raft node, to attach to its transport.
func (s *Server) Node() *raftadapter.Node { return s.node }

// GRPCOptions are the options the member's gRPC server needs: messages up
// to MaxRequestBytes and some room for their envelope (so that a request
// just over the limit gets etcd's error, not the transport's), answers of
// any size.
func (s *Server) GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes + 512<<10), grpc.MaxSendMsgSize(math.MaxInt32)}
}

// Register registers the server's services on g.
func (s *Server) Register(g *grpc.Server) {
	pb.RegisterKVServer(g, &kvServer{s: s})
	pb.RegisterWatchServer(g, &watchServer{s: s})
	pb.RegisterMaintenanceServer(g, &maintenanceServer{s: s})
	pb.RegisterClusterServer(g, &clusterServer{s: s})
	pb.RegisterLeaseServer(g, &leaseServer{s: s})
}

// Close stops the node and closes the store; the database stays open.
func (s *Server) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	err := s.node.Stop()
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// fence returns once every result this member handed out is readable
// (raftadapter's Node.Fence): a read that does not wait for raft's read
// index fences first, so that it sees the writes answered before it.
func (s *Server) fence(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := s.node.Fence(rctx); err != nil {
		return s.raftError(rctx, err)
	}
	return nil
}

// header is the response header of this member at revision rev.
func (s *Server) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.cfg.ClusterID, MemberId: s.cfg.ID, Revision: rev, RaftTerm: s.node.Status().GetTerm()}
}

// propose replicates r and returns what applying it gave: an etcd
// response, or compacted.
func (s *Server) propose(ctx context.Context, r *pb.InternalRaftRequest) (any, error) {
	data, err := proto.Marshal(r)
	if err != nil {
		return nil, toGRPC(err)
	}
	if len(data) > s.cfg.MaxRequestBytes {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	if err := s.checkQuota(r); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	v, err := s.node.Propose(ctx, data)
	if err != nil {
		s.metrics.failed.Inc()
		return nil, s.raftError(ctx, err)
	}
	switch v := v.(type) {
	case error:
		return nil, toGRPC(v)
	case proto.Message, compacted:
		return v, nil
	}
	return nil, status.Errorf(codes.Internal, "server: the entry was applied with no response (%T)", v)
}

// raftError is the etcd error of a proposal or read that raft did not
// complete.
func (s *Server) raftError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, raftadapter.ErrStopped):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, context.Canceled):
		return status.FromContextError(err).Err()
	case errors.Is(err, context.DeadlineExceeded):
		if s.node.Status().Lead == raft.None {
			return rpctypes.ErrGRPCNoLeader
		}
		return rpctypes.ErrGRPCTimeout
	}
	return toGRPC(err)
}

// toGRPC maps the store's refusals to etcd's errors.
func toGRPC(err error) error {
	for _, m := range []struct {
		err  error
		grpc error
	}{
		{mvcc.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
		{mvcc.ErrCompacted, rpctypes.ErrGRPCCompacted},
		{mvcc.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
		{mvcc.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
		{mvcc.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
		{ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
		{ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
		{ErrLeaseExist, rpctypes.ErrGRPCLeaseExist},
		{ErrLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
		{errValueProvided, rpctypes.ErrGRPCValueProvided},
		{errLeaseProvided, rpctypes.ErrGRPCLeaseProvided},
		{quiver.ErrValueTooLarge, rpctypes.ErrGRPCRequestTooLarge},
		{ErrNoSpace, rpctypes.ErrGRPCNoSpace},
		{ErrCorrupt, rpctypes.ErrGRPCCorrupt},
	} {
		if errors.Is(err, m.err) {
			return m.grpc
		}
	}
	switch {
	case errors.Is(err, mvcc.ErrInvalidRange):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errUnsupported):
		return status.Error(codes.Unimplemented, err.Error())
	}
	return status.Error(codes.Unknown, fmt.Sprintf("etcdserver: %v", err))
}
