package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// quiver bench takes bbolt bench's flags and prints its result lines, so
// that the same command line runs against either tool; --engine runs either
// engine from this tool, and --seed makes the random modes repeatable.

var benchBucketName = []byte("bench")

// minReadTime is how long the read phase repeats its passes at least, as
// bbolt's does. Tests shorten it.
var minReadTime = time.Second

type benchOptions struct {
	engine          string
	freelist        string
	profileMode     string
	writeMode       string
	readMode        string
	count           int64
	batchSize       int64
	keySize         int
	valueSize       int
	fillPercent     float64
	noSync          bool
	work            bool
	path            string
	pageSize        int
	initialMmapSize int
	cpuProfile      string
	memProfile      string
	goBenchOutput   bool
	seed            uint64
}

func (o *benchOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.engine, "engine", "quiver", "engine to run: "+engineNames)
	fs.StringVar(&o.freelist, "freelist", "", "freelist type: array or hashmap (default: the engine's default: hashmap for quiver, array for bbolt)")
	fs.StringVar(&o.profileMode, "profile-mode", "rw", "phases to profile: rw, r or w")
	fs.StringVar(&o.writeMode, "write-mode", "seq", "write mode: seq, rnd, seq-nest or rnd-nest")
	fs.StringVar(&o.readMode, "read-mode", "seq", "read mode: seq (cursor scans) or rnd (gets)")
	fs.Int64Var(&o.count, "count", 1000, "number of keys to write")
	fs.Int64Var(&o.batchSize, "batch-size", 0, "keys per write transaction; must divide --count (default --count)")
	fs.IntVar(&o.keySize, "key-size", 8, "key size in bytes (at least 4)")
	fs.IntVar(&o.valueSize, "value-size", 32, "value size in bytes")
	fs.Float64Var(&o.fillPercent, "fill-percent", quiver.DefaultFillPercent, "bucket fill percent, 0.1 to 1")
	fs.BoolVar(&o.noSync, "no-sync", false, "skip the sync of each commit")
	fs.BoolVar(&o.work, "work", false, "keep the database file and print its path")
	fs.StringVar(&o.path, "path", "", "database file (default a new temporary file); removed at the end unless --work")
	fs.IntVar(&o.pageSize, "page-size", os.Getpagesize(), fmt.Sprintf("page size of a new database, a power of two from %d to %d", page.MinPageSize, page.MaxPageSize))
	fs.IntVar(&o.initialMmapSize, "initial-mmap-size", 0, "initial mmap size in bytes")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile to this file")
	fs.BoolVar(&o.goBenchOutput, "gobench-output", false, "print results in go test -bench format, for benchstat")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the random write modes and of the read order (0: from the clock)")
}

