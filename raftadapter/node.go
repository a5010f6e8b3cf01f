package raftadapter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverdb/quiver"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Entry is a committed entry handed to the state machine: its place in the
// log and the data its proposer gave.
type Entry struct {
	Index, Term uint64
	Data        []byte // valid until Apply returns
}

// StateMachine is the replicated database. Any Go database that stores its
// state in the quiver file can be one.
type StateMachine interface {
	// Apply applies committed entries, in log order, inside tx: the write
	// transaction that also appends the log and records the applied index,
	// so that a restart applies each entry exactly once. It returns one
	// result per entry, handed to the entry's proposer on this node (or
	// nil). An error stops the node: the transaction rolls back, and the
	// entries are applied again after a restart.
	Apply(tx *quiver.Tx, ents []Entry) ([]any, error)
}

// Transport carries raft messages between the nodes of a cluster.
type Transport interface {
	// Send sends messages to their recipients (m.To), best effort: raft
	// copes with lost, reordered and duplicated messages, except that a
	// duplicated proposal forwarded by a follower (MsgProp) is appended,
	// and applied, twice; a transport must not duplicate those. Send must
	// not block for long: it is called from the node's loop. It is never
	// given a snapshot (MsgSnap).
	Send(msgs []*pb.Message)
	// SendSnapshot delivers m, a MsgSnap, with the database image read
	// from image, to m.To's Node.StepSnapshot, and returns once the
	// receiver has handled it or the transfer failed. It runs on its own
	// goroutine, one at a time for each peer; ctx ends when the node
	// stops. The image is a quiver file streamed from a read transaction:
	// it is never whole in memory, and should not be made so.
	SendSnapshot(ctx context.Context, m *pb.Message, image io.Reader) error
}

// ConfChanger is implemented by a state machine that keeps its own record
// of the membership (names, addresses): ConfChanged is called in the
// transaction that applies a configuration change raft made, with the
// context its proposer gave ProposeConfChange and the configuration after
// it. A change raft refused is not reported.
type ConfChanger interface {
	ConfChanged(tx *quiver.Tx, cc *pb.ConfChangeV2, context []byte, cs *pb.ConfState) error
}

// Restorer is implemented by a state machine that keeps state in memory
// beside the database (an index, counters): Restored is called after a
// snapshot from the leader replaced the database's contents, before any
// later entry is applied, so that it reloads that state from db.
type Restorer interface {
	Restored(db *quiver.DB) error
}

// DefaultMemoryBudget is the default Config.MemoryBudget.
const DefaultMemoryBudget = 64 << 20

// DefaultLogWindow is the default Config.LogWindow.
const DefaultLogWindow = 256 << 20

// maxHeld bounds the proposals a node holds while it has no leader.
const maxHeld = 4096

// trimBatch bounds the entries one Ready's transaction compacts away.
const trimBatch = 8192

// Config configures a Node.
type Config struct {
	// ID is this node's raft id (not 0).
	ID uint64
	// Peers are the ids of the members of a new cluster, this node
	// included. They are used only when the database holds no raft state
	// yet; a restarted node reads its configuration from the file.
	Peers []uint64
	// DB is the database that holds the raft log and the state machine's
	// data. The node does not close it.
	DB *quiver.DB
	// StateMachine applies committed entries.
	StateMachine StateMachine
	// Transport sends this node's messages.
	Transport Transport
	// TickInterval is raft's logical clock (default 10ms); elections take
	// ElectionTicks (default 10) ticks, heartbeats HeartbeatTicks (1).
	TickInterval                  time.Duration
	ElectionTicks, HeartbeatTicks int
	// MemoryBudget bounds the bytes of raft state the node keeps in
	// memory (default DefaultMemoryBudget): a quarter caches the newest
	// log entries, and raft's MaxSizePerMsg, MaxInflightBytes and
	// MaxUncommittedEntriesSize follow from it.
	MemoryBudget int
	// LogWindow is the catch-up window kept on disk, in bytes of stored
	// entries (default DefaultLogWindow): the log is compacted to the
	// newest entries that reach it (never past the applied index). A
	// follower further behind gets a snapshot of the database.
	LogWindow int64
	// WAL, when set, is the path of a write-ahead file for the raft
	// log, beside the database: each Ready's entries and HardState are
	// made durable there with one sequential write and fdatasync, and
	// the engine's commits, which store the same entries and apply the
	// committed ones, skip their own (a synced one comes every 16 MiB of
	// records). After a crash the node writes the file's records into the
	// log before it starts: a node that did not stop cleanly refuses to
	// start without its file. With the file, committed entries are
	// applied in a write transaction kept open across Readies (one engine
	// commit for up to ApplyBatch of them, instead of one each) and
	// proposers are told before it commits: a direct read of the database
	// after a result needs Fence (ReadIndex, LinearizableRead and
	// SerializableRead do it). Empty: every commit that appends entries
	// syncs the engine, and results follow their commit.
	WAL string
	// ApplyBatch, with WAL, is the longest an applied entry waits for
	// the engine commit that makes it readable (0: DefaultApplyBatch),
	// unless a reader asks for it sooner (Fence): the committed entries
	// of the Readies in that time share one commit. Longer saves engine
	// commits; shorter delays readers that do not fence less, and
	// watchers of the state (quiver serve's watch events come with the
	// commit). A duration shorter than a Ready's handling commits every
	// Ready.
	ApplyBatch time.Duration
	// WALOpenFile, if set, opens the write-ahead file instead of
	// quiver.OpenOSFile (whose Sync is fdatasync): quiver serve times the
	// file's syncs with it, tests record its writes.
	WALOpenFile func(path string, flag int, mode os.FileMode) (quiver.File, error)
	// walRotate, if set, replaces walRotate: tests start generations
	// often.
	walRotate int64
	// Join starts a node with an empty database as a member added to a
	// running cluster (after a configuration change that adds it): it
	// has no configuration of its own and waits for the leader, whose
	// snapshot brings it up to date. Peers must be empty.
	Join bool
	// Logger receives raft's log; nil discards it.
	Logger raft.Logger
}

