package bench

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Flags of BenchmarkFragmented. The size and the commit count default to
// values derived from -keys, so that the CI line (-keys 2000) stays quick
// and the default -keys (1M) gives the real size: 256 MB of keys and values.
var (
	flagFragMB      = flag.Float64("frag-mb", 0, "Fragmented: MB (10^6 bytes) of keys and values loaded before fragmenting; 0: 256 bytes per -keys")
	flagFragCommits = flag.Int("frag-commits", 0, "Fragmented: measured steady commits; 0: -keys/500, from 100 to 2000")
	flagFragWarmup  = flag.Int("frag-warmup", 100, "Fragmented: unmeasured steady commits before the measured ones")
	flagFragOps     = flag.Int("frag-ops", 10, "Fragmented: operations per steady commit")
	flagFragDelete  = flag.Float64("frag-delete", 0.5, "Fragmented: fraction of the loaded keys deleted before the steady commits")
	flagFragLarge   = flag.Float64("frag-large", 0.01, "Fragmented: fraction of values of 2-64 KB (the rest are ~100 bytes)")
	flagFragOpens   = flag.Int("frag-opens", 5, "Fragmented: timed warm opens (the median is reported)")
	flagFragCold    = flag.Bool("frag-cold", true, "Fragmented: also time one open with the file's pages dropped from the page cache")
)

// fragmentedRun returns the run the flags describe.
func fragmentedRun(tb testing.TB) FragmentedRun {
	checkFlags(tb)
	cfg := DefaultFragmentedConfig()
	cfg.Seed = *flagSeed
	cfg.Batch = *flagBatch
	cfg.OpsPerCommit = *flagFragOps
	cfg.LargeFraction = *flagFragLarge
	bytes := int64(*flagFragMB * 1e6)
	if bytes <= 0 {
		bytes = int64(*flagKeys) * 256
	}
	commits := *flagFragCommits
	if commits <= 0 {
		commits = min(max(*flagKeys/500, 100), 2000)
	}
	if err := cfg.validate(); err != nil {
		tb.Fatal(err)
	}
	return FragmentedRun{
		Config:      cfg,
		Bytes:       bytes,
		Delete:      *flagFragDelete,
		Warmup:      max(*flagFragWarmup, 0),
		Commits:     commits,
		OpenRuns:    *flagFragOpens,
		ColdOpen:    *flagFragCold,
		FillPercent: *flagFill,
	}
}

