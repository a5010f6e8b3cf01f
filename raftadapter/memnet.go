package raftadapter

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Network is an in-process transport between the nodes of one process,
// for tests (of this package and of its users): it can partition the
// nodes, and drop, duplicate, delay and so reorder their messages, with
// its randomness drawn from a seed.
type Network struct {
	mu       sync.Mutex
	nodes    map[uint64]*Node
	rng      *rand.Rand
	group    map[uint64]int // partition group of each node; nodes in different groups do not hear each other
	drop     float64        // probability that a message is lost
	dup      float64        // probability that a message is delivered twice
	maxDelay time.Duration  // messages are delayed by up to this (reordering them)
	sent     int
	ask      map[uint64]AskHandler
}

// NewNetwork returns a network with no faults.
func NewNetwork(seed uint64) *Network {
	return &Network{nodes: map[uint64]*Node{}, rng: rand.New(rand.NewPCG(seed, seed+1)), group: map[uint64]int{}}
}

// Endpoint returns the Transport of node id.
func (nw *Network) Endpoint(id uint64) Transport { return endpoint{nw: nw, from: id} }

// Attach connects node n as id: messages to id reach it.
func (nw *Network) Attach(id uint64, n *Node) {
	nw.mu.Lock()
	nw.nodes[id] = n
	nw.mu.Unlock()
}

// Detach disconnects node id (a crashed or stopped node).
func (nw *Network) Detach(id uint64) {
	nw.mu.Lock()
	delete(nw.nodes, id)
	nw.mu.Unlock()
}

// Partition splits the nodes into groups that do not hear each other;
// nodes in no group form one more group together.
func (nw *Network) Partition(groups ...[]uint64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.group = map[uint64]int{}
	for g, ids := range groups {
		for _, id := range ids {
			nw.group[id] = g + 1
		}
	}
}

// Heal ends every partition.
func (nw *Network) Heal() { nw.Partition() }

// SetFaults sets the probability that a message is dropped or duplicated
// and the largest delay of a message.
func (nw *Network) SetFaults(drop, dup float64, maxDelay time.Duration) {
	nw.mu.Lock()
	nw.drop, nw.dup, nw.maxDelay = drop, dup, maxDelay
	nw.mu.Unlock()
}

// Sent returns the number of messages handed to the network.
func (nw *Network) Sent() int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.sent
}

type endpoint struct {
	nw   *Network
	from uint64
}

func (e endpoint) Send(msgs []*pb.Message) {
	nw := e.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for _, m := range msgs {
		nw.sent++
		to := m.GetTo()
		if nw.group[e.from] != nw.group[to] || nw.rng.Float64() < nw.drop {
			continue
		}
		copies := 1
		// A proposal is never duplicated: raft would append it twice (see
		// Transport).
		if nw.rng.Float64() < nw.dup && m.GetType() != pb.MessageType_MsgProp {
			copies = 2
		}
		for c := 0; c < copies; c++ {
			// Each delivery gets its own copy: the receiver's raft may
			// keep or change what it is given.
			msg := proto.Clone(m).(*pb.Message)
			var d time.Duration
			if nw.maxDelay > 0 {
				d = time.Duration(nw.rng.Int64N(int64(nw.maxDelay)))
			}
			if d == 0 {
				if n := nw.nodes[to]; n != nil {
					_ = n.Step(msg)
				}
				continue
			}
			time.AfterFunc(d, func() { nw.deliver(e.from, to, msg) })
		}
	}
}

// SendSnapshot implements Transport: the image goes straight into the
// receiver's StepSnapshot, unless a partition separates the nodes or the
// receiver is detached. A snapshot is dropped with the probability of a
// message, but never duplicated or delayed.
func (e endpoint) SendSnapshot(ctx context.Context, m *pb.Message, image io.Reader) error {
	nw := e.nw
	nw.mu.Lock()
	nw.sent++
	to := m.GetTo()
	n := nw.nodes[to]
	cut := nw.group[e.from] != nw.group[to]
	lost := nw.rng.Float64() < nw.drop
	nw.mu.Unlock()
	switch {
	case n == nil:
		return fmt.Errorf("raftadapter: node %d is not on the network", to)
	case cut:
		return fmt.Errorf("raftadapter: node %d is partitioned from %d", to, e.from)
	case lost:
		return fmt.Errorf("raftadapter: the snapshot to %d was dropped", to)
	}
	return n.StepSnapshot(ctx, proto.Clone(m).(*pb.Message), image)
}

// deliver hands a delayed message over, unless a partition came between.
func (nw *Network) deliver(from, to uint64, m *pb.Message) {
	nw.mu.Lock()
	n := nw.nodes[to]
	cut := nw.group[from] != nw.group[to]
	nw.mu.Unlock()
	if n != nil && !cut {
		_ = n.Step(m)
	}
}
