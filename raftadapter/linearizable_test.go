package raftadapter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
	pb "go.etcd.io/raft/v3/raftpb"
)

// linMachine is the state machine of the linearizability tests: gets, puts
// and compare-and-swaps on keys of bucket lin, all through the log. An
// entry is "g|key", "p|key|value" or "c|key|old|new"; the result is the
// value read ("" for a missing key), "ok", or "ok"/"fail" for a swap.
type linMachine struct{}

func (linMachine) Apply(tx *quiver.Tx, ents []Entry) ([]any, error) {
	b, err := tx.CreateBucketIfNotExists([]byte("lin"))
	if err != nil {
		return nil, err
	}
	res := make([]any, len(ents))
	for i, e := range ents {
		f := strings.Split(string(e.Data), "|")
		switch {
		case f[0] == "g" && len(f) == 2:
			res[i] = string(b.Get([]byte(f[1])))
		case f[0] == "p" && len(f) == 3:
			if err := b.Put([]byte(f[1]), []byte(f[2])); err != nil {
				return nil, err
			}
			res[i] = "ok"
		case f[0] == "c" && len(f) == 4:
			if string(b.Get([]byte(f[1]))) != f[2] {
				res[i] = "fail"
				continue
			}
			if err := b.Put([]byte(f[1]), []byte(f[3])); err != nil {
				return nil, err
			}
			res[i] = "ok"
		default:
			return nil, fmt.Errorf("linMachine: entry %d: bad operation %q", e.Index, e.Data)
		}
	}
	return res, nil
}

// linInput and linOutput are an operation of the history: output unknown
// means the call failed or timed out, so it may or may not have applied.
type linInput struct{ op, key, a, b string }
type linOutput struct {
	value   string
	unknown bool
}

// linModel is a register per key; histories are checked key by key.
var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(linInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(linInput), output.(linOutput)
		switch in.op {
		case "g":
			return out.unknown || out.value == s, s
		case "p":
			return true, in.a
		default: // c
			if out.unknown {
				if s == in.a {
					return true, in.b
				}
				return true, s
			}
			if out.value == "ok" {
				return s == in.a, in.b
			}
			return s != in.a, s
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		if out.unknown {
			return fmt.Sprintf("%s(%s %s %s) -> ?", in.op, in.key, in.a, in.b)
		}
		return fmt.Sprintf("%s(%s %s %s) -> %s", in.op, in.key, in.a, in.b, out.value)
	},
}

// TestLinearizable runs histories of concurrent clients doing gets (half
// through the log, half as ReadIndex reads), puts and compare-and-swaps
// through random members of 3- and 5-node clusters
// on the in-process network, while faults are injected: the leader or a
// minority partitioned away, majority and minority sides, messages
// dropped, duplicated, delayed and reordered, members stopped and
// restarted. A call that fails or times out counts as maybe applied. Each
// history must be linearizable (porcupine), and the members must end with
// the same data. Half the histories run with write-ahead files (Config.WAL:
// results handed out before the apply batch commits, reads fence).
// QUIVER_LIN_HISTORIES sets the number of histories (default 20).
func TestLinearizable(t *testing.T) {
	histories := 20
	if n, err := strconv.Atoi(os.Getenv("QUIVER_LIN_HISTORIES")); err == nil && n > 0 {
		histories = n
	}
	if testing.Short() {
		histories = 4
	}
	seed := testutil.Seed(t)
	for h := 0; h < histories; h++ {
		size := 3
		if h%2 == 1 {
			size = 5
		}
		hseed := seed + uint64(h)
		wal := h%4 >= 2
		t.Run(fmt.Sprintf("history%d-nodes%d-wal=%v", h, size, wal), func(t *testing.T) {
			runLinHistory(t, size, wal, hseed)
		})
	}
}

