package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quiverdb/quiver/bench"
	"github.com/schollz/progressbar/v3"
)

// Result is the measurement of one engine at one size.
type Result struct {
	Engine string  `json:"engine"`
	Target float64 `json:"target_gib"`
	// Grow is how the database grew: "mixed" or "bulk" (see -grow).
	Grow string `json:"grow,omitempty"`
	// Label names the run (-label), so that cmd/capacityplot draws runs of
	// the same engine as lines of their own.
	Label string `json:"label,omitempty"`
	// HotKeys and HotOps are set on the row measured with a hot set
	// (-hot): HotOps of the measured operations went to the HotKeys
	// fraction of the key space, whose pages were read in first
	// (WarmTime). The growth is the same as the uniform row's before it.
	HotKeys  float64       `json:"hot_keys,omitempty"`
	HotOps   float64       `json:"hot_ops,omitempty"`
	WarmTime time.Duration `json:"warm_ns,omitempty"`
	// FragmentTime is the time of the bulk mode's delete pass.
	FragmentTime time.Duration `json:"fragment_ns,omitempty"`
	// FlushTime is the time the growth's unsynced writes took to reach
	// the disk before the measurement (fsync of the file).
	FlushTime time.Duration `json:"flush_ns,omitempty"`
	// GaveUp is set when growing to Target took longer than the budget;
	// FileSize is then the size reached and the other fields are zero.
	GaveUp    bool          `json:"gave_up,omitempty"`
	GrowTime  time.Duration `json:"grow_ns"`
	FileSize  int64         `json:"file_bytes"`
	LiveBytes int64         `json:"live_bytes"`
	Keys      int           `json:"keys"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
	// MajorFaults is the mean page faults a measured commit waited on the
	// device for (a file larger than the page cache), Faulting the
	// fraction of commits with any, P99Cached the p99 of the others.
	MajorFaults float64       `json:"major_faults,omitempty"`
	Faulting    float64       `json:"faulting,omitempty"`
	P99Cached   time.Duration `json:"p99_cached_ns,omitempty"`
	// WriteP99 is the p99 of the time a measured commit spent in write
	// and sync calls, RestP99 the p99 of the rest of its latency.
	WriteP99 time.Duration `json:"write_p99_ns,omitempty"`
	RestP99  time.Duration `json:"rest_p99_ns,omitempty"`
	// Alloc is the mean time per commit spent allocating (quiver) or
	// spilling, allocation included (bbolt).
	Alloc        time.Duration `json:"alloc_ns"`
	CommitBytes  float64       `json:"commit_bytes"`
	FreelistB    float64       `json:"freelist_bytes"`
	OpenTime     time.Duration `json:"open_ns"`
	PeakRSS      int64         `json:"peak_rss_bytes"`
	FreePages    int           `json:"free_pages"`
	MeasuredTime time.Duration `json:"measure_ns"`
}

type options struct {
	engines        []string
	sizes          []float64
	dir            string
	commits        int
	warmup         int
	budget         time.Duration
	seed           uint64
	out            string
	child          bool
	progress       bool
	deleteFraction float64
	grow           string
	label          string
	bulkOps        int
	fragment       float64
	prefetch       int
	hotKeys        float64
	hotOps         float64
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "capacity:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("capacity", flag.ContinueOnError)
	var o options
	engines := fs.String("engines", "quiver-hashmap,bbolt-array", "comma-separated engines (rows of bench.Engines)")
	sizes := fs.String("sizes", "1,4,16,64", "comma-separated target sizes in GiB, ascending")
	fs.StringVar(&o.dir, "dir", os.TempDir(), "directory for the database files")
	fs.IntVar(&o.commits, "commits", 2000, "measured small commits at each size")
	fs.IntVar(&o.warmup, "warmup", 100, "unmeasured commits before them")
	fs.DurationVar(&o.budget, "budget", 30*time.Minute, "the longest an engine may take to grow from one size to the next")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workload")
	fs.StringVar(&o.out, "out", "", "append JSON lines of the results to this file")
	fs.BoolVar(&o.child, "child", false, "run one engine in this process (used by the parent)")
	fs.BoolVar(&o.progress, "progress", true, "show a progress bar on stderr")
	fs.Float64Var(&o.deleteFraction, "delete", 0.25, "fraction of each growth step's operations that delete (mixed growth)")
	fs.StringVar(&o.grow, "grow", "mixed", "how to grow: mixed (commits of 1000 operations: inserts, updates and -delete deletes) or bulk (insert-only commits of -bulk-ops random keys, then -fragment of the live keys deleted in commits of 1000, before each measurement)")
	fs.StringVar(&o.label, "label", "", "a name for this run, written with its results (cmd/capacityplot draws each label as a line of its own)")
	fs.IntVar(&o.bulkOps, "bulk-ops", 50000, "inserts per growth commit (bulk growth)")
	fs.Float64Var(&o.fragment, "fragment", 0.2, "fraction of the live keys deleted after each bulk growth step")
	fs.IntVar(&o.prefetch, "prefetch", 16, "goroutines that look up a growth commit's keys before it, so that its page faults overlap (0: none); measured commits never prefetch")
	hot := fs.String("hot", "0.1,0.9", "after each uniform measurement, measure again with a hot set: `keys,ops`, the fraction of the key space (one contiguous range, read into the page cache first) that takes the fraction ops of the measured operations; empty: uniform only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.engines = strings.Split(*engines, ",")
	for _, s := range strings.Split(*sizes, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("bad size %q: want a positive number of GiB", s)
		}
		if n := len(o.sizes); n > 0 && v <= o.sizes[n-1] {
			return fmt.Errorf("sizes must ascend: %v after %v", v, o.sizes[n-1])
		}
		o.sizes = append(o.sizes, v)
	}
	if o.commits < 1 || o.deleteFraction < 0 || o.deleteFraction >= 0.5 {
		return errors.New("want -commits >= 1 and -delete in [0, 0.5)")
	}
	if o.grow != "mixed" && o.grow != "bulk" {
		return fmt.Errorf("-grow %q: want mixed or bulk", o.grow)
	}
	if o.bulkOps < 1 || o.fragment < 0 || o.fragment >= 1 {
		return errors.New("want -bulk-ops >= 1 and -fragment in [0, 1)")
	}
	if *hot != "" {
		k, op, ok := strings.Cut(*hot, ",")
		var err1, err2 error
		o.hotKeys, err1 = strconv.ParseFloat(strings.TrimSpace(k), 64)
		o.hotOps, err2 = strconv.ParseFloat(strings.TrimSpace(op), 64)
		if !ok || err1 != nil || err2 != nil || o.hotKeys <= 0 || o.hotKeys >= 1 || o.hotOps <= 0 || o.hotOps > 1 {
			return fmt.Errorf("-hot %q: want keys,ops with keys in (0, 1) and ops in (0, 1], e.g. 0.1,0.9", *hot)
		}
	}
	for _, name := range o.engines {
		if _, err := engine(name); err != nil {
			return err
		}
	}
	if o.child {
		if len(o.engines) != 1 {
			return errors.New("-child runs exactly one engine")
		}
		return runChild(o)
	}
	return runParent(o, args)
}

func engine(name string) (bench.EngineSpec, error) {
	for _, e := range bench.Engines {
		if e.Name == name {
			return e, nil
		}
	}
	var names []string
	for _, e := range bench.Engines {
		names = append(names, e.Name)
	}
	return bench.EngineSpec{}, fmt.Errorf("unknown engine %q (have %s)", name, strings.Join(names, ", "))
}

const gib = 1 << 30

// runParent checks the disk, runs one child per engine and prints the
// table.
func runParent(o options, args []string) error {
	// Growth stops at the first commit past the size: a file overshoots
	// it by one growth step or one commit, far less than this margin.
	need := int64(o.sizes[len(o.sizes)-1]*gib) + 2*gib
	if free, err := freeBytes(o.dir); err == nil && free < need {
		return fmt.Errorf("%s has %.1f GiB free; the largest size needs about %.1f GiB: lower -sizes or choose -dir", o.dir, float64(free)/gib, float64(need)/gib)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var all []Result
	for _, name := range o.engines {
		cmd := exec.Command(self, append(childArgs(args), "-child", "-engines", name)...)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r Result
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return fmt.Errorf("%s: bad result line %q: %w", name, sc.Text(), err)
			}
			all = append(all, r)
			if o.out != "" {
				if err := appendLine(o.out, sc.Bytes()); err != nil {
					return err
				}
			}
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	printTable(os.Stdout, all)
	return nil
}

// childArgs drops -engines (and its value) from the parent's arguments.
func childArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-engines" || a == "--engines":
			i++
		case strings.HasPrefix(a, "-engines=") || strings.HasPrefix(a, "--engines="):
		default:
			out = append(out, a)
		}
	}
	return out
}

func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(append([]byte(nil), line...), '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// capacityConfig is the fragmented workload with values large enough to
// reach tens of GiB in reasonable time: ~200-byte values, 5% of them 4 KiB
// to 128 KiB (about 2 KiB a key on average), 1000 operations a growth
// commit.
func capacityConfig(seed uint64) bench.FragmentedConfig {
	c := bench.DefaultFragmentedConfig()
	c.Seed = seed
	c.SmallValue = 200
	c.LargeFraction = 0.05
	c.LargeMin, c.LargeMax = 4<<10, 128<<10
	return c
}

// runChild grows one engine's database through the sizes, printing a JSON
// line per size on stdout.
func runChild(o options) error {
	spec, _ := engine(o.engines[0])
	dir, err := os.MkdirTemp(o.dir, "quiver-capacity-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, spec.Name+".db")

	cfg := capacityConfig(o.seed)
	w, err := bench.NewFragmentedWorkload(cfg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for _, target := range o.sizes {
		r := Result{Engine: spec.Name, Target: target, Grow: o.grow, Label: o.label}
		goal := int64(target * gib)
		e, err := spec.Open(path, bench.OpenOptions{NoSync: true})
		if err != nil {
			return err
		}
		// The bar counts this size's growth, so that its rate is the
		// growth rate (not the bytes of the sizes before over a second).
		base, err := e.FileSize()
		if err != nil {
			return err
		}
		base = min(base, goal)
		grower := prefetcher{e, o.prefetch}
		bar := newBar(o.progress, max(goal-base, 1), fmt.Sprintf("%s → %g GiB", spec.Name, target))
		start := time.Now()
		mix := w.SetMix(cfg.Batch, 1-2*o.deleteFraction, o.deleteFraction)
		if o.grow == "bulk" {
			mix = w.SetMix(o.bulkOps, 1, 0)
		}
		if mix != nil {
			return mix
		}
		err = withProcs(o.prefetch, func() error {
			for {
				size, err := e.FileSize()
				if err != nil {
					return err
				}
				_ = bar.Set64(min(size, goal) - base)
				if size >= goal {
					break
				}
				if time.Since(start) > o.budget {
					r.GaveUp, r.FileSize = true, size
					break
				}
				step := 16 // mixed commits between size checks
				if o.grow == "bulk" {
					step = 1
				}
				for i := 0; i < step; i++ {
					if err := grower.Apply(w.NextCommit()); err != nil {
						return fmt.Errorf("growing: %w", err)
					}
				}
			}
			r.GrowTime = time.Since(start)
			_ = bar.Finish()
			if o.grow == "bulk" && !r.GaveUp {
				// Scatter free pages over the whole file: deletes of random
				// live keys, cfg.Batch a commit.
				start := time.Now()
				if err := w.Fragment(grower, o.fragment); err != nil {
					return fmt.Errorf("fragmenting: %w", err)
				}
				r.FragmentTime = time.Since(start)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := e.Close(); err != nil {
			return err
		}
		// Growth commits do not sync: write their pages back now, so that
		// the measured commits do not wait behind gigabytes of writeback
		// (an fdatasync writes every dirty page of the file).
		start = time.Now()
		if err := syncFile(path); err != nil {
			return err
		}
		r.FlushTime = time.Since(start)
		if r.GaveUp {
			if err := enc.Encode(r); err != nil {
				return err
			}
			return nil
		}
		if err := measure(spec, path, w, o, &r, false); err != nil {
			return err
		}
		r.PeakRSS = peakRSS()
		if err := enc.Encode(r); err != nil {
			return err
		}
		if o.hotKeys > 0 {
			hr := Result{Engine: r.Engine, Target: r.Target, Grow: r.Grow, Label: r.Label, HotKeys: o.hotKeys, HotOps: o.hotOps}
			if err := measure(spec, path, w, o, &hr, true); err != nil {
				return err
			}
			hr.PeakRSS = peakRSS()
			if err := enc.Encode(hr); err != nil {
				return err
			}
		}
	}
	return nil
}

// measure times an open, then o.commits small synced commits, and fills
// in r. With hot, the hot set is read in after the open and the commits'
// operations go to it as -hot says.
func measure(spec bench.EngineSpec, path string, w *bench.FragmentedWorkload, o options, r *Result, hot bool) error {
	start := time.Now()
	e, d, err := bench.TimeOpen(spec, path, bench.OpenOptions{})
	if err != nil {
		return err
	}
	r.OpenTime = d
	fail := func(err error) error {
		e.Close()
		return err
	}
	if err := w.SetMix(10, 0.35, 0.30); err != nil {
		return fail(err)
	}
	if hot {
		if err := w.SetHot(o.hotKeys, o.hotOps); err != nil {
			return fail(err)
		}
		defer w.SetHot(0, 0)
		warm := time.Now()
		if err := withProcs(o.prefetch, func() error { return readIn(e, w, max(o.prefetch, 1)) }); err != nil {
			return fail(fmt.Errorf("reading the hot set in: %w", err))
		}
		r.WarmTime = time.Since(warm)
	}
	samples, err := bench.Steady(e, w, o.warmup, o.commits)
	if err != nil {
		return fail(err)
	}
	s := bench.SummarizeCommits(samples)
	r.P50, r.P99, r.Max = s.P50, s.P99, s.Max
	r.MajorFaults, r.Faulting, r.P99Cached = s.MajorFaults, s.Faulting, s.P99Cached
	r.WriteP99, r.RestP99 = s.WriteP99, s.RestP99
	r.Alloc = s.AllocTime + s.SpillTime
	r.CommitBytes, r.FreelistB = s.Bytes, s.FreelistBytes
	r.FreePages = e.Stats().FreePages
	if r.FileSize, err = e.FileSize(); err != nil {
		return fail(err)
	}
	r.Keys, r.LiveBytes = w.Live(), w.LiveBytes()
	r.MeasuredTime = time.Since(start)
	return e.Close()
}

// syncFile writes the file's dirty pages back (fsync).
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// peakRSS returns the process's peak resident set (VmHWM), or -1.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n << 10
				}
			}
		}
	}
	return -1
}

// bar is a progress bar over bytes, or nothing when progress is off.
type bar interface {
	Set64(int64) error
	Finish() error
}

type noBar struct{}

func (noBar) Set64(int64) error { return nil }
func (noBar) Finish() error     { return nil }

func newBar(on bool, max int64, desc string) bar {
	if !on {
		return noBar{}
	}
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(500*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }),
	)
}

func printTable(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "| engine | size | keys hit | grow | file / live | keys | commit p50 | p99 | max | p99 without major faults (faults/commit) | p99 of write+sync / of the rest | alloc/commit | bytes/commit | open | peak RSS |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.GaveUp {
			fmt.Fprintf(w, "| %s | %g GiB | | gave up after %s at %.2f GiB | | | | | | | | | | | |\n", r.Engine, r.Target, r.GrowTime.Round(time.Second), float64(r.FileSize)/gib)
			continue
		}
		ratio := 0.0
		if r.LiveBytes > 0 {
			ratio = float64(r.FileSize) / float64(r.LiveBytes)
		}
		keys, grew := "uniform", r.GrowTime.Round(time.Second).String()
		if r.HotKeys > 0 {
			keys = fmt.Sprintf("%g%% of ops in %g%% of keys", 100*r.HotOps, 100*r.HotKeys)
			grew = "(as above; read in " + r.WarmTime.Round(time.Millisecond).String() + ")"
		}
		fmt.Fprintf(w, "| %s | %g GiB | %s | %s | %.2f GiB / %.2f GiB (%.2f×) | %d | %s | %s | %s | %s (%.2f) | %s / %s | %s | %.0f KiB | %s | %.2f GiB |\n",
			r.Engine, r.Target, keys, grew,
			float64(r.FileSize)/gib, float64(r.LiveBytes)/gib, ratio, r.Keys,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond),
			r.P99Cached.Round(time.Microsecond), r.MajorFaults,
			r.WriteP99.Round(time.Microsecond), r.RestP99.Round(time.Microsecond),
			r.Alloc.Round(time.Microsecond), r.CommitBytes/1024, r.OpenTime.Round(time.Microsecond), float64(r.PeakRSS)/gib)
	}
}
