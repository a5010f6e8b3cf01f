package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/quiverdb/quiver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// APIVersion is the etcd API version the server speaks, reported where
// etcd reports its own version (clients gate features on it).
const APIVersion = "3.7.0"

// maintenanceServer is etcd's Maintenance service.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

func (m *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	s := m.s
	if err := s.fence(ctx); err != nil {
		return nil, err
	}
	st := s.node.Status()
	resp := &pb.StatusResponse{
		Header:           s.header(s.store.Rev()),
		Version:          APIVersion,
		StorageVersion:   APIVersion,
		Leader:           st.Lead,
		RaftIndex:        st.GetCommit(),
		RaftTerm:         st.GetTerm(),
		RaftAppliedIndex: s.node.Applied(),
		DbSizeQuota:      s.cfg.QuotaBackendBytes,
	}
	err := s.cfg.DB.View(func(tx *quiver.Tx) error {
		resp.DbSize = tx.Size()
		resp.DbSizeInUse = tx.Size() - int64(s.cfg.DB.Stats().FreeAlloc)
		return nil
	})
	if err != nil {
		return nil, toGRPC(err)
	}
	_, cs, _ := s.node.Storage().InitialState()
	for _, id := range cs.GetLearners() {
		if id == s.cfg.ID {
			resp.IsLearner = true
		}
	}
	if st.Lead == 0 {
		resp.Errors = append(resp.Errors, "etcdserver: no leader")
	}
	for _, a := range s.alarms.list(pb.AlarmType_NONE) {
		resp.Errors = append(resp.Errors, fmt.Sprintf("memberID:%d alarm:%v", a.MemberID, a.Alarm))
	}
	return resp, nil
}

func (m *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	s := m.s
	if err := s.fence(ctx); err != nil {
		return nil, err
	}
	rev := s.store.Rev()
	h, compactRev, err := s.store.HashKV(r.Revision)
	if err != nil {
		return nil, toGRPC(err)
	}
	hashRev := r.Revision
	if hashRev <= 0 {
		hashRev = rev
	}
	return &pb.HashKVResponse{Header: s.header(rev), Hash: h, CompactRevision: compactRev, HashRevision: hashRev}, nil
}

// Hash hashes the member's data: every bucket but the raft log's, whose
// contents differ between members by design.
func (m *maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	s := m.s
	if err := s.fence(ctx); err != nil {
		return nil, err
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var rev int64
	err := s.cfg.DB.View(func(tx *quiver.Tx) error {
		rev = s.store.Rev()
		return tx.ForEach(func(name []byte, b *quiver.Bucket) error {
			if string(name) == "raftadapter" {
				return nil
			}
			_, _ = h.Write(name)
			return b.ForEach(func(k, v []byte) error {
				_, _ = h.Write(k)
				_, _ = h.Write(v)
				return nil
			})
		})
	})
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashResponse{Header: s.header(rev), Hash: h.Sum32()}, nil
}

// Defragment compacts the member's file online (DB.Compact): reads and
// writes go on meanwhile.
func (m *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if _, err := m.s.cfg.DB.Compact(ctx, nil); err != nil {
		return nil, status.Errorf(codes.Internal, "etcdserver: defragment: %v", err)
	}
	return &pb.DefragmentResponse{Header: m.s.header(m.s.store.Rev())}, nil
}

// Snapshot streams a consistent copy of the member's database (a read
// transaction's Tx.WriteTo) followed by its sha256, as etcd does, so that
// etcdctl snapshot save verifies it.
func (m *maintenanceServer) Snapshot(_ *pb.SnapshotRequest, stream grpc.ServerStreamingServer[pb.SnapshotResponse]) error {
	s := m.s
	if err := s.fence(stream.Context()); err != nil {
		return err
	}
	tx, err := s.cfg.DB.Begin(false)
	if err != nil {
		return toGRPC(err)
	}
	defer tx.Rollback()
	total := tx.Size()
	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, err := tx.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	// Before the transaction ends (deferred above, so after this): stop
	// the writer and wait for it, whatever ended the stream.
	defer func() {
		pr.CloseWithError(errors.New("etcdserver: snapshot stream ended"))
		<-written
	}()
	h := sha256.New()
	buf := make([]byte, 32<<10)
	sent := int64(0)
	first := true
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			_, _ = h.Write(buf[:n])
			sent += int64(n)
			resp := &pb.SnapshotResponse{Header: s.header(s.store.Rev()), RemainingBytes: uint64(max(total-sent, 0)) + sha256.Size, Blob: append([]byte(nil), buf[:n]...)}
			if first {
				resp.Version, first = APIVersion, false
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return status.Errorf(codes.Internal, "etcdserver: snapshot: %v", err)
		}
	}
	return stream.Send(&pb.SnapshotResponse{Header: s.header(s.store.Rev()), Blob: h.Sum(nil)})
}

// Alarm lists the raised alarms (GET: linearizable), or
// raises or clears one through the log. Clearing NOSPACE lets writes in
// again; if the space is still short, the next write raises it again.
func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	s := m.s
	switch r.Action {
	case pb.AlarmRequest_GET:
		// After a ReadIndex, as etcd answers through its log: a member
		// that has not applied the last raise or clear must not answer.
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		err := s.node.ReadIndex(rctx)
		cancel()
		if err != nil {
			return nil, s.raftError(rctx, err)
		}
		return &pb.AlarmResponse{Header: s.header(s.store.Rev()), Alarms: s.alarms.list(r.Alarm)}, nil
	case pb.AlarmRequest_ACTIVATE, pb.AlarmRequest_DEACTIVATE:
		if _, ok := pb.AlarmType_name[int32(r.Alarm)]; !ok {
			return nil, status.Errorf(codes.InvalidArgument, "etcdserver: unknown alarm type %d", r.Alarm)
		}
		v, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: r})
		if err != nil {
			return nil, err
		}
		resp := v.(*pb.AlarmResponse)
		resp.Header = s.header(s.store.Rev())
		return resp, nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "etcdserver: unknown alarm action %d", r.Action)
}