// proposal is one Propose or ProposeConfChange call waiting for its
// entry to be applied.
type proposal struct {
	id   uint64
	data []byte
	cc   *pb.ConfChangeV2 // a membership change (its Context holds the header)
	done chan result
}

type result struct {
	v   any
	err error
}

// Node is one member of a replicated quiver cluster: it drives a
// raft.RawNode over Storage and applies committed entries to the state
// machine.
//
// The Ready contract it keeps (raft's synchronous storage mode): for each
// Ready, a snapshot is installed first (a durable switch of the file, see
// the package doc); then the entries, the HardState, the application of
// the committed entries and the applied index are written in one engine
// transaction, made durable by its one fdatasync; only then are the
// messages sent, the proposers told, and Advance called. So a
// message never promises a vote or an entry the disk does not hold, and a
// crash between two Readies replays nothing twice and skips nothing.
type Node struct {
	cfg     Config
	storage *Storage
	rn      *raft.RawNode

	propc    chan proposal
	readc    chan readRequest
	recvc    chan *pb.Message
	stopc    chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu      sync.Mutex
	waiters map[uint64]chan result
	nextID  atomic.Uint64
	err     error // why the loop stopped

	applied atomic.Uint64 // readable in the database
	told    atomic.Uint64 // the last entry whose result went out before its commit (Fence)
	status  atomic.Pointer[raft.BasicStatus]

	// Read requests: reads waits for raft's read index of each request
	// (by its id), then for the entries up to it to be applied (appliedWait).
	reads       map[uint64]chan uint64
	appliedWait []appliedWaiter
	// poke wakes the loop when a reader waits for the open batch.
	poke chan struct{}
	// batch is the open apply batch (on the loop), nil if none.
	batch *applyBatch

	// hard is the newest HardState raft gave, and hardDirty tells that it
	// is not stored yet (on the loop).
	hard      *pb.HardState
	hardDirty bool

	// held are proposals raft dropped (no leader, too much uncommitted),
	// proposed again at the next tick (on the loop).
	held []proposal

	// Log compaction, on the loop: the bytes appended since the log was
	// last trimmed, and whether the last trim stopped at its batch.
	sinceTrim int64
	trimMore  bool

	// wal is the write-ahead file (Config.WAL), or nil. pending are the
	// entries durable in it and staged in the storage, not yet in the
	// database.
	wal     *wal
	pending []*pb.Entry

	// Snapshots. Sending: one goroutine per peer (sending, on the loop)
	// streams a read transaction and reports on snapDone. Receiving:
	// StepSnapshot stages the image in a file and hands it to the loop
	// (snapc), which steps the message and installs the image when raft
	// accepts it.
	ctx       context.Context // ends when the node stops
	cancel    context.CancelFunc
	sending   map[uint64]bool
	snapDone  chan snapReport
	snapWG    sync.WaitGroup
	snapc     chan *stagedSnapshot
	staged    *stagedSnapshot // the image of the snapshot being stepped
	sent      atomic.Int64
	installed atomic.Int64
}

type snapReport struct {
	to  uint64
	err error
}

// readRequest asks raft for a read index; the index comes back on done.
type readRequest struct {
	id   uint64
	done chan uint64
}

type appliedWaiter struct {
	index uint64
	done  chan struct{}
}

// entryPrefix is the header of a proposed entry's data: the proposer's
// node id and its proposal id, 8 bytes each.
const entryPrefix = 16

// ErrStopped is returned by a stopped node.
var ErrStopped = errors.New("raftadapter: node stopped")