func newBenchCommand() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "run a synthetic write and read benchmark (as bbolt bench)",
		Long: `Bench writes --count keys in transactions of --batch-size keys, then reads
them back in one read transaction, repeating passes for at least a second,
and prints:

	# Write	<n>(ops)	<duration>	(<duration>/op)	(<n> op/sec)
	# Read	<n>(ops)	<duration>	(<duration>/op)	(<n> op/sec)

It takes bbolt bench's flags, with one dash or two; --engine bbolt runs bbolt
on the same workload. With --gobench-output it prints BenchmarkWrite and
BenchmarkRead lines, headed by an "engine:" configuration line, which
benchstat reads.`,
		Example: "  quiver bench --count 100000 --batch-size 1000 --write-mode rnd\n" +
			"  quiver bench --engine bbolt --gobench-output --count 10000",
		Args: argsBetween(0, 0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return o.run(cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	o.addFlags(cmd.Flags())
	return cmd
}

// check checks the bench flags the flag parser has set. Every problem is
// a *usageError.
func (o *benchOptions) check() error {
	if _, ok := engines[o.engine]; !ok {
		return usagef("invalid --engine %q: want %s", o.engine, engineNames)
	}
	switch o.freelist {
	case "", "array", "hashmap":
	default:
		return usagef("invalid --freelist %q: want array or hashmap", o.freelist)
	}
	switch o.writeMode {
	case "seq", "rnd", "seq-nest", "rnd-nest":
	default:
		return usagef("invalid --write-mode %q: want seq, rnd, seq-nest or rnd-nest", o.writeMode)
	}
	switch o.readMode {
	case "seq", "rnd":
	default:
		return usagef("invalid --read-mode %q: want seq or rnd", o.readMode)
	}
	switch o.profileMode {
	case "rw", "r", "w":
	default:
		return usagef("invalid --profile-mode %q: want rw, r or w", o.profileMode)
	}
	if o.count < 1 {
		return usagef("invalid --count %d: want at least 1", o.count)
	}
	if o.batchSize == 0 {
		o.batchSize = o.count
	}
	if o.batchSize < 0 || o.count%o.batchSize != 0 {
		return usagef("invalid --batch-size %d: want a divisor of --count %d", o.batchSize, o.count)
	}
	// Keys carry a 32-bit number in their first four bytes, as bbolt's do.
	if o.keySize < 4 || o.keySize > quiver.MaxKeySize {
		return usagef("invalid --key-size %d: want 4 to %d", o.keySize, quiver.MaxKeySize)
	}
	if o.valueSize < 0 || int64(o.valueSize) > quiver.MaxValueSize {
		return usagef("invalid --value-size %d: want 0 to %d", o.valueSize, int64(quiver.MaxValueSize))
	}
	if !(o.fillPercent >= 0.1 && o.fillPercent <= 1) { // also refuses NaN
		return usagef("invalid --fill-percent %v: want 0.1 to 1", o.fillPercent)
	}
	if !page.ValidPageSize(o.pageSize) {
		return usagef("invalid --page-size %d: want a power of two from %d to %d", o.pageSize, page.MinPageSize, page.MaxPageSize)
	}
	if o.initialMmapSize < 0 {
		return usagef("invalid --initial-mmap-size %d: want at least 0", o.initialMmapSize)
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return nil
}

func (o *benchOptions) dbOptions() dbOptions {
	return dbOptions{pageSize: o.pageSize, initialMmapSize: o.initialMmapSize, noSync: o.noSync, freelist: o.freelist}
}

// engineLabel names the engine and its freelist, as the bench module does.
func (o *benchOptions) engineLabel() string {
	fl := o.freelist
	if fl == "" {
		fl = "hashmap"
		if o.engine == "bbolt" {
			fl = "array"
		}
	}
	return o.engine + "-" + fl
}

// benchResult counts a phase's operations. ops is updated atomically: the
// progress reporter reads it while the phase runs.
type benchResult struct {
	ops      atomic.Int64
	duration time.Duration
}

// perOp returns the mean duration of an operation.
func (r *benchResult) perOp() time.Duration {
	n := r.ops.Load()
	if n == 0 {
		return 0
	}
	return r.duration / time.Duration(n)
}

// perSecond returns the operations per second, computed from the whole
// duration rather than from the rounded perOp.
func (r *benchResult) perSecond() int64 {
	if r.duration <= 0 {
		return 0
	}
	return int64(float64(r.ops.Load()) / r.duration.Seconds())
}

// run runs the benchmark o describes.
func (o *benchOptions) run(stdout, stderr io.Writer) error {
	if err := checkEngineOptions(o.engine, o.dbOptions()); err != nil {
		return err
	}
	prof, err := newProfiler(o)
	if err != nil {
		return err
	}
	defer prof.stop()

	path := o.path
	if path == "" {
		dir, err := os.MkdirTemp("", "quiver-bench-")
		if err != nil {
			return err
		}
		path = filepath.Join(dir, "bench.db")
		if !o.work {
			defer os.RemoveAll(dir)
		}
	} else if !o.work {
		defer os.Remove(path)
	}
	if o.work {
		fmt.Fprintf(stderr, "work: %s\n", path)
	}
	fmt.Fprintf(stderr, "engine: %s, seed: %d\n", o.engineLabel(), o.seed)

	db, err := engines[o.engine](path, o.dbOptions())
	if err != nil {
		return err
	}
	defer db.Close()

	r := rand.New(rand.NewPCG(o.seed, 0x7175697665720000))
	var write, read benchResult

	fmt.Fprintln(stderr, "starting write benchmark.")
	if o.profileMode != "r" {
		if err := prof.start(); err != nil {
			return err
		}
	}
	keys, err := runWrites(db, o, r, &write, stderr)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if o.profileMode == "w" {
		if err := prof.stop(); err != nil {
			return err
		}
	}

	if keys != nil {
		r.Shuffle(keys.len(), keys.swap)
	}

	fmt.Fprintln(stderr, "starting read benchmark.")
	if o.profileMode == "r" {
		if err := prof.start(); err != nil {
			return err
		}
	}
	if err := runReads(db, o, keys, &read, stderr); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if err := prof.stop(); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}

	if o.goBenchOutput {
		printGoBench(stdout, o.engineLabel(), &write, &read)
	} else {
		printResult(stdout, "Write", &write)
		printResult(stdout, "Read", &read)
	}
	fmt.Fprintln(stdout)
	return nil
}

func printResult(w io.Writer, name string, r *benchResult) {
	fmt.Fprintf(w, "# %s\t%d(ops)\t%v\t(%v/op)\t(%d op/sec)\n", name, r.ops.Load(), r.duration, r.perOp(), r.perSecond())
}

// printGoBench prints the results as go test -bench does: a configuration
// line naming the engine (so that benchstat -col engine can split a file
// holding both engines' runs), then one line per phase.
func printGoBench(w io.Writer, engine string, write, read *benchResult) {
	fmt.Fprintf(w, "engine: %s\n", engine)
	for _, p := range []struct {
		name string
		r    *benchResult
	}{{"BenchmarkWrite", write}, {"BenchmarkRead", read}} {
		n := p.r.ops.Load()
		nsPerOp := 0.0
		if n > 0 {
			nsPerOp = float64(p.r.duration.Nanoseconds()) / float64(n)
		}
		fmt.Fprintf(w, "%-14s\t%8d\t%s ns/op\n", p.name, n, formatNs(nsPerOp))
	}
}

// formatNs prints ns/op with about four significant digits, right-aligned
// in ten columns as go test does.
func formatNs(x float64) string {
	switch {
	case x == 0 || x >= 100:
		return fmt.Sprintf("%10.0f", x)
	case x >= 10:
		return fmt.Sprintf("%10.1f", x)
	case x >= 1:
		return fmt.Sprintf("%10.2f", x)
	case x >= 0.1:
		return fmt.Sprintf("%10.3f", x)
	}
	return fmt.Sprintf("%10.4f", x)
}

// keyList holds the keys written, for random reads: key i at i*keySize,
// and in nested modes the bucket name holding it at i*keySize in names.
type keyList struct {
	size  int
	keys  []byte
	names []byte
	tmp   []byte
}

func newKeyList(n int64, size int, nested bool) *keyList {
	// Reserve room for all keys up front, within reason: a --count too
	// large for memory should fail as the keys are written, as the
	// database would, not in make.
	c := min(n, (64<<20)/int64(size)) * int64(size)
	l := &keyList{size: size, keys: make([]byte, 0, c), tmp: make([]byte, size)}
	if nested {
		l.names = make([]byte, 0, c)
	}
	return l
}

func (l *keyList) len() int { return len(l.keys) / l.size }

func (l *keyList) key(i int) []byte { return l.keys[i*l.size : (i+1)*l.size] }

func (l *keyList) name(i int) []byte { return l.names[i*l.size : (i+1)*l.size] }

func (l *keyList) swap(i, j int) {
	swapBytes(l.key(i), l.key(j), l.tmp)
	if l.names != nil {
		swapBytes(l.name(i), l.name(j), l.tmp)
	}
}

func swapBytes(a, b, tmp []byte) {
	copy(tmp, a)
	copy(a, b)
	copy(b, tmp)
}

// runWrites writes o.count keys, o.batchSize per write transaction, and
// returns them if the read mode needs them.
func runWrites(db kvDB, o *benchOptions, r *rand.Rand, res *benchResult, stderr io.Writer) (*keyList, error) {
	nested := strings.HasSuffix(o.writeMode, "-nest")
	var next func() uint32
	if strings.HasPrefix(o.writeMode, "rnd") {
		next = r.Uint32
	} else {
		var i uint32
		next = func() uint32 { i++; return i }
	}
	var keys *keyList
	if o.readMode == "rnd" {
		keys = newKeyList(o.count, o.keySize, nested)
	}
	// Keys are zero but for a 32-bit number in front; values are zero.
	// Put copies the key; the one value slice is never changed, which is
	// what bbolt needs of a value until the commit.
	key := make([]byte, o.keySize)
	name := make([]byte, o.keySize)
	value := make([]byte, o.valueSize)

	stop := reportProgress(res, stderr)
	defer stop()
	start := time.Now()
	for i := int64(0); i < o.count; i += o.batchSize {
		err := db.Update(func(tx kvTx) error {
			top, err := tx.CreateBucketIfNotExists(benchBucketName)
			if err != nil {
				return err
			}
			top.SetFillPercent(o.fillPercent)
			b := top
			if nested {
				binary.BigEndian.PutUint32(name, next())
				if b, err = top.CreateBucketIfNotExists(name); err != nil {
					return err
				}
				b.SetFillPercent(o.fillPercent)
			}
			for j := int64(0); j < o.batchSize; j++ {
				binary.BigEndian.PutUint32(key, next())
				if err := b.Put(key, value); err != nil {
					return err
				}
				if keys != nil {
					keys.keys = append(keys.keys, key...)
					if nested {
						keys.names = append(keys.names, name...)
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		res.ops.Add(o.batchSize)
	}
	res.duration = time.Since(start)
	return keys, nil
}

// errNoValue is returned when a read finds a key without its value.
var errNoValue = errors.New("key without a value")

// runReads reads the keys back in one read transaction, repeating passes
// until minReadTime has passed.
func runReads(db kvDB, o *benchOptions, keys *keyList, res *benchResult, stderr io.Writer) error {
	nested := strings.HasSuffix(o.writeMode, "-nest")
	var pass func(top kvBucket) (int64, error)
	switch {
	case o.readMode == "seq" && !nested:
		pass = func(top kvBucket) (int64, error) { return scan(top) }
	case o.readMode == "seq":
		pass = func(top kvBucket) (int64, error) {
			var n int64
			err := top.ForEach(func(name, _ []byte) error {
				b := top.Bucket(name)
				if b == nil {
					return fmt.Errorf("bucket %x: not found", name)
				}
				m, err := scan(b)
				n += m
				return err
			})
			return n, err
		}
	case !nested:
		pass = func(top kvBucket) (int64, error) {
			for i := 0; i < keys.len(); i++ {
				if top.Get(keys.key(i)) == nil {
					return int64(i), fmt.Errorf("key %x: %w", keys.key(i), errNoValue)
				}
			}
			return int64(keys.len()), nil
		}
	default:
		pass = func(top kvBucket) (int64, error) {
			for i := 0; i < keys.len(); i++ {
				b := top.Bucket(keys.name(i))
				if b == nil {
					return int64(i), fmt.Errorf("bucket %x: not found", keys.name(i))
				}
				if b.Get(keys.key(i)) == nil {
					return int64(i), fmt.Errorf("key %x: %w", keys.key(i), errNoValue)
				}
			}
			return int64(keys.len()), nil
		}
	}

	stop := reportProgress(res, stderr)
	defer stop()
	start := time.Now()
	err := db.View(func(tx kvTx) error {
		top := tx.Bucket(benchBucketName)
		if top == nil {
			return fmt.Errorf("bucket %q not found", benchBucketName)
		}
		for {
			n, err := pass(top)
			res.ops.Add(n)
			if err != nil {
				return err
			}
			// Sequential keys are distinct, so a pass must see them all.
			if (o.writeMode == "seq" || o.writeMode == "seq-nest") && n != o.count {
				return fmt.Errorf("a pass read %d keys, want %d", n, o.count)
			}
			if time.Since(start) >= minReadTime {
				return nil
			}
		}
	})
	res.duration = time.Since(start)
	return err
}

// scan walks b with a cursor and returns the number of keys.
func scan(b kvBucket) (int64, error) {
	var n int64
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		n++
		if v == nil {
			return n, fmt.Errorf("key %x: %w", k, errNoValue)
		}
	}
	return n, nil
}

// reportProgress prints the operations done each second to w until the
// returned function is called.
func reportProgress(res *benchResult, w io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, lastTime := res.ops.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				n := res.ops.Load()
				rate := float64(n-last) / now.Sub(lastTime).Seconds()
				fmt.Fprintf(w, "Completed %d requests, %.0f/s\n", n, rate)
				last, lastTime = n, now
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// profiler runs the CPU and heap profiles the flags ask for. Its files are
// created before the benchmark starts, so that a bad path is reported
// before any work is done.
type profiler struct {
	cpu, mem *os.File
	running  bool
	rate     int
}

func newProfiler(o *benchOptions) (*profiler, error) {
	p := &profiler{}
	var err error
	if o.cpuProfile != "" {
		if p.cpu, err = os.Create(o.cpuProfile); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
	}
	if o.memProfile != "" {
		if p.mem, err = os.Create(o.memProfile); err != nil {
			if p.cpu != nil {
				p.cpu.Close()
			}
			return nil, fmt.Errorf("memory profile: %w", err)
		}
	}
	return p, nil
}

func (p *profiler) start() error {
	if p.cpu != nil {
		if err := pprof.StartCPUProfile(p.cpu); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
	}
	if p.mem != nil {
		// Sample finely, as bbolt bench does.
		p.rate = runtime.MemProfileRate
		runtime.MemProfileRate = 4096
	}
	p.running = true
	return nil
}

// stop ends the profiles and closes their files; it may be called more
// than once.
func (p *profiler) stop() error {
	var errs []error
	if p.cpu != nil {
		if p.running {
			pprof.StopCPUProfile()
		}
		errs = append(errs, p.cpu.Close())
		p.cpu = nil
	}
	if p.mem != nil {
		if p.running {
			errs = append(errs, pprof.Lookup("heap").WriteTo(p.mem, 0))
			runtime.MemProfileRate = p.rate
		}
		errs = append(errs, p.mem.Close())
		p.mem = nil
	}
	p.running = false
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}
