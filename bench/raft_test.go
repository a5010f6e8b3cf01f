package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/raftadapter"
)

// The raft benchmarks: a 1- or 3-node cluster in one process, the nodes
// talking TCP on loopback, each with its own files and real fdatasyncs.
// Proposers (1, 16, 64) propose key=value through the leader and wait until
// it is applied there. Two storages run side by side: raftadapter's (the
// log in the engine file, one commit and one fdatasync a Ready) and the
// reference (refNode: raft's MemoryStorage, an append-only log file, the
// state machine committed without a sync), raftexample's design.
//
//	go test -run '^$' -bench 'Raft' -benchtime 2s

// putKV applies "key=value" to bucket b.
func putKV(b *quiver.Bucket, data []byte) error {
	k, v, ok := bytes.Cut(data, []byte("="))
	if !ok {
		return fmt.Errorf("not key=value: %.20q", data)
	}
	return b.Put(k, v)
}

// kvMachine is the raftadapter state machine of the benchmarks.
type kvMachine struct{}

func (kvMachine) Apply(tx *quiver.Tx, ents []raftadapter.Entry) ([]any, error) {
	b, err := tx.CreateBucketIfNotExists([]byte("kv"))
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if err := putKV(b, e.Data); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// member is one node of either storage, as the benchmark drives it.
type member interface {
	Propose(ctx context.Context, data []byte) error
	Leader() uint64
	Stop()
}

type quiverMember struct {
	n  *raftadapter.Node
	db *quiver.DB
}

func (m quiverMember) Propose(ctx context.Context, data []byte) error {
	_, err := m.n.Propose(ctx, data)
	return err
}
func (m quiverMember) Leader() uint64 { return m.n.Status().Lead }
func (m quiverMember) Stop()          { m.n.Stop(); m.db.Close() }

func (n *refNode) Leader() uint64 { return n.lead.Load() }

// syncCounter counts the fdatasyncs of the engine files it opens.
type syncCounter struct{ n atomic.Int64 }

type countedFile struct {
	quiver.File
	c *syncCounter
}

func (f countedFile) Sync() error    { f.c.n.Add(1); return f.File.Sync() }
func (f countedFile) SyncDir() error { return f.File.(quiver.DirSyncer).SyncDir() }

func (c *syncCounter) open(path string, flag int, mode os.FileMode) (quiver.File, error) {
	f, err := quiver.OpenOSFile(path, flag, mode)
	if err != nil {
		return nil, err
	}
	return countedFile{File: f, c: c}, nil
}

// raftCluster starts size members of storage ("quiver" or "memwal") and
// returns them, the leader's index and the fdatasync count of them all.
func raftCluster(b *testing.B, size int, storage string) (members []member, lead int, syncs func() int64) {
	dir := b.TempDir()
	ids := make([]uint64, size)
	addrs := map[uint64]string{}
	for i := range ids {
		ids[i] = uint64(i + 1)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addrs[ids[i]] = ln.Addr().String()
		ln.Close()
	}
	var counter syncCounter
	var refs []*refNode
	for _, id := range ids {
		peers := map[uint64]string{}
		for p, a := range addrs {
			if p != id {
				peers[p] = a
			}
		}
		tr, err := raftadapter.NewTCPTransport(raftadapter.TCPConfig{ID: id, ClusterID: 7, Listen: addrs[id], Peers: peers})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close() })
		switch storage {
		case "quiver":
			db, err := quiver.Open(filepath.Join(dir, fmt.Sprintf("n%d.db", id)), 0o600, &quiver.Options{OpenFile: counter.open})
			if err != nil {
				b.Fatal(err)
			}
			n, err := raftadapter.StartNode(raftadapter.Config{ID: id, Peers: ids, DB: db, StateMachine: kvMachine{}, Transport: tr})
			if err != nil {
				b.Fatal(err)
			}
			tr.Attach(n)
			members = append(members, quiverMember{n: n, db: db})
		case "memwal":
			n, err := startRefNode(id, ids, filepath.Join(dir, fmt.Sprintf("n%d.wal", id)), filepath.Join(dir, fmt.Sprintf("n%d.db", id)), tr)
			if err != nil {
				b.Fatal(err)
			}
			tr.Attach(n)
			members = append(members, n)
			refs = append(refs, n)
		}
	}
	b.Cleanup(func() {
		for _, m := range members {
			m.Stop()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for lead = -1; lead < 0; {
		for i, m := range members {
			if m.Leader() == ids[i] {
				lead = i
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("no leader in 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	syncs = func() int64 {
		n := counter.n.Load()
		for _, r := range refs {
			n += r.syncs.Load()
		}
		return n
	}
	return members, lead, syncs
}

// BenchmarkRaft reports proposals/s, p50 and p99 latency (until applied
// on the leader) and fdatasyncs per proposal, all members counted.
func BenchmarkRaft(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		for _, size := range []int{100, 1 << 20} {
			for _, proposers := range []int{1, 16, 64} {
				for _, storage := range []string{"quiver", "memwal"} {
					name := fmt.Sprintf("nodes=%d/value=%s/proposers=%d/storage=%s", nodes, sizeName(size), proposers, storage)
					b.Run(name, func(b *testing.B) { benchRaft(b, nodes, size, proposers, storage) })
				}
			}
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dB", n)
}

func benchRaft(b *testing.B, nodes, size, proposers int, storage string) {
	members, lead, syncs := raftCluster(b, nodes, storage)
	leader := members[lead]
	value := bytes.Repeat([]byte("v"), size)
	lat := make([]time.Duration, b.N)
	var next, retries atomic.Int64
	before := syncs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < proposers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				data := append([]byte(fmt.Sprintf("k%09d=", i)), value...)
				t0 := time.Now()
				// A proposal lost with a change of leader never returns:
				// after a while it is proposed again (a put is idempotent),
				// and counted.
				var err error
				for attempt := 0; attempt < 6; attempt++ {
					if attempt > 0 {
						retries.Add(1)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err = leader.Propose(ctx, data)
					cancel()
					if err == nil {
						break
					}
				}
				if err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "proposals/s")
	b.ReportMetric(float64(lat[b.N/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[b.N*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(syncs()-before)/float64(b.N), "fsyncs/proposal")
	b.ReportMetric(float64(retries.Load()), "retries")
}
