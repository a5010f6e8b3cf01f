package etcddiff

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/traceutil"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	emvcc "go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
)

// Side-by-side measurements of quiver's mvcc store and etcd's, in the same
// process. Run with
//
//	go test -run '^$' -bench . -benchtime 100000x
//	QUIVER_ETCD_MEM=1 go test -run TestMemoryAndRestore -v -timeout 30m
//
// etcd's store is measured as etcd runs it: its backend commits every
// 100 ms or 10,000 writes (durability comes from etcd's WAL, not measured
// here). quiver's Put returns once its group commit is durable (synced),
// and with NoWait once applied.

func benchKey(i int) []byte {
	k := make([]byte, 16)
	copy(k, "key/")
	binary.BigEndian.PutUint64(k[8:], uint64(i)*0x9e3779b97f4a7c15)
	return k
}

func openQuiverStore(tb testing.TB, dir string, sync bool) (*mvcc.Store, *quiver.DB) {
	db, err := quiver.Open(filepath.Join(dir, "q.db"), 0o600, &quiver.Options{NoSync: !sync})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := mvcc.Open(db, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return s, db
}

func openEtcdStore(tb testing.TB, dir string) (emvcc.KV, backend.Backend) {
	bcfg := backend.DefaultBackendConfig(zap.NewNop())
	bcfg.Path = filepath.Join(dir, "etcd.db")
	b := backend.New(bcfg)
	return emvcc.NewStore(zap.NewNop(), b, &lease.FakeLessor{LeaseSet: map[lease.LeaseID]struct{}{}}, emvcc.StoreConfig{}), b
}

// BenchmarkPut: b.N puts of 256-byte values under random 16-byte keys from
// 16 goroutines.
func BenchmarkPut(b *testing.B) {
	value := make([]byte, 256)
	const clients = 16
	run := func(b *testing.B, put func(i int) error) {
		var wg sync.WaitGroup
		per := (b.N + clients - 1) / clients
		b.ResetTimer()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := c * per; i < (c+1)*per && i < b.N; i++ {
					if err := put(i); err != nil {
						b.Error(err)
						return
					}
				}
			}(c)
		}
		wg.Wait()
		b.StopTimer()
	}
	for _, mode := range []string{"quiver-durable", "quiver-nowait"} {
		b.Run(mode, func(b *testing.B) {
			s, db := openQuiverStore(b, b.TempDir(), true)
			defer db.Close()
			defer s.Close()
			nowait := mode == "quiver-nowait"
			run(b, func(i int) error {
				_, err := s.Txn(&mvcc.Txn{Then: []mvcc.Op{mvcc.OpPut(benchKey(i), value, 0)}, NoWait: nowait})
				return err
			})
		})
	}
	b.Run("etcd", func(b *testing.B) {
		s, be := openEtcdStore(b, b.TempDir())
		defer be.Close()
		defer s.Close()
		run(b, func(i int) error {
			s.Put(benchKey(i), value, lease.NoLease)
			return nil
		})
	})
}

// BenchmarkRange reads one key, or a range of 100 keys, of 100,000.
func BenchmarkRange(b *testing.B) {
	const n = 100000
	value := make([]byte, 256)
	seqKey := func(i int) []byte { return []byte(fmt.Sprintf("key/%08d", i)) }
	dir := b.TempDir()
	qs, qdb := openQuiverStore(b, dir, false)
	defer qdb.Close()
	defer qs.Close()
	es, be := openEtcdStore(b, dir)
	defer be.Close()
	defer es.Close()
	for i := 0; i < n; i += 1000 {
		ops := make([]mvcc.Op, 0, 1000)
		tw := es.Write(traceutil.TODO())
		for j := i; j < i+1000; j++ {
			ops = append(ops, mvcc.OpPut(seqKey(j), value, 0))
			tw.Put(seqKey(j), value, lease.NoLease)
		}
		tw.End()
		if _, err := qs.Txn(&mvcc.Txn{Then: ops}); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // etcd's backend commits
	for _, width := range []int{1, 100} {
		span := func(i int) ([]byte, []byte) {
			k := (i * 7919) % (n - width)
			if width == 1 {
				return seqKey(k), nil
			}
			return seqKey(k), seqKey(k + width)
		}
		b.Run(fmt.Sprintf("keys=%d/quiver", width), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				key, end := span(i)
				r, err := qs.Range(key, end, mvcc.RangeOptions{})
				if err != nil || len(r.KVs) != width {
					b.Fatal(len(r.KVs), err)
				}
			}
		})
		b.Run(fmt.Sprintf("keys=%d/etcd", width), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				key, end := span(i)
				tr := es.Read(emvcc.ConcurrentReadTxMode, traceutil.TODO())
				r, err := tr.Range(context.Background(), key, end, emvcc.RangeOptions{})
				tr.End()
				if err != nil || len(r.KVs) != width {
					b.Fatal(len(r.KVs), err)
				}
			}
		})
	}
}