// StartNode opens the raft state in cfg.DB (bootstrapping a new cluster of
// cfg.Peers when there is none) and starts the node's loop.
func StartNode(cfg Config) (*Node, error) {
	if cfg.ID == 0 || cfg.DB == nil || cfg.StateMachine == nil || cfg.Transport == nil {
		return nil, errors.New("raftadapter: Config needs ID, DB, StateMachine and Transport")
	}
	if cfg.ApplyBatch <= 0 {
		cfg.ApplyBatch = DefaultApplyBatch
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 10 * time.Millisecond
	}
	if cfg.ElectionTicks <= 0 {
		cfg.ElectionTicks = 10
	}
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = 1
	}
	if cfg.MemoryBudget <= 0 {
		cfg.MemoryBudget = DefaultMemoryBudget
	}
	if cfg.LogWindow <= 0 {
		cfg.LogWindow = DefaultLogWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	if cfg.Join && len(cfg.Peers) > 0 {
		return nil, errors.New("raftadapter: a joining node takes its members from the leader: Peers must be empty")
	}
	removeStaged(cfg.DB.Path())
	budget := uint64(cfg.MemoryBudget)
	s, err := OpenStorage(cfg.DB, &StorageOptions{CacheBytes: int(budget / 4)})
	if err != nil {
		return nil, err
	}
	w, err := recoverWAL(cfg.DB, s, cfg.WAL, cfg.WALOpenFile)
	if err != nil {
		return nil, err
	}
	if w != nil && cfg.walRotate > 0 {
		w.rotate = cfg.walRotate
	}
	started := false
	defer func() {
		if !started && w != nil {
			w.close()
		}
	}()
	applied := s.state.applied
	if last, _ := s.LastIndex(); last == 0 && applied == 0 && !cfg.Join {
		if len(cfg.Peers) == 0 {
			return nil, errors.New("raftadapter: no raft state in the database and no Peers to start a cluster with (or Join)")
		}
		// A new cluster: the log starts after a snapshot at index 1 that
		// holds the first configuration, the same on every member (raft's
		// recommended bootstrap).
		if err := cfg.DB.Update(func(tx *quiver.Tx) error {
			w, err := s.Writer(tx)
			if err != nil {
				return err
			}
			return w.ApplySnapshot(&pb.SnapshotMetadata{Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &pb.ConfState{Voters: append([]uint64(nil), cfg.Peers...)}})
		}); err != nil {
			return nil, err
		}
		applied = 1
	}
	perMsg := min(budget/64, 1<<20)
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   s,
		Applied:                   applied,
		MaxSizePerMsg:             perMsg,
		MaxInflightMsgs:           256,
		MaxInflightBytes:          budget / 4,
		MaxUncommittedEntriesSize: budget / 4,
		MaxCommittedSizePerReady:  budget / 8,
		CheckQuorum:               true,
		PreVote:                   true,
		StepDownOnRemoval:         true,
		Logger:                    cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, storage: s, rn: rn, wal: w,
		propc: make(chan proposal, 256), readc: make(chan readRequest, 256), recvc: make(chan *pb.Message, 4096),
		stopc: make(chan struct{}), done: make(chan struct{}), poke: make(chan struct{}, 1),
		waiters: map[uint64]chan result{}, reads: map[uint64]chan uint64{},
		sending: map[uint64]bool{}, snapDone: make(chan snapReport), snapc: make(chan *stagedSnapshot),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.applied.Store(applied)
	// Proposal ids start from the clock, so that a restarted node does
	// not reuse ids still in the log; an entry carries its proposer's node
	// id beside the proposal id, so a proposer is never told of another
	// node's entry.
	n.nextID.Store(uint64(time.Now().UnixNano()))
	n.publishStatus()
	started = true
	go n.run()
	return n, nil
}

// Storage returns the node's raft storage.
func (n *Node) Storage() *Storage { return n.storage }

// Applied returns the index of the last entry applied on this node.
func (n *Node) Applied() uint64 { return n.applied.Load() }

// Status returns raft's basic status as of the node's last step.
func (n *Node) Status() raft.BasicStatus { return *n.status.Load() }

func (n *Node) publishStatus() {
	st := n.rn.BasicStatus()
	n.status.Store(&st)
}

// Step hands the node a message from a peer. It drops the message when
// the node is busy (raft recovers lost messages) and reports ErrStopped
// once the node has stopped.
func (n *Node) Step(m *pb.Message) error {
	select {
	case <-n.done:
		return ErrStopped
	default:
	}
	select {
	case n.recvc <- m:
	default:
	}
	return nil
}

// Propose proposes data and waits until its entry is applied on this node,
// returning the state machine's result for it. While the member knows no
// leader (an election), or, on the leader, while raft holds as many
// uncommitted bytes as the budget allows, the proposal waits. A follower
// forwards the proposal to the leader; if the leader drops it (its own
// limit, a lost message, a change of leader), the call fails when ctx
// ends: propose through the leader, or retry what is idempotent. On an error (the
// context ended, the node stopped) the proposal may or may not be applied
// later. With Config.WAL the result may come before the database shows
// it: see Fence.
func (n *Node) Propose(ctx context.Context, data []byte) (any, error) {
	id := n.nextID.Add(1)
	buf := make([]byte, entryPrefix+len(data))
	binary.BigEndian.PutUint64(buf, n.cfg.ID)
	binary.BigEndian.PutUint64(buf[8:], id)
	copy(buf[entryPrefix:], data)
	return n.wait(ctx, proposal{id: id, data: buf})
}

