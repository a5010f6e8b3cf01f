package raftadapter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/raftadapter"
)

// counter is a state machine: every entry adds one to key "n" of bucket
// "counter", and its result is the new count.
type counter struct{}

func (counter) Apply(tx *quiver.Tx, ents []raftadapter.Entry) ([]any, error) {
	b, err := tx.CreateBucketIfNotExists([]byte("counter"))
	if err != nil {
		return nil, err
	}
	n := len(b.Get([]byte("n"))) // the count is kept as that many bytes
	res := make([]any, len(ents))
	for i := range ents {
		n++
		res[i] = n
	}
	return res, b.Put([]byte("n"), make([]byte, n))
}

// A 3-node cluster over TCP on 127.0.0.1: a proposal through any member is
// applied on all of them.
func ExampleStartNode() {
	dir, _ := os.MkdirTemp("", "quiver-example")
	defer os.RemoveAll(dir)
	ids := []uint64{1, 2, 3}
	trans := map[uint64]*raftadapter.TCPTransport{}
	for _, id := range ids {
		trans[id], _ = raftadapter.NewTCPTransport(raftadapter.TCPConfig{ID: id, ClusterID: 7, Listen: "127.0.0.1:0"})
		defer trans[id].Close()
	}
	nodes := map[uint64]*raftadapter.Node{}
	for _, id := range ids {
		for _, peer := range ids {
			if peer != id {
				trans[id].AddPeer(peer, trans[peer].Addr())
			}
		}
		db, _ := quiver.Open(filepath.Join(dir, fmt.Sprintf("node%d.db", id)), 0o600, nil)
		defer db.Close()
		node, err := raftadapter.StartNode(raftadapter.Config{ID: id, Peers: ids, DB: db, StateMachine: counter{}, Transport: trans[id]})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer node.Stop()
		trans[id].Attach(node)
		nodes[id] = node
	}
	// Propose until a leader is elected, then read on another member.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		res, err := nodes[1].Propose(ctx, []byte("+1"))
		if err == nil {
			fmt.Println("count after the proposal:", res)
			break
		}
		if ctx.Err() != nil {
			fmt.Println(err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = nodes[3].LinearizableRead(ctx, func(tx *quiver.Tx) error {
		fmt.Println("count read on node 3:", len(tx.Bucket([]byte("counter")).Get([]byte("n"))))
		return nil
	})
	// Output:
	// count after the proposal: 1
	// count read on node 3: 1
}
