package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// memSample is one sample of the leader's memory, in bytes.
type memSample struct {
	t               time.Duration
	heap, anon, rss int64
}

// procMem reads a process's RssAnon and RssFile from /proc.
func procMem(pid int) (anon, file int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "RssAnon" && name != "RssFile") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if name == "RssAnon" {
			anon = kb << 10
		} else {
			file = kb << 10
		}
	}
	return anon, file, sc.Err()
}

// goHeap reads go_memstats_heap_inuse_bytes from a member's /metrics.
func goHeap(addr string) (int64, error) {
	x, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(x, "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("%s/metrics has no go_memstats_heap_inuse_bytes", addr)
}

// largeValues is the seed's scenario: on a 3-member cluster with one
// follower stopped, a 1 MiB value is rewritten updates times (compacted
// every 100 updates, as an auto-compacting deployment would), while the
// leader's memory is sampled; the samples go to csvPrefix.<engine>.csv
// (seconds, heap, RssAnon, RssFile bytes: cmd/raftmemplot's format).
func largeValues(engine, dir string, updates int, csvPrefix string) ([]memSample, error) {
	c, err := startCluster(engine, 3, dir, 8<<30)
	if err != nil {
		return nil, err
	}
	defer c.removeData() // after stop: only the members' own directories
	defer c.stop()
	cli, err := newClient(c.endpoints()...)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	lead, err := c.leader(cli)
	if err != nil {
		return nil, err
	}
	c.kill((lead + 1) % 3) // a follower stops
	one, err := newClient(c.specs[lead].Client)
	if err != nil {
		return nil, err
	}
	defer one.Close()
	pid := c.procs[lead].Process.Pid
	stop := sampleMemory(func() int { return pid }, c.specs[lead].Client, 250*time.Millisecond)
	value := strings.Repeat("x", 1<<20)
	var werr error
	for i := 0; i < updates && werr == nil; i++ {
		x, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var rev int64
		p, err := one.Put(x, "big", value)
		if err == nil {
			rev = p.Header.Revision
			if i%100 == 99 {
				_, err = one.Compact(x, rev)
			}
		}
		cancel()
		if err != nil {
			werr = fmt.Errorf("%s: update %d: %w", engine, i, err)
		}
	}
	time.Sleep(time.Second) // a last few samples
	samples := stop()
	if err := writeMemCSV(csvPrefix, engine, samples); err != nil {
		return samples, err
	}
	return samples, werr
}

// sampleMemory samples the memory of the process pid() (its /metrics at
// addr for the Go heap) every interval until the function it returns is
// called, which returns the samples.
func sampleMemory(pid func() int, addr string, interval time.Duration) (stop func() []memSample) {
	done := make(chan struct{})
	samplesc := make(chan []memSample)
	start := time.Now()
	go func() {
		var out []memSample
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			anon, file, err1 := procMem(pid())
			heap, err2 := goHeap(addr)
			if err1 == nil && err2 == nil {
				out = append(out, memSample{t: time.Since(start), heap: heap, anon: anon, rss: file})
			}
			select {
			case <-done:
				samplesc <- out
				return
			case <-tick.C:
			}
		}
	}()
	return func() []memSample { close(done); return <-samplesc }
}

// writeMemCSV writes samples to prefix.<engine>.csv (seconds, heap,
// RssAnon, RssFile bytes: cmd/raftmemplot's format); nothing if prefix is
// empty.
func writeMemCSV(prefix, engine string, samples []memSample) error {
	if prefix == "" {
		return nil
	}
	var b strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&b, "%.3f,%d,%d,%d\n", s.t.Seconds(), s.heap, s.anon, s.rss)
	}
	return os.WriteFile(prefix+"."+engine+".csv", []byte(b.String()), 0o644)
}