// ProposeConfChange proposes a membership change (add a voter or a
// learner, promote a learner, remove a member; several at once go through
// a joint configuration, which raft leaves by itself) and waits until it
// is applied on this node. The transport must already reach a new member.
// raft takes one change at a time: a change proposed while another is
// pending is dropped by raft, and this call then fails when ctx ends.
// cc.Context reaches a state machine that is a ConfChanger, with the
// change, on every member.
func (n *Node) ProposeConfChange(ctx context.Context, cc *pb.ConfChangeV2) error {
	id := n.nextID.Add(1)
	cc = proto.Clone(cc).(*pb.ConfChangeV2)
	// The proposal's header goes first, the caller's context after it.
	cc.Context = append(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, n.cfg.ID), id), cc.Context...)
	_, err := n.wait(ctx, proposal{id: id, cc: cc})
	return err
}

// wait hands p to the loop and waits for its result.
func (n *Node) wait(ctx context.Context, p proposal) (any, error) {
	id := p.id
	done := make(chan result, 1)
	p.done = done
	n.mu.Lock()
	n.waiters[id] = done
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiters, id)
		n.mu.Unlock()
	}()
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.done:
		return nil, n.stopErr()
	}
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.done:
		return nil, n.stopErr()
	}
}

func (n *Node) stopErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return fmt.Errorf("%w: %w", ErrStopped, n.err)
	}
	return ErrStopped
}

// ReadIndex returns once this node has applied every entry that was
// committed when it was called, as raft's leader confirmed with a quorum
// (raft's ReadIndex): a read transaction begun afterwards sees every write
// acknowledged before the call, on any member. It fails when the context
// ends first (no leader, a partition).
func (n *Node) ReadIndex(ctx context.Context) error {
	rq := readRequest{id: n.nextID.Add(1), done: make(chan uint64, 1)}
	// Registered here and removed here: raft never answers a request it
	// drops (no leader), and the loop must not bring one back.
	n.mu.Lock()
	n.reads[rq.id] = rq.done
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.reads, rq.id)
		n.mu.Unlock()
	}()
	select {
	case n.readc <- rq:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stopErr()
	}
	var index uint64
	select {
	case index = <-rq.done:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stopErr()
	}
	return n.waitApplied(ctx, index)
}

// waitApplied returns once the node has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	n.mu.Lock()
	if n.applied.Load() >= index {
		n.mu.Unlock()
		return nil
	}
	w := appliedWaiter{index: index, done: make(chan struct{})}
	n.appliedWait = append(n.appliedWait, w)
	n.mu.Unlock()
	select {
	case n.poke <- struct{}{}:
	default:
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stopErr()
	}
}

// LinearizableRead runs fn in a read transaction that sees every write
// acknowledged, by any member, before the call (ReadIndex first).
func (n *Node) LinearizableRead(ctx context.Context, fn func(*quiver.Tx) error) error {
	if err := n.ReadIndex(ctx); err != nil {
		return err
	}
	return n.cfg.DB.View(fn)
}

// SerializableRead runs fn in a read transaction of this member's state
// as it is: no round trip to the leader, but possibly behind the cluster
// (a partitioned or lagging member). It does see every result this
// member handed out (Fence).
func (n *Node) SerializableRead(fn func(*quiver.Tx) error) error {
	if err := n.Fence(context.Background()); err != nil {
		return err
	}
	return n.cfg.DB.View(fn)
}

// Fence returns once every entry whose result this node handed out (to
// Propose or ProposeConfChange) is readable in the database. With a
// write-ahead file the node applies entries in a write transaction it
// keeps open across Readies, and tells their proposers before that
// commits: a read of the database after a result must Fence first to be
// sure to see it (ReadIndex and LinearizableRead wait for more; Fence
// asks the node to commit at once, and costs nothing when nothing
// waits). It fails only if the context ends or the node stops first.
func (n *Node) Fence(ctx context.Context) error {
	told := n.told.Load()
	if n.applied.Load() >= told {
		return nil
	}
	return n.waitApplied(ctx, told)
}

