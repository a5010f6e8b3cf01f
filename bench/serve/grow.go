package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// growFigures is what the grow scenario measures of one engine.
type growFigures struct {
	ingest                        time.Duration // writing growBytes of values
	keys                          int
	sizeGrown, sizeFragmented     int64 // DbSize after the writes, after deletes and compaction
	inUseFragmented               int64 // DbSizeInUse after them
	small, large                  result
	commitMean, commitP99         float64 // backend commit seconds while measured, from /metrics
	commits                       int64
	defrag                        time.Duration
	inUseMeasured                 int64 // DbSizeInUse after the measurement, compacted
	sizeDefragged, inUseDefragged int64
	restart                       time.Duration // SIGTERM, start, serving again
	anon, file, heap, peakAnon    int64         // memory at the end of the measurement; peak RssAnon over the run
}

// grow is the seed's scenario at scale (issue 19): one member's backend
// is grown to growBytes of values (sizes spread over 4-60 KiB, 16
// clients), fragmented (every other key deleted, then a physical
// compaction, which frees their pages all over the file), and then
// measured for d each: 256-byte puts from 1 client and values of 4-60 KiB
// from 16 clients (the commits' latency from the member's own
// etcd_disk_backend_commit_duration_seconds), the member's memory, then,
// after a compaction to the newest revision, one defrag, and a restart. Memory is sampled through the run into
// csvPrefix.<engine>.csv for ../cmd/raftmemplot.
func grow(engines []string, growBytes int64, d time.Duration, csvPrefix, dir string) error {
	var figs []growFigures
	for _, engine := range engines {
		f, err := growOne(engine, growBytes, d, csvPrefix, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", engine, err)
		}
		figs = append(figs, f)
	}
	mib := func(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
	ms := func(s float64) string { return fmt.Sprintf("%.2f ms", s*1000) }
	rows := []struct {
		name string
		f    func(g growFigures) string
	}{
		{"keys written", func(g growFigures) string { return fmt.Sprint(g.keys) }},
		{"ingest of the values", func(g growFigures) string {
			return fmt.Sprintf("%.0f s (%.0f MiB/s)", g.ingest.Seconds(), float64(growBytes)/(1<<20)/g.ingest.Seconds())
		}},
		{"file after the writes", func(g growFigures) string { return mib(g.sizeGrown) }},
		{"file / in use after deletes and compaction", func(g growFigures) string {
			return mib(g.sizeFragmented) + " / " + mib(g.inUseFragmented)
		}},
		{"256 B puts, 1 client: puts/s", func(g growFigures) string { return fmt.Sprintf("%.0f", g.small.perSec()) }},
		{"256 B puts, 1 client: p50 / p99", func(g growFigures) string {
			return fmt.Sprintf("%.2f / %.2f ms", g.small.pct(50), g.small.pct(99))
		}},
		{"4-60 KiB puts, 16 clients: puts/s", func(g growFigures) string { return fmt.Sprintf("%.0f", g.large.perSec()) }},
		{"4-60 KiB puts, 16 clients: p50 / p99", func(g growFigures) string {
			return fmt.Sprintf("%.2f / %.2f ms", g.large.pct(50), g.large.pct(99))
		}},
		{"backend commits while measured", func(g growFigures) string { return fmt.Sprint(g.commits) }},
		{"backend commit: mean / p99 (bucket bound)", func(g growFigures) string { return ms(g.commitMean) + " / " + ms(g.commitP99) }},
		{"RssAnon / RssFile / Go heap at the end", func(g growFigures) string {
			return mib(g.anon) + " / " + mib(g.file) + " / " + mib(g.heap)
		}},
		{"peak RssAnon", func(g growFigures) string { return mib(g.peakAnon) }},
		{"in use after the measurement, compacted", func(g growFigures) string { return mib(g.inUseMeasured) }},
		{"defrag", func(g growFigures) string { return fmt.Sprintf("%.1f s", g.defrag.Seconds()) }},
		{"file / in use after defrag", func(g growFigures) string { return mib(g.sizeDefragged) + " / " + mib(g.inUseDefragged) }},
		{"restart to serving", func(g growFigures) string { return fmt.Sprintf("%.2f s", g.restart.Seconds()) }},
	}
	fmt.Printf("| %s, 1 member |", mib(growBytes)+" grown")
	for _, e := range engines {
		fmt.Printf(" %s |", e)
	}
	fmt.Print("\n|---|")
	for range engines {
		fmt.Print("---:|")
	}
	fmt.Println()
	for _, r := range rows {
		fmt.Printf("| %s |", r.name)
		for _, g := range figs {
			fmt.Printf(" %s |", r.f(g))
		}
		fmt.Println()
	}
	return nil
}

func growOne(engine string, growBytes int64, d time.Duration, csvPrefix, dir string) (growFigures, error) {
	var f growFigures
	c, err := startCluster(engine, 1, dir, 3*growBytes+(1<<30))
	if err != nil {
		return f, err
	}
	defer c.removeData() // after stop: only the members' own directories
	defer c.stop()
	ep := c.specs[0].Client
	cli, err := newClient(ep)
	if err != nil {
		return f, err
	}
	defer cli.Close()
	if _, err := c.leader(cli); err != nil {
		return f, err
	}

	// Memory, sampled through the run; the member's pid changes at the
	// restart, so each sample looks it up.
	var pid atomic.Int64
	pid.Store(int64(c.procs[0].Process.Pid))
	samples := sampleMemory(func() int { return int(pid.Load()) }, ep, 500*time.Millisecond)
	sampling := true
	defer func() {
		if sampling {
			samples()
		}
	}()

	// Grow: values of 4-60 KiB under keys g000000000..., 16 clients.
	t0 := time.Now()
	var written atomic.Int64
	var next atomic.Int64
	if err := parallel(ep, 16, func(cli *clientv3.Client, r *rand.Rand) (bool, error) {
		if written.Load() >= growBytes {
			return false, nil
		}
		v := randomValue(r)
		key := fmt.Sprintf("g%09d", next.Add(1)-1)
		if err := in30s(func(x context.Context) error { _, err := cli.Put(x, key, v); return err }); err != nil {
			return false, err
		}
		written.Add(int64(len(v)))
		return true, nil
	}); err != nil {
		return f, fmt.Errorf("grow: %w", err)
	}
	f.ingest, f.keys = time.Since(t0), int(next.Load())
	fmt.Fprintf(os.Stderr, "%s: %d keys, %d MiB of values in %.0f s\n", engine, f.keys, written.Load()>>20, f.ingest.Seconds())
	var st *clientv3.StatusResponse
	status := func() error {
		return in30s(func(x context.Context) (err error) { st, err = cli.Status(x, ep); return err })
	}
	if err := status(); err != nil {
		return f, err
	}
	f.sizeGrown = st.DbSize

	// Fragment: every other key deleted, then compacted away.
	var del atomic.Int64
	if err := parallel(ep, 16, func(cli *clientv3.Client, _ *rand.Rand) (bool, error) {
		i := del.Add(2) - 2
		if i >= int64(f.keys) {
			return false, nil
		}
		err := in30s(func(x context.Context) error { _, err := cli.Delete(x, fmt.Sprintf("g%09d", i)); return err })
		return err == nil, err
	}); err != nil {
		return f, fmt.Errorf("fragment: %w", err)
	}
	if err := compactAll(cli, "fragmented"); err != nil {
		return f, err
	}
	if err := status(); err != nil {
		return f, err
	}
	f.sizeFragmented, f.inUseFragmented = st.DbSize, st.DbSizeInUse
	fmt.Fprintf(os.Stderr, "%s: fragmented: %d MiB file, %d MiB in use\n", engine, f.sizeFragmented>>20, f.inUseFragmented>>20)

	// Measure on the fragmented file.
	h0, err := commitHistogram(ep)
	if err != nil {
		return f, err
	}
	small := strings.Repeat("s", 256)
	if f.small, err = drive([]string{ep}, 1, d, func(c *clientv3.Client, r *rand.Rand) error {
		return in30s(func(x context.Context) error {
			_, err := c.Put(x, fmt.Sprintf("small%06d", r.IntN(100000)), small)
			return err
		})
	}); err != nil {
		return f, err
	}
	if f.large, err = drive([]string{ep}, 16, d, func(c *clientv3.Client, r *rand.Rand) error {
		return in30s(func(x context.Context) error {
			_, err := c.Put(x, fmt.Sprintf("g%09d", r.IntN(f.keys)), randomValue(r))
			return err
		})
	}); err != nil {
		return f, err
	}
	h1, err := commitHistogram(ep)
	if err != nil {
		return f, err
	}
	f.commits, f.commitMean, f.commitP99 = h1.since(h0)
	if f.anon, f.file, err = procMem(int(pid.Load())); err != nil {
		return f, err
	}
	if f.heap, err = goHeap(ep); err != nil {
		return f, err
	}
	fmt.Fprintf(os.Stderr, "%s: measured: %.0f small puts/s, %.0f large puts/s\n", engine, f.small.perSec(), f.large.perSec())

	// Compact away what the measurement wrote over (the engines did not
	// write the same amount), then defragment, then restart.
	if err := compactAll(cli, "measured"); err != nil {
		return f, err
	}
	if err := status(); err != nil {
		return f, err
	}
	f.inUseMeasured = st.DbSizeInUse
	t0 = time.Now()
	x, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	_, err = cli.Defragment(x, ep)
	cancel()
	if err != nil {
		return f, fmt.Errorf("defragment: %w", err)
	}
	f.defrag = time.Since(t0)
	if err := status(); err != nil {
		return f, err
	}
	f.sizeDefragged, f.inUseDefragged = st.DbSize, st.DbSizeInUse
	c.stop()
	t0 = time.Now()
	ready, err := c.spawn(0)
	if err != nil {
		return f, err
	}
	select {
	case ok := <-ready:
		if !ok {
			return f, fmt.Errorf("did not serve after a restart")
		}
	case <-time.After(5 * time.Minute):
		return f, fmt.Errorf("did not serve in 5 minutes after a restart")
	}
	f.restart = time.Since(t0)
	pid.Store(int64(c.procs[0].Process.Pid))
	time.Sleep(time.Second) // a few samples after the restart

	mem := samples()
	sampling = false
	for _, s := range mem {
		f.peakAnon = max(f.peakAnon, s.anon)
	}
	return f, writeMemCSV(csvPrefix, engine, mem)
}

// compactAll puts key (to learn the newest revision) and compacts the
// store to that revision, physically.
func compactAll(cli *clientv3.Client, key string) error {
	var p *clientv3.PutResponse
	if err := in30s(func(x context.Context) (err error) { p, err = cli.Put(x, key, "x"); return err }); err != nil {
		return err
	}
	x, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := cli.Compact(x, p.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// in30s runs f with a context that ends in 30 s.
func in30s(f func(x context.Context) error) error {
	x, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return f(x)
}

// randomValue is 4-60 KiB of random bytes.
func randomValue(r *rand.Rand) string {
	b := make([]byte, 4<<10+r.IntN(56<<10))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return string(b)
}

// parallel runs op from n clients until one returns false or an error.
func parallel(ep string, n int, op func(c *clientv3.Client, r *rand.Rand) (bool, error)) error {
	cs, closeAll, err := clients(n, []string{ep})
	if err != nil {
		return err
	}
	defer closeAll()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 19))
			for {
				more, err := op(c, r)
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					return
				}
				if !more {
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// histogram is a Prometheus histogram read from /metrics: cumulative
// counts by upper bound, the sum and the count.
type histogram struct {
	bounds []float64
	counts []int64
	sum    float64
	count  int64
}

// commitHistogram reads etcd_disk_backend_commit_duration_seconds.
func commitHistogram(addr string) (histogram, error) {
	const name = "etcd_disk_backend_commit_duration_seconds"
	var h histogram
	x, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(x, "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		return h, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return h, err
	}
	type bucket struct {
		le float64
		n  int64
	}
	var bs []bucket
	for _, line := range strings.Split(string(body), "\n") {
		metric, v, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(metric, name) {
			continue
		}
		val, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return h, fmt.Errorf("%s: %w", line, err)
		}
		switch {
		case metric == name+"_sum":
			h.sum = val
		case metric == name+"_count":
			h.count = int64(val)
		case strings.HasPrefix(metric, name+`_bucket{le="`):
			le := strings.TrimSuffix(strings.TrimPrefix(metric, name+`_bucket{le="`), `"}`)
			bound := math.Inf(1)
			if le != "+Inf" {
				if bound, err = strconv.ParseFloat(le, 64); err != nil {
					return h, fmt.Errorf("%s: %w", line, err)
				}
			}
			bs = append(bs, bucket{bound, int64(val)})
		}
	}
	if len(bs) == 0 {
		return h, fmt.Errorf("%s/metrics has no %s", addr, name)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, b := range bs {
		h.bounds, h.counts = append(h.bounds, b.le), append(h.counts, b.n)
	}
	return h, nil
}

// since is the commits between h0 and h, their mean, and the upper bound
// of the bucket that holds their 99th percentile.
func (h histogram) since(h0 histogram) (n int64, mean, p99 float64) {
	n = h.count - h0.count
	if n <= 0 || len(h.counts) != len(h0.counts) {
		return 0, 0, 0
	}
	mean = (h.sum - h0.sum) / float64(n)
	want := int64(math.Ceil(0.99 * float64(n)))
	for i := range h.counts {
		if h.counts[i]-h0.counts[i] >= want {
			return n, mean, h.bounds[i]
		}
	}
	return n, mean, math.Inf(1)
}