// BenchmarkFragmented runs the fragmented workload (fragmented.go) once per
// op on a new database of each engine: load -frag-mb of random keys and
// mixed values, delete -frag-delete of them, then -frag-commits synced
// commits of -frag-ops operations, each measured, then timed reopens. ns/op
// is the whole run; the metrics are those of the last run:
//
//	p50-us, p99-us, max-us  steady commit latency (µs)
//	bytes/commit            bytes the process wrote per commit (/proc/self/io wchar)
//	fl-bytes/commit         freelist bytes written per commit (mean)
//	alloc-us/commit         quiver: time asking the freelist for pages
//	spill-us/commit         bbolt: time spilling nodes, allocation included
//	free-pages              free pages after the steady commits
//	open-ms, cold-open-ms   Open plus one read tx (median warm; one cold)
//	file-MB, live-MB        file size at the end, and the key and value bytes in it (10^6 bytes)
//
// The parent benchmark prints a table of every engine and the ratios.
func BenchmarkFragmented(b *testing.B) {
	run := fragmentedRun(b)
	var mu sync.Mutex
	var results []*FragmentedResult
	forEachEngine(b, func(b *testing.B, spec EngineSpec) {
		var r *FragmentedResult
		for i := 0; i < b.N; i++ {
			path := filepath.Join(b.TempDir(), "fragmented.db")
			var err error
			if r, err = RunFragmented(spec, path, run); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		c := &r.Commits
		b.ReportMetric(float64(c.P50)/1e3, "p50-us")
		b.ReportMetric(float64(c.P99)/1e3, "p99-us")
		b.ReportMetric(float64(c.Max)/1e3, "max-us")
		if c.Bytes >= 0 {
			b.ReportMetric(c.Bytes, "bytes/commit")
		}
		b.ReportMetric(c.FreelistBytes, "fl-bytes/commit")
		if c.AllocTime > 0 {
			b.ReportMetric(float64(c.AllocTime)/1e3, "alloc-us/commit")
		}
		if c.SpillTime > 0 {
			b.ReportMetric(float64(c.SpillTime)/1e3, "spill-us/commit")
		}
		b.ReportMetric(float64(r.FreePages), "free-pages")
		b.ReportMetric(float64(r.OpenTime)/1e6, "open-ms")
		if r.ColdOpenTime >= 0 {
			b.ReportMetric(float64(r.ColdOpenTime)/1e6, "cold-open-ms")
		}
		b.ReportMetric(float64(r.FileSize)/1e6, "file-MB")
		b.ReportMetric(float64(r.LiveBytes)/1e6, "live-MB")
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	})
	if len(results) > 0 {
		var sb strings.Builder
		if err := WriteFragmentedTable(&sb, results); err != nil {
			b.Fatal(err)
		}
		// Printed, not logged: the log of a parent benchmark shows only
		// with -v, and this table is the point of the run.
		fmt.Printf("\nFragmented: %.1f MB of keys and values loaded, %.0f%% deleted, %d commits of %d ops measured\n\n%s\n",
			float64(run.Bytes)/1e6, run.Delete*100, run.Commits, run.Config.OpsPerCommit, sb.String())
	}
}

// TestFragmented runs a small fragmented workload on every engine and checks
// that the engines end with the same keys and file-independent counts, and
// that the measurements are sane.
func TestFragmented(t *testing.T) {
	cfg := DefaultFragmentedConfig()
	cfg.Batch = 500
	cfg.LargeFraction = 0.05
	run := FragmentedRun{Config: cfg, Bytes: 1 << 20, Delete: 0.5, Warmup: 10, Commits: 50, OpenRuns: 1, ColdOpen: true}
	keys := -1
	for _, spec := range Engines {
		t.Run(spec.Name, func(t *testing.T) {
			if err := Available(spec); err != nil {
				t.Skipf("engine not available: %v", err)
			}
			r, err := RunFragmented(spec, filepath.Join(t.TempDir(), "frag.db"), run)
			if err != nil {
				t.Fatal(err)
			}
			if keys < 0 {
				keys = r.Keys
			} else if r.Keys != keys {
				t.Errorf("%d live keys at the end, the first engine had %d", r.Keys, keys)
			}
			c := r.Commits
			if c.N != run.Commits || c.P50 <= 0 || c.P50 > c.P99 || c.P99 > c.Max {
				t.Errorf("latencies of %d commits: p50 %v, p99 %v, max %v", c.N, c.P50, c.P99, c.Max)
			}
			if c.Bytes >= 0 && c.Bytes < float64(cfg.OpsPerCommit) {
				t.Errorf("%.0f bytes written per commit", c.Bytes)
			}
			nofls := strings.HasSuffix(spec.Name, "-nofls")
			if nofls != (c.FreelistBytes == 0) {
				t.Errorf("%.0f freelist bytes per commit", c.FreelistBytes)
			}
			if r.FreePages == 0 || r.OpenTime <= 0 || r.FileSize < r.LiveBytes || r.LiveBytes <= 0 {
				t.Errorf("free pages %d, open %v, file %d bytes, %d live bytes", r.FreePages, r.OpenTime, r.FileSize, r.LiveBytes)
			}
		})
	}
}

// TestSummarizeCommits checks the nearest-rank percentiles.
func TestSummarizeCommits(t *testing.T) {
	samples := make([]CommitSample, 200)
	for i := range samples {
		// 200 down to 1 µs, unsorted on purpose.
		// Writes take a quarter of each commit, except the 5 slowest
		// commits', whose writes take all of it.
		lat := time.Microsecond * time.Duration(200-i)
		wr := lat / 4
		if i < 5 {
			wr = lat
		}
		samples[i] = CommitSample{Latency: lat, WriteTime: wr, Bytes: 4096, FreelistBytes: int64(i % 2 * 4096)}
	}
	s := SummarizeCommits(samples)
	if s.P50 != 100_000 || s.P99 != 198_000 || s.Max != 200_000 {
		t.Errorf("p50 %v, p99 %v, max %v; want 100µs, 198µs, 200µs", s.P50, s.P99, s.Max)
	}
	// Writes: 1..195 µs quartered, then 196..200 µs whole; the 198th of
	// them is 198 µs. The rest: 0 five times, then 0.75 × 1..195 µs; the
	// 198th is 0.75 × 193 µs.
	if s.WriteP99 != 198_000 || s.RestP99 != 144_750 {
		t.Errorf("write p99 %v, rest p99 %v; want 198µs, 144.75µs", s.WriteP99, s.RestP99)
	}
	if s.Bytes != 4096 || s.FreelistBytes != 2048 || s.FreelistBytesP50 != 0 || s.FreelistBytesMax != 4096 {
		t.Errorf("bytes %v, freelist mean %v p50 %v max %v", s.Bytes, s.FreelistBytes, s.FreelistBytesP50, s.FreelistBytesMax)
	}
	if s.MajorFaults != 0 || s.Faulting != 0 || s.P99Cached != s.P99 {
		t.Errorf("no faults: mean %v, faulting %v, p99 cached %v", s.MajorFaults, s.Faulting, s.P99Cached)
	}
	// The 10 slowest commits waited on faults (2 each): the p99 of the
	// other 190 (1 to 190 µs) is their 189th, 189 µs.
	for i := 0; i < 10; i++ {
		samples[i].MajorFaults = 2
	}
	s = SummarizeCommits(samples)
	if s.MajorFaults != 0.1 || s.Faulting != 0.05 || s.P99Cached != 189_000 {
		t.Errorf("faults: mean %v, faulting %v, p99 cached %v; want 0.1, 0.05, 189µs", s.MajorFaults, s.Faulting, s.P99Cached)
	}
	if got := SummarizeCommits([]CommitSample{{Latency: 5, Bytes: -1, MajorFaults: -1}}); got.P50 != 5 || got.P99 != 5 || got.Bytes != -1 || got.MajorFaults != -1 {
		t.Errorf("one sample without bytes: %+v", got)
	}
}

// mapEngine is an Engine over a Go map, for checking the workload's own
// bookkeeping without a database.
type mapEngine struct{ m map[string]int }

func (e *mapEngine) PutBatch(n int, kv func(int) ([]byte, []byte)) error {
	for i := 0; i < n; i++ {
		k, v := kv(i)
		e.m[string(k)] = len(v)
	}
	return nil
}

func (e *mapEngine) Apply(ops []Op) error {
	for _, op := range ops {
		if op.Delete {
			delete(e.m, string(op.Key))
		} else {
			e.m[string(op.Key)] = len(op.Value)
		}
	}
	return nil
}

func (e *mapEngine) Get(key []byte) (bool, error) { _, ok := e.m[string(key)]; return ok, nil }

func (e *mapEngine) GetInTx(n int, key func(int) []byte) (int, error) {
	found := 0
	for i := 0; i < n; i++ {
		if _, ok := e.m[string(key(i))]; ok {
			found++
		}
	}
	return found, nil
}

func (e *mapEngine) Scan() (int, error) { return len(e.m), nil }
func (e *mapEngine) ScanRead() (int, uint64, error) {
	return 0, 0, errors.New("mapEngine: ScanRead not used")
}
func (e *mapEngine) FileSize() (int64, error) { return 0, nil }
func (e *mapEngine) Stats() EngineStats       { return EngineStats{} }
func (e *mapEngine) Close() error             { return nil }

// TestFragmentedWorkload checks the workload's count and bytes of live keys
// against a map that applied the same operations, through every phase and a
// change of mix, and that the same seed gives the same operations.
func TestFragmentedWorkload(t *testing.T) {
	cfg := DefaultFragmentedConfig()
	cfg.Seed = *flagSeed
	cfg.Batch = 300
	cfg.LargeFraction = 0.05
	cfg.LargeMax = 100 << 10 // past 0x7fff, where sizes are kept in units of 8
	t.Logf("seed %d (-seed)", cfg.Seed)
	run := func() (*mapEngine, *FragmentedWorkload) {
		e := &mapEngine{m: map[string]int{}}
		w, err := NewFragmentedWorkload(cfg)
		if err != nil {
			t.Fatal(err)
		}
		check := func(phase string) {
			t.Helper()
			var bytes int64
			for k, n := range e.m {
				bytes += int64(len(k) + n)
			}
			if len(e.m) != w.Live() || bytes != w.LiveBytes() {
				t.Fatalf("after %s: map has %d keys, %d bytes; workload says %d, %d", phase, len(e.m), bytes, w.Live(), w.LiveBytes())
			}
		}
		if err := w.Grow(e, 1<<20); err != nil {
			t.Fatal(err)
		}
		check("Grow")
		if err := w.Fragment(e, 0.5); err != nil {
			t.Fatal(err)
		}
		check("Fragment")
		for i := 0; i < 200; i++ {
			if err := e.Apply(w.NextCommit()); err != nil {
				t.Fatal(err)
			}
		}
		check("steady commits")
		if err := w.SetMix(2*cfg.Batch, 0.2, 0.3); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if err := e.Apply(w.NextCommit()); err != nil {
				t.Fatal(err)
			}
		}
		check("commits after SetMix")
		return e, w
	}
	e1, w1 := run()
	e2, w2 := run()
	if w1.LiveBytes() != w2.LiveBytes() || len(e1.m) != len(e2.m) {
		t.Fatalf("two runs of seed %d differ", cfg.Seed)
	}
	for k, n := range e1.m {
		if e2.m[k] != n {
			t.Fatalf("two runs of seed %d differ at key %x", cfg.Seed, k)
		}
	}
	if err := w1.SetMix(0, 0.5, 0.5); err == nil {
		t.Error("SetMix(0, ...) = nil; want an error")
	}
}