// Stop stops the node's loop and waits for it. The database stays open.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() { close(n.stopc) })
	<-n.done
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func (n *Node) run() {
	defer close(n.done)
	if n.wal != nil {
		defer n.wal.close()
	}
	defer n.snapWG.Wait()
	defer n.cancel()
	defer func() {
		if n.batch != nil { // the loop stopped on an error
			_ = n.batch.tx.Rollback()
			n.batch = nil
		}
	}()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	batchTimer := time.NewTimer(time.Hour)
	defer batchTimer.Stop()
	for {
		var batchDue <-chan time.Time
		if n.batch != nil {
			batchTimer.Reset(time.Until(n.batch.start.Add(n.cfg.ApplyBatch)))
			batchDue = batchTimer.C
		}
		select {
		case <-ticker.C:
			n.rn.Tick()
			n.retryHeld()
		case <-batchDue:
		case <-n.poke:
		case p := <-n.propc:
			n.propose(p)
		case rq := <-n.readc:
			n.readIndex(rq)
		case m := <-n.recvc:
			n.step(m)
		case st := <-n.snapc:
			n.staged = st
			n.step(st.m)
		case r := <-n.snapDone:
			delete(n.sending, r.to)
			status := raft.SnapshotFinish
			if r.err != nil {
				status = raft.SnapshotFailure
				n.cfg.Logger.Warningf("raftadapter: node %d: snapshot to %d: %v", n.cfg.ID, r.to, r.err)
			}
			n.rn.ReportSnapshot(r.to, status)
		case <-n.stopc:
			n.flush()
			return
		}
		// Take what else is waiting before the next Ready, so that
		// concurrent proposals and the messages that arrived share one
		// engine commit (one fdatasync) instead of one each.
		n.drain()
		var err error
		for err == nil && n.rn.HasReady() {
			err = n.handleReady(n.rn.Ready())
		}
		if err == nil && n.batch != nil {
			n.mu.Lock()
			waiting := len(n.appliedWait) > 0
			n.mu.Unlock()
			if waiting || time.Since(n.batch.start) >= n.cfg.ApplyBatch {
				err = n.endBatch()
			}
		}
		if n.staged != nil {
			n.staged.finish(err)
			n.staged = nil
		}
		if err != nil {
			n.mu.Lock()
			n.err = err
			n.mu.Unlock()
			n.cfg.Logger.Errorf("raftadapter: node %d stops: %v", n.cfg.ID, err)
			return
		}
		n.publishStatus()
	}
}

// drain steps the proposals, read requests and messages already queued,
// at most maxDrain of them.
func (n *Node) drain() {
	const maxDrain = 1024
	for i := 0; i < maxDrain; i++ {
		select {
		case p := <-n.propc:
			n.propose(p)
		case rq := <-n.readc:
			n.readIndex(rq)
		case m := <-n.recvc:
			n.step(m)
		default:
			return
		}
	}
}

// propose, readIndex and step hand raft a proposal, a read request and a
// peer's message, on the node's loop.
func (n *Node) propose(p proposal) {
	var err error
	if p.cc != nil {
		err = n.rn.ProposeConfChange(p.cc)
	} else {
		err = n.rn.Propose(p.data)
	}
	if errors.Is(err, raft.ErrProposalDropped) && len(n.held) < maxHeld {
		// No leader yet (an election), or the leader's uncommitted
		// entries at their limit (MemoryBudget/4): hold it and try again
		// at the next tick, until its proposer gives up.
		n.held = append(n.held, p)
		return
	}
	if err != nil {
		p.done <- result{err: fmt.Errorf("raftadapter: proposal refused: %w", err)}
	}
}

// retryHeld proposes again the proposals raft dropped, once there is a
// leader, and forgets those whose proposers gave up.
func (n *Node) retryHeld() {
	if len(n.held) == 0 {
		return
	}
	held := n.held
	n.held = nil
	leader := n.rn.BasicStatus().Lead != raft.None
	for _, p := range held {
		n.mu.Lock()
		_, waiting := n.waiters[p.id]
		n.mu.Unlock()
		switch {
		case !waiting:
		case leader:
			n.propose(p)
		default:
			n.held = append(n.held, p)
		}
	}
}

func (n *Node) readIndex(rq readRequest) {
	n.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, rq.id))
}

func (n *Node) step(m *pb.Message) {
	_ = n.rn.Step(m) // a message from an unknown or removed peer is dropped
}

