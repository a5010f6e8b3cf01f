package raftadapter

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/quiverdb/quiver"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// tcpCluster starts n nodes, each with its own database and a TCP
// transport on 127.0.0.1.
type tcpCluster struct {
	ids   []uint64
	trans map[uint64]*TCPTransport
	nodes map[uint64]*Node
	dbs   map[uint64]*quiver.DB
}

const testClusterID = 0x5157

func newTCPCluster(t *testing.T, n int) *tcpCluster {
	c := &tcpCluster{trans: map[uint64]*TCPTransport{}, nodes: map[uint64]*Node{}, dbs: map[uint64]*quiver.DB{}}
	dir := t.TempDir()
	for i := 1; i <= n; i++ {
		id := uint64(i)
		c.ids = append(c.ids, id)
		tr, err := NewTCPTransport(TCPConfig{ID: id, ClusterID: testClusterID, Listen: "127.0.0.1:0", IdleTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c.trans[id] = tr
	}
	for _, id := range c.ids {
		for _, other := range c.ids {
			if other != id {
				c.trans[id].AddPeer(other, c.trans[other].Addr())
			}
		}
		db, err := quiver.Open(filepath.Join(dir, fmt.Sprintf("n%d.db", id)), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		node, err := StartNode(Config{ID: id, Peers: c.ids, DB: db, StateMachine: kvMachine{}, Transport: c.trans[id], TickInterval: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.trans[id].Attach(node)
		c.nodes[id], c.dbs[id] = node, db
	}
	t.Cleanup(func() {
		for _, id := range c.ids {
			c.nodes[id].Stop()
			c.trans[id].Close()
			c.dbs[id].Close()
		}
	})
	return c
}

// propose proposes through whichever node is leader, retrying while
// there is none.
func (c *tcpCluster) propose(t *testing.T, data string) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range c.ids {
			if c.nodes[id].Status().Lead != id {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r, err := c.nodes[id].Propose(ctx, []byte(data))
			cancel()
			if err == nil {
				return r.(uint64)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no proposal of %q succeeded in 10 s", data)
	return 0
}

func (c *tcpCluster) waitApplied(t *testing.T, index uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range c.ids {
		for c.nodes[id].Applied() < index {
			if time.Now().After(deadline) {
				t.Fatalf("node %d applied %d, want %d", id, c.nodes[id].Applied(), index)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestTCPCluster: a 3-node cluster over TCP on 127.0.0.1 replicates.
func TestTCPCluster(t *testing.T) {
	c := newTCPCluster(t, 3)
	var last uint64
	for i := 0; i < 50; i++ {
		last = c.propose(t, fmt.Sprintf("k%02d=v", i))
	}
	c.waitApplied(t, last)
	for _, id := range c.ids {
		n := 0
		if err := c.dbs[id].View(func(tx *quiver.Tx) error {
			n = tx.Bucket([]byte("kv")).Stats().KeyN
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != 51 {
			t.Fatalf("node %d holds %d keys, want 51", id, n)
		}
	}
}

// TestTCPBadInput: garbage, another cluster's header, oversized,
// truncated and undecodable frames and misaddressed messages each close
// their connection (counted as rejected), never the process; the cluster
// goes on committing.
func TestTCPBadInput(t *testing.T) {
	c := newTCPCluster(t, 3)
	c.propose(t, "before=1")
	target := c.trans[1]
	headerOf := func(kind byte, cluster, from uint64) []byte {
		h := []byte(tcpMagic)
		h = append(h, tcpVersion, kind)
		h = binary.BigEndian.AppendUint64(h, cluster)
		return binary.BigEndian.AppendUint64(h, from)
	}
	header := func(cluster, from uint64) []byte { return headerOf(kindMessages, cluster, from) }
	frame := func(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	msg := func(from, to uint64) []byte {
		b, _ := proto.Marshal(&pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(), From: new(from), To: new(to), Term: new(uint64(1))})
		return b
	}
	snap, _ := proto.Marshal(&pb.Message{Type: pb.MessageType_MsgSnap.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1)),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(1000)), Term: new(uint64(1)), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}})
	image := bytes.Repeat([]byte("image"), 1000)
	chunk := func(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) }
	end := func(sum uint64) []byte { return binary.BigEndian.AppendUint64([]byte{0, 0, 0, 0}, sum) }
	snapStream := func(tail ...[]byte) []byte {
		b := append(headerOf(kindSnapshot, testClusterID, 2), frame(snap)...)
		for _, t := range tail {
			b = append(b, t...)
		}
		return b
	}
	cases := []struct {
		name string
		data []byte
		want string // in the answer to a snapshot
	}{
		{"garbage", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64), ""},
		{"another cluster", header(testClusterID+1, 2), ""},
		{"oversized frame", append(header(testClusterID, 2), 0xff, 0xff, 0xff, 0xff), ""},
		{"truncated frame", append(header(testClusterID, 2), 0, 0, 1, 0, 1, 2, 3), ""},
		{"undecodable message", append(header(testClusterID, 2), frame([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})...), ""},
		{"misaddressed message", append(header(testClusterID, 2), frame(msg(2, 3))...), ""},
		{"spoofed sender", append(header(testClusterID, 2), frame(msg(3, 1))...), ""},
		{"unknown kind", headerOf('X', testClusterID, 2), ""},
		{"snapshot without its stream", append(header(testClusterID, 2), frame(snap)...), ""},
		{"snapshot with a wrong hash", snapStream(chunk(image), end(xxhash.Sum64(image)+1)), "damaged in transit"},
		{"snapshot of garbage", snapStream(chunk(image), end(xxhash.Sum64(image))), "image of snapshot 1000 is refused"},
		{"snapshot with an oversized chunk", snapStream([]byte{0xff, 0xff, 0xff, 0xff}), ""},
		{"truncated snapshot", snapStream(chunk(image)[:100]), ""},
	}
	for _, tc := range cases {
		before := target.Rejected()
		conn, err := net.Dial("tcp", target.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(tc.data); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		if strings.HasPrefix(tc.name, "truncated") {
			conn.(*net.TCPConn).CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		answer, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("%s: the connection was not closed: %v", tc.name, err)
		}
		if tc.want != "" && (len(answer) < 3 || answer[0] != 1 || !strings.Contains(string(answer[3:]), tc.want)) {
			t.Fatalf("%s: answered %q, want a refusal naming %q", tc.name, answer, tc.want)
		}
		conn.Close()
		deadline := time.Now().Add(2 * time.Second)
		for target.Rejected() == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if target.Rejected() == before {
			t.Fatalf("%s: not counted as rejected", tc.name)
		}
	}
	c.waitApplied(t, c.propose(t, "after=1"))
}