// TestSizeCode checks that value sizes survive their 16-bit encoding.
func TestSizeCode(t *testing.T) {
	for _, size := range []int{0, 1, 100, 0x7ffe, 0x7fff &^ 7, 0x8000, 64 << 10, maxValueSize} {
		if code := sizeCode(size); code == 0 || sizeOf(code) != size {
			t.Errorf("size %d: code %#x decodes to %d", size, code, sizeOf(code))
		}
	}
}

// TestFragmentedHotSet checks SetHot: the share of operations on hot keys,
// that a hot key is one of a contiguous range, that inserts, updates and
// deletes all follow it, that HotKeys lists exactly the live hot keys, and
// that the live count and bytes still match a map of the operations.
func TestFragmentedHotSet(t *testing.T) {
	cfg := DefaultFragmentedConfig()
	cfg.Seed = *flagSeed
	cfg.Batch = 500
	t.Logf("seed %d (-seed)", cfg.Seed)
	e := &mapEngine{m: map[string]int{}}
	w, err := NewFragmentedWorkload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Grow(e, 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := w.Fragment(e, 0.2); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]float64{{0.1, 0}, {0, 0.9}, {1, 0.9}, {-0.1, 0.9}, {0.1, 1.1}} {
		if err := w.SetHot(bad[0], bad[1]); err == nil {
			t.Errorf("SetHot(%v, %v) = nil; want an error", bad[0], bad[1])
		}
	}
	keys, share := 0.1, 0.9
	if err := w.SetHot(keys, share); err != nil {
		t.Fatal(err)
	}
	below := uint64(keys * (1 << 64))
	hot := func(k []byte) bool { return binary.BigEndian.Uint64(k) < below }
	// Each kind of operation is counted apart: a workload that sent only
	// its inserts (or only its deletes) to the hot set would show.
	var n, inHot [3]int // puts of new keys, updates, deletes
	for i := 0; i < 2000; i++ {
		for _, op := range w.NextCommit() {
			_, existed := e.m[string(op.Key)]
			kind := 0
			switch {
			case op.Delete:
				kind = 2
			case existed:
				kind = 1
			}
			n[kind]++
			if hot(op.Key) {
				inHot[kind]++
			}
		}
		if err := e.Apply(w.ops); err != nil {
			t.Fatal(err)
		}
	}
	for kind, name := range []string{"inserts", "updates", "deletes"} {
		got := float64(inHot[kind]) / float64(n[kind])
		// ~7,000 operations of each kind: the share's standard deviation
		// is ~0.004.
		if math.Abs(got-share) > 0.03 {
			t.Errorf("%d of %d %s hit the hot set (%.3f), want ~%v", inHot[kind], n[kind], name, got, share)
		}
	}
	var bytes int64
	liveHot := 0
	for k, size := range e.m {
		bytes += int64(len(k) + size)
		if hot([]byte(k)) {
			liveHot++
		}
	}
	if len(e.m) != w.Live() || bytes != w.LiveBytes() {
		t.Fatalf("map has %d keys, %d bytes; workload says %d, %d", len(e.m), bytes, w.Live(), w.LiveBytes())
	}
	listed := 0
	err = w.HotKeys(func(k []byte) error {
		if _, ok := e.m[string(k)]; !ok || !hot(k) {
			return fmt.Errorf("HotKeys listed %x: live %v, hot %v", k, ok, hot(k))
		}
		listed++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if listed != liveHot || liveHot == 0 {
		t.Errorf("HotKeys listed %d keys; %d live keys are hot", listed, liveHot)
	}
	if err := w.SetHot(0, 0); err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i := 0; i < 500; i++ {
		for _, op := range w.NextCommit() {
			if hot(op.Key) {
				hits++
			}
		}
		if err := e.Apply(w.ops); err != nil {
			t.Fatal(err)
		}
	}
	if got := float64(hits) / 5000; got > 0.2 {
		t.Errorf("after SetHot(0, 0), %.3f of the operations hit the old hot set, want ~%v", got, keys)
	}
}