// handleReady persists and applies one Ready in one engine commit, then
// sends its messages and advances raft.
func (n *Node) handleReady(rd raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.endBatch(); err != nil {
			return err
		}
		if err := n.install(rd); err != nil {
			return err
		}
	}
	var told []ack // this node's proposals among the applied entries
	last := n.applied.Load()
	if n.batch != nil {
		last = n.batch.last
	}
	for _, e := range rd.Entries {
		n.sinceTrim += int64(len(e.GetData()))
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		n.hard, n.hardDirty = rd.HardState, true
	}
	// A Ready of messages alone, or of a new commit index alone, needs no
	// engine commit (nor its fdatasync): raft finds the commit index again
	// after a restart. The newest HardState goes with the next commit, so
	// that the stored commit index is never below the applied one.
	voted := n.hardDirty && n.termOrVoteChanged()
	mustSync := len(rd.Entries) > 0 || voted
	if !mustSync && len(rd.CommittedEntries) == 0 {
		n.finishReady(rd, last, nil)
		return nil
	}
	if !voted && n.rn.BasicStatus().RaftState == raft.StateLeader {
		// A leader sends before it persists: its followers write the
		// entries while it does (the raft thesis, 10.2.1; raft's README,
		// step 2). A commit index it sends covers only entries of earlier
		// Readies, persisted already.
		n.send(rd.Messages)
		rd.Messages = nil
	}
	if n.batch != nil && len(rd.Entries) > 0 && rd.Entries[0].GetIndex() <= n.batch.w.state.last {
		// Entries that replace some the open batch appended: the batch
		// commits first, and they go in a commit of their own.
		if err := n.endBatch(); err != nil {
			return err
		}
	}
	rotate := false
	if n.wal != nil && mustSync {
		// Durable here: the engine's commit below may skip its sync, and
		// the messages may go now, a follower's acknowledgement before
		// it applies.
		var hs *pb.HardState
		if n.hardDirty {
			hs = n.hard
		}
		if err := n.wal.append(hs, rd.Entries); err != nil {
			return err
		}
		n.send(rd.Messages)
		rd.Messages = nil
		rotate = n.wal.full()
		// Entries alone wait for the next commit, which applies them
		// (one engine commit a proposal, not two): raft reads them from
		// the storage's cache meanwhile.
		if !rotate && len(rd.CommittedEntries) == 0 && entriesSize(n.pending)+entriesSize(rd.Entries) <= n.storage.budget && n.storage.stage(rd.Entries, hs) {
			n.pending = appendEntries(n.pending, rd.Entries)
			n.finishReady(rd, last, nil)
			return nil
		}
	}
	if n.wal != nil && !rotate && len(rd.CommittedEntries) > 0 && batchable(rd.CommittedEntries) {
		done, err := n.applyBatched(rd, last)
		if err != nil || done {
			return err
		}
	}
	if err := n.endBatch(); err != nil {
		return err
	}
	var gen uint64
	err := n.cfg.DB.Update(func(tx *quiver.Tx) error {
		if n.wal != nil && !rotate {
			tx.DeferSync() // the write-ahead file holds what raft needs durable
		} else if !mustSync {
			// Applying alone: raft needs nothing of it durable (its
			// entries are), and a crash that loses it applies them again
			// from the durable applied index. Its sync comes with the
			// next commit (raft's MustSync, the engine's DeferSync).
			tx.DeferSync()
		}
		w, err := n.storage.Writer(tx)
		if err != nil {
			return err
		}
		if rotate {
			// Synced, with everything the file's records hold: the next
			// generation starts at the file's start.
			gen = newGen(n.wal.gen)
			if err := w.b.Put(walGenKey, binary.BigEndian.AppendUint64(nil, gen)); err != nil {
				return err
			}
		}
		if err := w.Append(appendEntries(n.pending, rd.Entries)); err != nil {
			return err
		}
		if n.hardDirty {
			if err := w.SetHardState(n.hard); err != nil {
				return err
			}
		}
		if len(rd.CommittedEntries) == 0 {
			return nil
		}
		if last, told, err = n.applyCommitted(tx, w, rd.CommittedEntries, last); err != nil {
			return err
		}
		if err := w.SetApplied(last); err != nil {
			return err
		}
		// Compact the log to its window now and then: the walk that
		// measures the window reads it whole.
		if n.trimMore || n.sinceTrim >= n.cfg.LogWindow/8 {
			n.sinceTrim = 0
			n.trimMore, err = w.Trim(n.cfg.LogWindow, last, trimBatch)
		}
		return err
	})
	if err != nil {
		return err
	}
	if rotate {
		if err := n.wal.reset(gen); err != nil {
			return err
		}
	}
	n.pending = nil
	n.hardDirty = false
	n.finishReady(rd, last, told)
	return nil
}

// applyCommitted applies entries, which follow last, in tx: it returns the
// new applied index and this node's proposers' results.
func (n *Node) applyCommitted(tx *quiver.Tx, w *Writer, entries []*pb.Entry, last uint64) (uint64, []ack, error) {
	var told []ack
	var batch []Entry
	var ids []uint64 // the proposal id of each entry in batch (0: another node's)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := n.cfg.StateMachine.Apply(tx, batch)
		if err != nil {
			return err
		}
		for i := range batch {
			var r any
			if i < len(res) {
				r = res[i]
			}
			if ids[i] != 0 {
				told = append(told, ack{id: ids[i], v: r})
			}
		}
		batch, ids = nil, nil
		return nil
	}
	for _, e := range entries {
		switch e.GetType() {
		case pb.EntryType_EntryNormal:
			if len(e.GetData()) == 0 {
				last = e.GetIndex() // raft's empty entry of a new term: applied too
				continue
			}
			if len(e.GetData()) < entryPrefix {
				return last, told, corruptf("log entry %d: %d bytes, shorter than the proposal header", e.GetIndex(), len(e.GetData()))
			}
			ids = append(ids, n.proposalID(e.GetData()))
			batch = append(batch, Entry{Index: e.GetIndex(), Term: e.GetTerm(), Data: e.GetData()[entryPrefix:]})
		case pb.EntryType_EntryConfChange, pb.EntryType_EntryConfChangeV2:
			if err := flush(); err != nil {
				return last, told, err
			}
			cc, err := decodeConfChange(e)
			if err != nil {
				return last, told, err
			}
			// A change raft cannot make is skipped (raft would panic),
			// the same way on every member: it depends only on the log.
			cerr := checkConfChange(w.state.conf, cc)
			if cerr != nil {
				n.cfg.Logger.Warningf("node %d: entry %d: %v", n.cfg.ID, e.GetIndex(), cerr)
			} else {
				cs := n.rn.ApplyConfChange(cc)
				if err := w.SetConfState(cs); err != nil {
					return last, told, err
				}
				if cg, ok := n.cfg.StateMachine.(ConfChanger); ok {
					v2 := cc.AsV2()
					var userCtx []byte
					if len(v2.GetContext()) >= entryPrefix {
						userCtx = v2.GetContext()[entryPrefix:]
					}
					if err := cg.ConfChanged(tx, v2, userCtx, cs); err != nil {
						return last, told, err
					}
				}
			}
			if v2, ok := cc.(*pb.ConfChangeV2); ok {
				if id := n.proposalID(v2.GetContext()); id != 0 {
					told = append(told, ack{id: id, err: cerr})
				}
			}
		}
		last = e.GetIndex()
	}
	if err := flush(); err != nil {
		return last, told, err
	}
	return last, told, nil
}