// heapInUse returns the bytes of live heap objects after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMemoryAndRestore measures, for 1M keys written 5 times each (64-byte
// keys, as etcd's published figure): heap per key after the first write
// and per extra revision, the time to reopen (rebuild the index) per
// million revisions, and the heap of 100,000 watchers. Opt-in: it takes
// minutes.
func TestMemoryAndRestore(t *testing.T) {
	if os.Getenv("QUIVER_ETCD_MEM") == "" {
		t.Skip("set QUIVER_ETCD_MEM=1")
	}
	keys := 1000000
	if s := os.Getenv("QUIVER_ETCD_MEM_KEYS"); s != "" {
		fmt.Sscan(s, &keys)
	}
	const versions = 5
	value := make([]byte, 32)
	key := func(i int) []byte {
		k := make([]byte, 64)
		copy(k, fmt.Sprintf("/registry/pods/namespace-%04d/pod-%012d", i%1000, i))
		return k
	}
	type engine struct {
		name     string
		open     func() // (re)opens the store on the same files
		write    func(from, to int)
		close    func()
		watchers func(n int) func()
	}
	dir := t.TempDir()
	var qs *mvcc.Store
	var qdb *quiver.DB
	var es emvcc.WatchableKV
	var be backend.Backend
	engines := []engine{
		{
			name: "quiver",
			open: func() { qs, qdb = openQuiverStore(t, dir, false) },
			write: func(from, to int) {
				ops := make([]mvcc.Op, 0, 1000)
				for i := from; i < to; i++ {
					ops = append(ops, mvcc.OpPut(key(i), value, 0))
					if len(ops) == 1000 || i == to-1 {
						if _, err := qs.Txn(&mvcc.Txn{Then: ops}); err != nil {
							t.Fatal(err)
						}
						ops = ops[:0]
					}
				}
			},
			close: func() { qs.Close(); qdb.Close() },
			watchers: func(n int) func() {
				ws := qs.NewWatchStream()
				for i := 0; i < n; i++ {
					if _, err := ws.Watch(key(i), nil, 0); err != nil {
						t.Fatal(err)
					}
				}
				return ws.Close
			},
		},
		{
			name: "etcd",
			open: func() {
				bcfg := backend.DefaultBackendConfig(zap.NewNop())
				bcfg.Path = filepath.Join(dir, "etcd.db")
				be = backend.New(bcfg)
				es = emvcc.New(zap.NewNop(), be, &lease.FakeLessor{LeaseSet: map[lease.LeaseID]struct{}{}}, emvcc.StoreConfig{})
			},
			write: func(from, to int) {
				tw := es.Write(traceutil.TODO())
				for i := from; i < to; i++ {
					tw.Put(key(i), value, lease.NoLease)
					if (i-from)%1000 == 999 {
						tw.End()
						tw = es.Write(traceutil.TODO())
					}
				}
				tw.End()
			},
			close: func() { es.Close(); be.Close() },
			watchers: func(n int) func() {
				ws := es.NewWatchStream()
				for i := 0; i < n; i++ {
					if _, err := ws.Watch(context.Background(), clientv3.AutoWatchID, key(i), nil, 0); err != nil {
						t.Fatal(err)
					}
				}
				return ws.Close
			},
		},
	}
	for _, e := range engines {
		base := heapInUse()
		e.open()
		opened := heapInUse()
		e.write(0, keys)
		one := heapInUse()
		for v := 1; v < versions; v++ {
			e.write(0, keys)
		}
		all := heapInUse()
		perKey := float64(one-opened) / float64(keys)
		perRev := float64(all-one) / float64(keys*(versions-1))
		e.close()
		start := time.Now()
		e.open()
		restore := time.Since(start)
		restored := heapInUse()
		stop := e.watchers(100000)
		watched := heapInUse()
		stop()
		e.close()
		t.Logf("%s: %d keys x %d revisions: %.0f B/key after one revision, %.1f B per extra revision, heap %.0f MiB; reopen %v (%.2f s per million revisions), heap after reopen %.0f MiB; 100,000 watchers %.0f B each",
			e.name, keys, versions, perKey, perRev, float64(all-base)/(1<<20), restore.Round(time.Millisecond),
			restore.Seconds()/float64(keys*versions)*1e6, float64(restored-base)/(1<<20), float64(watched-restored)/100000)
	}
}
