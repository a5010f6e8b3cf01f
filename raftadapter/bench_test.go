package raftadapter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

// syncCounter counts the fdatasyncs of the files it opens.
type syncCounter struct{ n atomic.Int64 }

type countedSyncFile struct {
	quiver.File
	c *syncCounter
}

func (f countedSyncFile) Sync() error { f.c.n.Add(1); return f.File.Sync() }

// SyncDir passes the directory sync through (the File seam's optional
// interface).
func (f countedSyncFile) SyncDir() error { return f.File.(quiver.DirSyncer).SyncDir() }

func (c *syncCounter) open(path string, flag int, mode os.FileMode) (quiver.File, error) {
	f, err := quiver.OpenOSFile(path, flag, mode)
	if err != nil {
		return nil, err
	}
	return countedSyncFile{File: f, c: c}, nil
}

// BenchmarkPropose measures proposals of 100-byte values on a 3-node
// cluster in one process (in-process network, real files and fdatasyncs),
// with 1, 16 and 64 concurrent proposers through the leader: proposals
// per second, p50 and p99 latency until applied on the leader, and the
// fdatasyncs of all three nodes per proposal.
func BenchmarkPropose(b *testing.B) {
	for _, proposers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			var syncs syncCounter
			nw := NewNetwork(1)
			ids := []uint64{1, 2, 3}
			dir := b.TempDir()
			nodes := map[uint64]*Node{}
			for _, id := range ids {
				db, err := quiver.Open(filepath.Join(dir, fmt.Sprintf("n%d.db", id)), 0o600, &quiver.Options{OpenFile: syncs.open})
				if err != nil {
					b.Fatal(err)
				}
				n, err := StartNode(Config{ID: id, Peers: ids, DB: db, StateMachine: kvMachine{}, Transport: nw.Endpoint(id)})
				if err != nil {
					b.Fatal(err)
				}
				nw.Attach(id, n)
				nodes[id] = n
				b.Cleanup(func() { n.Stop(); db.Close() })
			}
			var lead *Node
			for lead == nil {
				for _, id := range ids {
					if nodes[id].Status().Lead == id {
						lead = nodes[id]
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
			value := string(make([]byte, 100))
			var next atomic.Int64
			lat := make([]time.Duration, b.N)
			syncs.n.Store(0)
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
						t0 := time.Now()
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_, err := lead.Propose(ctx, []byte(fmt.Sprintf("k%09d=%s", i, value)))
						cancel()
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
			b.ReportMetric(float64(syncs.n.Load())/float64(b.N), "fsyncs/proposal")
		})
	}
}
