package bench

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Workload flags, given after the package on the go test command line, for
// example: go test -run '^$' -bench . -keys 10000.
var (
	flagKeys      = flag.Int("keys", 1_000_000, "number of keys in the loaded data set")
	flagBatch     = flag.Int("batch", 1000, "puts per synced write transaction in loads")
	flagValueSize = flag.Int("value-size", 100, "value size in bytes")
	flagFill      = flag.Float64("fill", 0, "bucket fill percent for writes (0: engine default, 0.5)")
	flagSeed      = flag.Uint64("seed", 1, "seed of every random choice in the workloads")
	flagPutKeys   = flag.Int("singleput-keys", 10_000, "keys pre-loaded before SinglePut")
)

// fixtureDir holds the loaded databases that read benchmarks share. It is
// created by TestMain and removed when the run ends.
var fixtureDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "quiver-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkFlags stops the run on workload flags that make no sense.
func checkFlags(tb testing.TB) {
	tb.Helper()
	switch {
	case *flagKeys < 1:
		tb.Fatalf("-keys %d: want at least 1", *flagKeys)
	case *flagBatch < 1:
		tb.Fatalf("-batch %d: want at least 1", *flagBatch)
	case *flagValueSize < 0:
		tb.Fatalf("-value-size %d: want at least 0", *flagValueSize)
	case *flagFill != 0 && (*flagFill < 0.1 || *flagFill > 1):
		tb.Fatalf("-fill %v: want 0 or 0.1 to 1", *flagFill)
	case *flagPutKeys < 0:
		tb.Fatalf("-singleput-keys %d: want at least 0", *flagPutKeys)
	}
}

var (
	dataMu     sync.Mutex
	dataKeys   *Keys
	dataValues *Values
	availMu    sync.Mutex
	avail      = map[string]error{}
)

// dataSet returns the keys and values of the -keys data set, built once.
func dataSet(tb testing.TB) (*Keys, *Values) {
	checkFlags(tb)
	dataMu.Lock()
	defer dataMu.Unlock()
	if dataKeys == nil || dataKeys.Len() != *flagKeys {
		dataKeys = NewKeys(*flagKeys)
		dataValues = NewValues(*flagValueSize, *flagSeed)
	}
	return dataKeys, dataValues
}

// openOptions returns the options of the timed runs.
func openOptions() OpenOptions { return OpenOptions{FillPercent: *flagFill} }

// forEachEngine runs fn as the sub-benchmark engine=<name> of every engine
// in Engines, skipping those that cannot open a database.
func forEachEngine(b *testing.B, fn func(b *testing.B, spec EngineSpec)) {
	for _, spec := range Engines {
		b.Run("engine="+spec.Name, func(b *testing.B) {
			availMu.Lock()
			err, ok := avail[spec.Name]
			if !ok {
				err = Available(spec)
				avail[spec.Name] = err
			}
			availMu.Unlock()
			if err != nil {
				b.Skipf("engine not available: %v", err)
			}
			fn(b, spec)
		})
	}
}

// BenchmarkSeqLoad loads the data set in key order into a new database, -batch
// puts per synced commit. One op is a whole load.
func BenchmarkSeqLoad(b *testing.B) { benchLoad(b, false) }

// BenchmarkRandLoad loads the data set in a seeded random order.
func BenchmarkRandLoad(b *testing.B) { benchLoad(b, true) }

func benchLoad(b *testing.B, random bool) {
	keys, values := dataSet(b)
	var order []int
	if random {
		order = rand.New(rand.NewPCG(*flagSeed, 1)).Perm(keys.Len())
	}
	forEachEngine(b, func(b *testing.B, spec EngineSpec) {
		b.ReportAllocs()
		dir := b.TempDir()
		var size int64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			path := filepath.Join(dir, fmt.Sprintf("load-%d.db", i))
			e, err := spec.Open(path, openOptions())
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := Load(e, keys, values, order, *flagBatch); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n, err := e.Scan(); err != nil || n != keys.Len() {
				b.Fatalf("after the load the scan found %d keys, want %d (error %v)", n, keys.Len(), err)
			}
			if size, err = e.FileSize(); err != nil {
				b.Fatal(err)
			}
			if err := e.Close(); err != nil {
				b.Fatal(err)
			}
			os.Remove(path)
			b.StartTimer()
		}
		b.StopTimer()
		b.ReportMetric(float64(keys.Len())*float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		b.ReportMetric(float64(size)/1e6, "file-MB")
	})
}