// finishReady does what follows a Ready's commit (or a Ready that needed
// none, or one applied in the open batch): the applied index is published
// (or, with a batch open, left for its commit to publish), the messages
// sent, the readers and proposers told, raft advanced.
func (n *Node) finishReady(rd raft.Ready, last uint64, told []ack) {
	if n.batch == nil {
		n.publishApplied(last)
	}
	n.send(rd.Messages)
	n.mu.Lock()
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		id := binary.BigEndian.Uint64(rs.RequestCtx)
		if ch, ok := n.reads[id]; ok {
			delete(n.reads, id)
			ch <- rs.Index
		}
	}
	n.mu.Unlock()
	n.tell(told)
	n.rn.Advance(rd)
}

// publishApplied makes last the applied index readers see, and releases
// the readers waiting for it.
func (n *Node) publishApplied(last uint64) {
	n.mu.Lock()
	n.applied.Store(last)
	keep := n.appliedWait[:0]
	for _, w := range n.appliedWait {
		if w.index <= last {
			close(w.done)
		} else {
			keep = append(keep, w)
		}
	}
	n.appliedWait = keep
	n.mu.Unlock()
}

// tell hands this node's proposers their results; the data of each entry
// holds its proposal id first.
func (n *Node) tell(told []ack) {
	if len(told) == 0 {
		return
	}
	n.mu.Lock()
	for _, a := range told {
		if ch, ok := n.waiters[a.id]; ok {
			delete(n.waiters, a.id) // told once, so the 1-slot send never blocks
			ch <- result{v: a.v, err: a.err}
		}
	}
	n.mu.Unlock()
}

// applyBatch is the write transaction the loop applies committed entries
// into across Readies (with a write-ahead file): its state becomes
// readable when it commits.
type applyBatch struct {
	tx    *quiver.Tx
	w     *Writer
	start time.Time
	last  uint64        // the applied index in tx
	hard  *pb.HardState // the newest HardState that goes with what tx holds
}

// batchable reports whether entries may be applied in the open batch:
// configuration changes go in a commit of their own.
func batchable(entries []*pb.Entry) bool {
	for _, e := range entries {
		if e.GetType() != pb.EntryType_EntryNormal {
			return false
		}
	}
	return true
}

// applyBatched applies rd's committed entries in the open batch (opening
// one), stages rd's entries, and finishes rd; the proposers are told at
// once. It returns false (having committed the batch) when rd cannot go
// in a batch.
func (n *Node) applyBatched(rd raft.Ready, last uint64) (bool, error) {
	var hs *pb.HardState
	if n.hardDirty {
		hs = n.hard
	}
	if len(rd.Entries) > 0 {
		if entriesSize(n.pending)+entriesSize(rd.Entries) > n.storage.budget || !n.storage.stage(rd.Entries, hs) {
			return false, n.endBatch()
		}
		n.pending = appendEntries(n.pending, rd.Entries)
	} else if hs != nil {
		n.storage.stage(nil, hs) // the vote raft reads back (termOrVoteChanged)
	}
	if n.batch == nil {
		tx, err := n.cfg.DB.Begin(true)
		if err != nil {
			return false, err
		}
		tx.DeferSync()
		w, err := n.storage.Writer(tx)
		if err != nil {
			_ = tx.Rollback()
			return false, err
		}
		n.batch = &applyBatch{tx: tx, w: w, start: time.Now(), last: last}
	}
	b := n.batch
	if err := b.w.Append(n.pending); err != nil {
		return false, err
	}
	n.pending = nil
	if n.hardDirty {
		b.hard = n.hard
	}
	last, told, err := n.applyCommitted(b.tx, b.w, rd.CommittedEntries, last)
	if err != nil {
		return false, err
	}
	if err := b.w.SetApplied(last); err != nil {
		return false, err
	}
	b.last = last
	n.told.Store(last) // before they hear it: a Fence after their result waits for it
	n.finishReady(rd, last, told)
	return true, nil
}

