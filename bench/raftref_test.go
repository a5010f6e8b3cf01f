package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/raftadapter"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// refNode is the reference the raft benchmarks measure raftadapter
// against: the way raftexample (etcd's example of raft) keeps its state.
// The log lives in raft's MemoryStorage and in an append-only file (each
// Ready's HardState and entries appended, one fdatasync when raft says it
// must); committed entries go to a quiver database committed without a
// sync, since the file makes them durable (a restart would replay it).
// It has no compaction and no snapshots: the log only grows, in memory
// too. Same raft settings as raftadapter.Node's defaults.
type refNode struct {
	id    uint64
	rn    *raft.RawNode
	ms    *raft.MemoryStorage
	wal   *os.File
	syncs atomic.Int64
	db    *quiver.DB
	tr    raftadapter.Transport

	propc chan []byte
	recvc chan *pb.Message
	stopc chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	waiters map[uint64]chan error
	nextID  atomic.Uint64
	lead    atomic.Uint64
}

var _ raftadapter.Receiver = (*refNode)(nil)

func startRefNode(id uint64, peers []uint64, walPath, dbPath string, tr raftadapter.Transport) (*refNode, error) {
	wal, err := os.OpenFile(walPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	db, err := quiver.Open(dbPath, 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		wal.Close()
		return nil, err
	}
	ms := raft.NewMemoryStorage()
	if err := ms.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &pb.ConfState{Voters: peers}}}); err != nil {
		return nil, err
	}
	const budget = raftadapter.DefaultMemoryBudget
	rn, err := raft.NewRawNode(&raft.Config{
		ID: id, ElectionTick: 10, HeartbeatTick: 1, Storage: ms, Applied: 1,
		MaxSizePerMsg: min(budget/64, 1<<20), MaxInflightMsgs: 256, MaxInflightBytes: budget / 4,
		MaxUncommittedEntriesSize: budget / 4, MaxCommittedSizePerReady: budget / 8,
		CheckQuorum: true, PreVote: true, Logger: discardRaftLogger{},
	})
	if err != nil {
		return nil, err
	}
	n := &refNode{id: id, rn: rn, ms: ms, wal: wal, db: db, tr: tr,
		propc: make(chan []byte, 256), recvc: make(chan *pb.Message, 4096),
		stopc: make(chan struct{}), done: make(chan struct{}), waiters: map[uint64]chan error{}}
	n.nextID.Store(uint64(time.Now().UnixNano()))
	go n.run()
	return n, nil
}

func (n *refNode) Step(m *pb.Message) error {
	select {
	case n.recvc <- m:
	default:
	}
	return nil
}

func (n *refNode) StepSnapshot(context.Context, *pb.Message, io.Reader) error {
	return errors.New("the reference node takes no snapshots")
}

// Propose proposes key=value and waits until it is applied here.
func (n *refNode) Propose(ctx context.Context, data []byte) error {
	id := n.nextID.Add(1)
	buf := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16+len(data)), n.id), id)
	buf = append(buf, data...)
	done := make(chan error, 1)
	n.mu.Lock()
	n.waiters[id] = done
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiters, id)
		n.mu.Unlock()
	}()
	for {
		select {
		case n.propc <- buf:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-done:
			if errors.Is(err, raft.ErrProposalDropped) {
				time.Sleep(time.Millisecond) // the uncommitted limit: again
				continue
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (n *refNode) Stop() {
	close(n.stopc)
	<-n.done
	n.db.Close()
	n.wal.Close()
}

func (n *refNode) run() {
	defer close(n.done)
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			n.rn.Tick()
		case p := <-n.propc:
			n.propose(p)
		case m := <-n.recvc:
			_ = n.rn.Step(m)
		case <-n.stopc:
			return
		}
		for more := true; more; {
			select {
			case p := <-n.propc:
				n.propose(p)
			case m := <-n.recvc:
				_ = n.rn.Step(m)
			default:
				more = false
			}
		}
		for n.rn.HasReady() {
			if err := n.ready(n.rn.Ready()); err != nil {
				panic(err) // a benchmark's disk failed
			}
		}
		n.lead.Store(n.rn.BasicStatus().Lead)
	}
}

func (n *refNode) propose(p []byte) {
	if err := n.rn.Propose(p); err != nil {
		n.tell(p, err)
	}
}

func (n *refNode) tell(data []byte, err error) {
	if len(data) < 16 || binary.BigEndian.Uint64(data) != n.id {
		return
	}
	n.mu.Lock()
	if ch, ok := n.waiters[binary.BigEndian.Uint64(data[8:])]; ok {
		select {
		case ch <- err:
		default:
		}
	}
	n.mu.Unlock()
}

func (n *refNode) ready(rd raft.Ready) error {
	// The log: appended to the file, synced when raft says so, then to
	// memory.
	var rec []byte
	if !raft.IsEmptyHardState(rd.HardState) {
		b, _ := proto.Marshal(rd.HardState)
		rec = binary.BigEndian.AppendUint32(rec, uint32(len(b)))
		rec = append(rec, b...)
	}
	for _, e := range rd.Entries {
		b, _ := proto.Marshal(e)
		rec = binary.BigEndian.AppendUint32(rec, uint32(len(b)))
		rec = append(rec, b...)
	}
	if len(rec) > 0 {
		if _, err := n.wal.Write(rec); err != nil {
			return err
		}
	}
	if rd.MustSync {
		if err := unix.Fdatasync(int(n.wal.Fd())); err != nil {
			return err
		}
		n.syncs.Add(1)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		_ = n.ms.SetHardState(rd.HardState)
	}
	if err := n.ms.Append(rd.Entries); err != nil {
		return err
	}
	n.tr.Send(rd.Messages)
	// The state machine: one unsynced commit a Ready.
	var applied [][]byte
	if len(rd.CommittedEntries) > 0 {
		err := n.db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("kv"))
			if err != nil {
				return err
			}
			for _, e := range rd.CommittedEntries {
				if e.GetType() != pb.EntryType_EntryNormal || len(e.GetData()) < 16 {
					continue
				}
				if err := putKV(b, e.GetData()[16:]); err != nil {
					return err
				}
				applied = append(applied, e.GetData())
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, d := range applied {
		n.tell(d, nil)
	}
	n.rn.Advance(rd)
	return nil
}

// discardRaftLogger drops raft's log.
type discardRaftLogger struct{}

func (discardRaftLogger) Debug(...any)            {}
func (discardRaftLogger) Debugf(string, ...any)   {}
func (discardRaftLogger) Error(...any)            {}
func (discardRaftLogger) Errorf(string, ...any)   {}
func (discardRaftLogger) Info(...any)             {}
func (discardRaftLogger) Infof(string, ...any)    {}
func (discardRaftLogger) Warning(...any)          {}
func (discardRaftLogger) Warningf(string, ...any) {}
func (discardRaftLogger) Fatal(v ...any)          { panic(v) }
func (discardRaftLogger) Fatalf(f string, v ...any) {
	panic(f)
}
func (discardRaftLogger) Panic(v ...any)            { panic(v) }
func (discardRaftLogger) Panicf(f string, v ...any) { panic(f) }