// BenchmarkSinglePut puts one new key at a random place per synced commit,
// into a database pre-loaded with -singleput-keys random keys. One op is one
// commit.
func BenchmarkSinglePut(b *testing.B) {
	checkFlags(b)
	_, values := dataSet(b)
	forEachEngine(b, func(b *testing.B, spec EngineSpec) {
		b.ReportAllocs()
		path := filepath.Join(b.TempDir(), "singleput.db")
		rng := rand.New(rand.NewPCG(*flagSeed, 2))
		key := make([]byte, KeySize)
		e, err := spec.Open(path, OpenOptions{NoSync: true, FillPercent: *flagFill})
		if err != nil {
			b.Fatal(err)
		}
		for lo := 0; lo < *flagPutKeys; lo += *flagBatch {
			m := min(*flagBatch, *flagPutKeys-lo)
			keys := make([]byte, m*KeySize)
			for i := 0; i < m; i++ {
				PutKey(keys[i*KeySize:], rng.Uint64())
			}
			if err := e.PutBatch(m, func(i int) ([]byte, []byte) {
				return keys[i*KeySize : (i+1)*KeySize], values.Value(lo + i)
			}); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
		if e, err = spec.Open(path, openOptions()); err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			PutKey(key, rng.Uint64())
			if err := e.PutBatch(1, func(int) ([]byte, []byte) { return key, values.Value(i) }); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	})
	// The disk's floor under a synced commit, in the same run: the target
	// is set against one 4 KB write and fdatasync on the same file.
	b.Run("floor=one-page", func(b *testing.B) { benchSyncFloor(b, 1, false, false) })
	b.Run("floor=run-and-meta", func(b *testing.B) { benchSyncFloor(b, 5, true, false) })
	b.Run("floor=two-syncs", func(b *testing.B) { benchSyncFloor(b, 1, true, true) })
}

// benchSyncFloor measures the disk under a commit with no engine in the
// way, on a file as large as SinglePut's database. Per op: a run of pages
// written at a random page, then, with meta, page 0 written as well, and
// one fdatasync; with twoSyncs, an fdatasync before page 0 too. One page
// is the floor the single-put target names; a run and the meta apart is
// the least a commit that keeps its meta in a fixed place writes (its
// pages as one run: quiver's best case); two syncs are a commit that
// makes its pages durable before its meta (bbolt's).
func benchSyncFloor(b *testing.B, pages int, meta, twoSyncs bool) {
	const ps = 4096
	size := max(256, *flagPutKeys*(KeySize+*flagValueSize)*2/ps) // pages
	f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, size*ps)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(*flagSeed, 5))
	buf := make([]byte, pages*ps)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, int64(2+rng.IntN(size-pages-2))*ps); err != nil {
			b.Fatal(err)
		}
		if twoSyncs {
			if err := fdatasync(f); err != nil {
				b.Fatal(err)
			}
		}
		if meta {
			if _, err := f.WriteAt(buf[:ps], 0); err != nil {
				b.Fatal(err)
			}
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

var (
	fixtureMu sync.Mutex
	fixtures  = map[string]string{} // engine and data set -> file
)

// openFixture opens the engine's database holding the data set loaded in
// random order, loading it on first use (without syncs: durability does not
// matter to the readers), and warms the mapping with a scan so that the
// timed reads do not pay the first page faults.
func openFixture(b *testing.B, spec EngineSpec) (Engine, *Keys) {
	keys, values := dataSet(b)
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	id := fmt.Sprintf("%s-k%d-v%d-f%v-s%d", spec.Name, keys.Len(), *flagValueSize, *flagFill, *flagSeed)
	path, ok := fixtures[id]
	if !ok {
		path = filepath.Join(fixtureDir, id+".db")
		e, err := spec.Open(path, OpenOptions{NoSync: true, FillPercent: *flagFill})
		if err != nil {
			b.Fatal(err)
		}
		order := rand.New(rand.NewPCG(*flagSeed, 1)).Perm(keys.Len())
		if err := Load(e, keys, values, order, *flagBatch); err != nil {
			b.Fatal(err)
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
		fixtures[id] = path
	}
	e, err := spec.Open(path, openOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if n, err := e.Scan(); err != nil || n != keys.Len() {
		b.Fatalf("fixture %s: scan found %d keys, want %d (error %v)", path, n, keys.Len(), err)
	}
	return e, keys
}

// BenchmarkScanRead is BenchmarkScan reading each key's first byte and
// each value's last, as a scan that uses its pairs does. Every engine must
// find the same sum.
func BenchmarkScanRead(b *testing.B) {
	forEachEngine(b, func(b *testing.B, spec EngineSpec) {
		e, keys := openFixture(b, spec)
		_, values := dataSet(b)
		var want uint64
		for i := 0; i < keys.Len(); i++ {
			want += uint64(keys.Key(i)[0]) + lastByte(values.Value(i))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			n, sum, err := e.ScanRead()
			if err != nil || n != keys.Len() || sum != want {
				b.Fatalf("scan read %d keys with sum %d, want %d with sum %d (error %v)", n, sum, keys.Len(), want, err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(keys.Len())*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}

// BenchmarkGetTxEach looks up one random existing key per read transaction.
// One op is one transaction and one get.
func BenchmarkGetTxEach(b *testing.B) {
	forEachEngine(b, func(b *testing.B, spec EngineSpec) {
		e, keys := openFixture(b, spec)
		rng := rand.New(rand.NewPCG(*flagSeed, 3))
		n := keys.Len()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ok, err := e.Get(keys.Key(rng.IntN(n)))
			if err != nil || !ok {
				b.Fatalf("get: found %v, error %v", ok, err)
			}
		}
	})
}

// BenchmarkGetOneTx looks up random existing keys, all in one read
// transaction. One op is one get.
func BenchmarkGetOneTx(b *testing.B) {
	forEachEngine(b, func(b *testing.B, spec EngineSpec) {
		e, keys := openFixture(b, spec)
		rng := rand.New(rand.NewPCG(*flagSeed, 4))
		n := keys.Len()
		b.ReportAllocs()
		b.ResetTimer()
		found, err := e.GetInTx(b.N, func(int) []byte { return keys.Key(rng.IntN(n)) })
		b.StopTimer()
		if err != nil || found != b.N {
			b.Fatalf("found %d of %d keys, error %v", found, b.N, err)
		}
	})
}

// BenchmarkScan walks the whole data set with a cursor in one read
// transaction. One op is one full scan.
func BenchmarkScan(b *testing.B) {
	forEachEngine(b, func(b *testing.B, spec EngineSpec) {
		e, keys := openFixture(b, spec)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			n, err := e.Scan()
			if err != nil || n != keys.Len() {
				b.Fatalf("scan found %d keys, want %d (error %v)", n, keys.Len(), err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(keys.Len())*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}