// endBatch commits the open batch, if any, with what was staged since, and
// publishes its applied index. The HardState it stores is the one of its
// last apply, not a newer one: a Ready that replaces entries ends the batch
// before its own record is written, and its HardState (a commit index over
// the new entries) must not reach the database over the old ones; it
// stays dirty, for that record and the next commit.
func (n *Node) endBatch() error {
	b := n.batch
	if b == nil {
		return nil
	}
	n.batch = nil
	err := b.w.Append(n.pending)
	if err == nil && b.hard != nil {
		err = b.w.SetHardState(b.hard)
	}
	if err == nil && (n.trimMore || n.sinceTrim >= n.cfg.LogWindow/8) {
		n.sinceTrim = 0
		n.trimMore, err = b.w.Trim(n.cfg.LogWindow, b.last, trimBatch)
	}
	if err != nil {
		_ = b.tx.Rollback()
		return err
	}
	if err := b.tx.Commit(); err != nil {
		return err
	}
	n.pending = nil
	if n.hard == b.hard {
		n.hardDirty = false
	} else if n.hardDirty {
		n.storage.stage(nil, n.hard) // raft's reads keep the newest, as before the commit
	}
	n.publishApplied(b.last)
	return nil
}

// DefaultApplyBatch is Config.ApplyBatch's default. Measured with
// bench/serve against etcd (whose backend commits every 100 ms but serves
// reads and watchers from its buffer): 1 ms lost the one-client put gain
// on one member (0.95× etcd), 2 ms on three (0.95×); 5 ms kept both
// (1.00–1.11× over five runs), and delays a watch event after its put's
// answer by 9–12 ms p50 where etcd's take 3–7.
const DefaultApplyBatch = 5 * time.Millisecond

// flush writes the staged entries and the newest HardState to the
// database, synced, as the node stops, and forgets the write-ahead
// generation: the file holds nothing the database lacks, and the next
// start may go with or without it.
func (n *Node) flush() {
	if err := n.endBatch(); err != nil {
		n.cfg.Logger.Errorf("raftadapter: node %d: committing the applied entries as it stops: %v", n.cfg.ID, err)
	}
	if n.wal == nil {
		return
	}
	err := n.cfg.DB.Update(func(tx *quiver.Tx) error {
		w, err := n.storage.Writer(tx)
		if err != nil {
			return err
		}
		if err := w.Append(n.pending); err != nil {
			return err
		}
		if n.hardDirty {
			if err := w.SetHardState(n.hard); err != nil {
				return err
			}
		}
		return w.b.Delete(walGenKey)
	})
	if err != nil {
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		n.cfg.Logger.Errorf("raftadapter: node %d: writing its staged entries as it stops: %v", n.cfg.ID, err)
		return
	}
	n.pending, n.hardDirty = nil, false
}

// appendEntries is pending followed by ents as raft appends them: ents
// replace the entries of pending from their first index on.
func appendEntries(pending, ents []*pb.Entry) []*pb.Entry {
	if len(ents) == 0 {
		return pending
	}
	if len(pending) == 0 {
		return ents
	}
	keep := 0
	if from, first := ents[0].GetIndex(), pending[0].GetIndex(); from > first {
		keep = int(min(from-first, uint64(len(pending))))
	}
	return append(pending[:keep:keep], ents...)
}

func entriesSize(ents []*pb.Entry) int {
	n := 0
	for _, e := range ents {
		n += proto.Size(e)
	}
	return n
}

// termOrVoteChanged reports whether the HardState to write changes the
// term or the vote stored: those must be durable before any message.
func (n *Node) termOrVoteChanged() bool {
	stored, _, _ := n.storage.InitialState()
	return stored == nil || stored.GetTerm() != n.hard.GetTerm() || stored.GetVote() != n.hard.GetVote()
}

// ack is the result of one of this node's proposals.
type ack struct {
	id  uint64
	v   any
	err error
}

// proposalID returns the proposal id in header h (an entry's data, a
// configuration change's context) if this node proposed it, else 0.
func (n *Node) proposalID(h []byte) uint64 {
	if len(h) < entryPrefix || binary.BigEndian.Uint64(h) != n.cfg.ID {
		return 0
	}
	return binary.BigEndian.Uint64(h[8:])
}

func decodeConfChange(e *pb.Entry) (pb.ConfChangeI, error) {
	if e.GetType() == pb.EntryType_EntryConfChange {
		cc := &pb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil {
			return nil, corruptf("log entry %d: a configuration change that does not decode: %v", e.GetIndex(), err)
		}
		return cc, nil
	}
	cc := &pb.ConfChangeV2{}
	if err := proto.Unmarshal(e.GetData(), cc); err != nil {
		return nil, corruptf("log entry %d: a configuration change that does not decode: %v", e.GetIndex(), err)
	}
	return cc, nil
}

// discardLogger is the raft.Logger of nil Config.Logger: it drops all.
func discardLogger() raft.Logger { return &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)} }