func runLinHistory(t *testing.T, size int, wal bool, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	// A tiny catch-up window: members that were stopped or cut off
	// often come back through a snapshot.
	c := newClusterWith(t, size, seed, func(c *cluster) { c.machine, c.contentsOf, c.logWindow, c.wal = linMachine{}, "lin", 512, wal })
	c.leader()
	start := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	stopFaults := make(chan struct{})
	faultsDone := make(chan struct{})
	go func() { // the fault injector: bounded in time and steps
		defer close(faultsDone)
		for step := 0; step < 40; step++ {
			select {
			case <-stopFaults:
				return
			case <-time.After(time.Duration(40+r.IntN(80)) * time.Millisecond):
			}
			switch r.IntN(8) {
			case 0: // isolate the leader
				for _, id := range c.ids {
					if n := c.node(id); n != nil && n.Status().Lead == id {
						c.net.Partition([]uint64{id})
					}
				}
			case 1: // a random minority on one side
				c.net.Partition(c.ids[:len(c.ids)/2])
			case 2:
				c.net.Heal()
			case 3:
				c.net.SetFaults(0.1, 0.1, 8*time.Millisecond)
			case 4:
				c.net.SetFaults(0, 0, 0)
			case 5: // stop and restart a member
				id := c.ids[r.IntN(len(c.ids))]
				c.stop(id)
				time.Sleep(time.Duration(r.IntN(60)) * time.Millisecond)
				c.start(id)
			case 6: // take a member out, bring it back as a learner, promote it
				id := c.ids[r.IntN(len(c.ids))]
				for _, typ := range []pb.ConfChangeType{pb.ConfChangeType_ConfChangeRemoveNode, pb.ConfChangeType_ConfChangeAddLearnerNode, pb.ConfChangeType_ConfChangeAddNode} {
					if err := c.confChange(typ, id, 500*time.Millisecond); err != nil {
						break // a partition, a lost leader: the end of the history restores it
					}
				}
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	keys := []string{"x", "y", "z"}
	for client := 0; client < 4; client++ {
		crng := rand.New(rand.NewPCG(seed, uint64(client)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				// Paced, so that the history spans the faults.
				time.Sleep(time.Duration(crng.IntN(25)) * time.Millisecond)
				in := linInput{op: []string{"g", "p", "c"}[crng.IntN(3)], key: keys[crng.IntN(len(keys))]}
				var data string
				switch in.op {
				case "g":
					data = "g|" + in.key
				case "p":
					in.a = fmt.Sprintf("%d-%d", client, i)
					data = "p|" + in.key + "|" + in.a
				case "c":
					in.a = fmt.Sprintf("%d-%d", crng.IntN(4), crng.IntN(40))
					in.b = fmt.Sprintf("%d-%d", client, i)
					data = "c|" + in.key + "|" + in.a + "|" + in.b
				}
				id := c.ids[crng.IntN(len(c.ids))]
				readIndex := in.op == "g" && crng.IntN(2) == 0 // else through the log
				call := time.Since(start).Nanoseconds()
				var out linOutput
				n := c.node(id)
				switch {
				case n == nil:
					out.unknown = true
				case readIndex:
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					err := n.LinearizableRead(ctx, func(tx *quiver.Tx) error {
						if b := tx.Bucket([]byte("lin")); b != nil {
							out.value = string(b.Get([]byte(in.key)))
						}
						return nil
					})
					cancel()
					out.unknown = err != nil
				default:
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					v, err := n.Propose(ctx, []byte(data))
					cancel()
					if err != nil {
						out.unknown = true
					} else {
						out.value = v.(string)
					}
				}
				ret := time.Since(start).Nanoseconds()
				if out.unknown {
					ret = 1 << 62 // may take effect at any time after the call
				}
				if out.unknown && in.op == "g" {
					continue // a read that failed changed nothing
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stopFaults)
	<-faultsDone
	c.net.Heal()
	c.net.SetFaults(0, 0, 0)
	for _, id := range c.ids {
		if c.node(id) == nil {
			c.start(id)
		}
	}
	// Every member a voter again.
	for _, id := range c.ids {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := c.confChange(pb.ConfChangeType_ConfChangeAddNode, id, time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				var st []string
				for _, m := range c.ids {
					if n := c.node(m); n != nil {
						s := n.Status()
						st = append(st, fmt.Sprintf("%d: lead %d term %d commit %d applied %d", m, s.Lead, s.GetTerm(), s.GetCommit(), n.Applied()))
					}
				}
				stacks := make([]byte, 8<<20)
				stacks = stacks[:runtime.Stack(stacks, true)]
				path := fmt.Sprintf("%s/lin-stall-%d.txt", os.TempDir(), seed)
				_ = os.WriteFile(path, stacks, 0o644)
				t.Fatalf("node %d not made a voter again in 20 s: %v; members %v; goroutines in %s", id, err, st, path)
			}
		}
	}
	// A last put through the leader, so that every member must apply
	// everything before it. A leader deposed while the faults healed may
	// still believe it leads for a moment and lose the put: try again
	// (the put is idempotent).
	var lead uint64
	deadline := time.Now().Add(20 * time.Second)
	for {
		lead = c.leader()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.node(lead).Propose(ctx, []byte("p|done|1"))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last put: %v", err)
		}
	}
	c.converge(c.node(lead).Applied())
	known := 0
	for _, op := range history {
		if !op.Output.(linOutput).unknown {
			known++
		}
	}
	res, info := porcupine.CheckOperationsVerbose(linModel, history, 30*time.Second)
	if res == porcupine.Illegal {
		path := fmt.Sprintf("%s/lin-%d.html", os.TempDir(), seed)
		_ = porcupine.VisualizePath(linModel, info, path)
		t.Fatalf("seed %d: the history is not linearizable (%d operations; see %s)", seed, len(history), path)
	}
	if res == porcupine.Unknown {
		t.Logf("seed %d: the check timed out", seed)
	}
	var snaps int64
	for _, id := range c.ids {
		_, in := c.node(id).Snapshots()
		snaps += in
	}
	t.Logf("%d operations, %d with a known outcome, %d messages, %d snapshots installed", len(history), known, c.net.Sent(), snaps)
}

// confChange proposes one change of node id's membership through the
// leader, waiting at most timeout.
func (c *cluster) confChange(typ pb.ConfChangeType, id uint64, timeout time.Duration) error {
	var lead *Node
	for _, m := range c.ids {
		if n := c.node(m); n != nil && n.Status().Lead == m {
			lead = n
		}
	}
	if lead == nil {
		return errors.New("no leader")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return lead.ProposeConfChange(ctx, &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: typ.Enum(), NodeId: new(id)}}})
}
