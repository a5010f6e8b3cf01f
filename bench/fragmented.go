package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"time"
)

// The fragmented workload: grow a database with random keys and mixed
// values, delete a random part of it so that its free space is scattered,
// then make many small synced commits and measure each one. Every choice
// comes from one seeded generator that does not look at the engine, so every
// engine receives the same operations in the same order.
//
// FragmentedWorkload generates the operations, CommitMeter (measure.go)
// measures a commit, and RunFragmented strings the phases together the way
// BenchmarkFragmented runs them. A longer-running harness (growing a
// database in steps to many GB) can call Grow, Fragment and Steady itself.

// FragmentedConfig shapes the operations of a FragmentedWorkload. Start from
// DefaultFragmentedConfig and change fields.
type FragmentedConfig struct {
	// Seed seeds every random choice.
	Seed uint64
	// Batch is the number of puts of one Grow commit and of deletes of one
	// Fragment commit.
	Batch int
	// SmallValue is the mean size of a small value; sizes are uniform
	// within ±25% of it.
	SmallValue int
	// LargeFraction of the values are large, with sizes from LargeMin to
	// LargeMax bytes, log-uniform (as many of 2–4 KB as of 32–64 KB). They
	// live on overflow pages, so deleting them frees runs of pages.
	LargeFraction      float64
	LargeMin, LargeMax int
	// OpsPerCommit is the number of operations of one steady commit. Each
	// is, with probability Insert, a put of a new key; with probability
	// Update, a put of a new value under a live key; otherwise a delete of
	// a live key.
	OpsPerCommit   int
	Insert, Update float64
}

// DefaultFragmentedConfig returns the configuration BenchmarkFragmented uses
// unless told otherwise: 1000-op load and delete commits, ~100-byte values
// with 1% of 2–64 KB, steady commits of 10 operations (35% inserts, 30%
// updates, 35% deletes, so that the size stays level).
func DefaultFragmentedConfig() FragmentedConfig {
	return FragmentedConfig{
		Seed:          1,
		Batch:         1000,
		SmallValue:    100,
		LargeFraction: 0.01,
		LargeMin:      2 << 10,
		LargeMax:      64 << 10,
		OpsPerCommit:  10,
		Insert:        0.35,
		Update:        0.30,
	}
}

func (c FragmentedConfig) validate() error {
	switch {
	case c.Batch < 1:
		return fmt.Errorf("bench: fragmented Batch %d: want at least 1", c.Batch)
	case c.SmallValue < 0:
		return fmt.Errorf("bench: fragmented SmallValue %d: want at least 0", c.SmallValue)
	case c.LargeFraction < 0 || c.LargeFraction > 1:
		return fmt.Errorf("bench: fragmented LargeFraction %v: want 0 to 1", c.LargeFraction)
	case c.LargeFraction > 0 && (c.LargeMin < 1 || c.LargeMax < c.LargeMin || c.LargeMax > maxValueSize):
		return fmt.Errorf("bench: fragmented large values %d to %d bytes: want 1 <= min <= max <= %d", c.LargeMin, c.LargeMax, maxValueSize)
	case c.SmallValue*5/4 > maxValueSize:
		return fmt.Errorf("bench: fragmented SmallValue %d: want at most %d", c.SmallValue, maxValueSize*4/5)
	}
	return checkMix(c.OpsPerCommit, c.Insert, c.Update)
}

func checkMix(ops int, insert, update float64) error {
	switch {
	case ops < 1:
		return fmt.Errorf("bench: fragmented OpsPerCommit %d: want at least 1", ops)
	case insert < 0 || update < 0 || insert+update > 1:
		return fmt.Errorf("bench: fragmented Insert %v, Update %v: want non-negative, at most 1 together", insert, update)
	}
	return nil
}

// FragmentedWorkload generates the operations of the fragmented workload
// and tracks which keys are live and the size of their values. Key id i is
// the 16-byte key PutKey(mix(i ^ salt)): distinct for distinct ids, in random
// key order, and the same for every engine. The workload assumes that every
// Apply it hands operations to succeeds; after an error it is out of step
// with the database.
//
// It keeps 2 bytes per key ever inserted (about 450 MB for 64 GB of the
// default data). It is not safe for concurrent use.
type FragmentedWorkload struct {
	cfg       FragmentedConfig
	rng       *rand.Rand
	salt      uint64
	sizes     []uint16 // value size of key id i, encoded (sizeCode); 0 if not live
	nlive     int
	liveBytes int64 // key and value bytes of the live keys
	inserted  int64 // key and value bytes put by inserts (not updates)
	block     []byte
	keys      []byte // keys of the ops being built
	ops       []Op
	// The hot set (SetHot): keys whose first 8 bytes are below hotBelow,
	// a contiguous range of the key space, take a fraction hotOps of the
	// operations NextCommit makes; 0 means no hot set.
	hotBelow uint64
	hotOps   float64
}

// maxValueSize is the largest value size sizeCode can record.
const maxValueSize = 0x7fff << 3

// sizeCode encodes a value size in 16 bits, 0 meaning no value: sizes below
// 0x7fff exactly, larger ones in units of 8 bytes (valueSize draws only
// multiples of 8 there).
func sizeCode(size int) uint16 {
	if size < 0x7fff {
		return uint16(size + 1)
	}
	return 0x8000 | uint16(size>>3)
}

func sizeOf(code uint16) int {
	if code < 0x8000 {
		return int(code) - 1
	}
	return int(code&0x7fff) << 3
}

// valueBlockSize is the span of random bytes values are cut from, beyond the
// largest value.
const valueBlockSize = 256 << 10

// NewFragmentedWorkload returns the workload of cfg over an empty database.
func NewFragmentedWorkload(cfg FragmentedConfig) (*FragmentedWorkload, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x66726167))
	block := make([]byte, valueBlockSize+max(cfg.LargeMax, cfg.SmallValue*5/4+1))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	n := max(cfg.Batch, cfg.OpsPerCommit)
	return &FragmentedWorkload{
		cfg:   cfg,
		rng:   rng,
		salt:  rng.Uint64(),
		block: block,
		keys:  make([]byte, n*KeySize),
		ops:   make([]Op, 0, n),
	}, nil
}

// Live returns the number of keys in the database.
func (w *FragmentedWorkload) Live() int { return w.nlive }

// LiveBytes returns the key and value bytes of the keys in the database:
// what a perfectly compact file would hold.
func (w *FragmentedWorkload) LiveBytes() int64 { return w.liveBytes }

// Inserted returns the key and value bytes of every insert so far
// (deleted keys included, updates not).
func (w *FragmentedWorkload) Inserted() int64 { return w.inserted }

// SetMix changes the steady commits that NextCommit generates from now on:
// ops operations each, a fraction insert of them puts of new keys, update
// puts under live keys, the rest deletes. A long harness can use it to grow
// a database with large mixed commits, then measure small ones.
func (w *FragmentedWorkload) SetMix(ops int, insert, update float64) error {
	if err := checkMix(ops, insert, update); err != nil {
		return err
	}
	w.cfg.OpsPerCommit, w.cfg.Insert, w.cfg.Update = ops, insert, update
	if n := max(w.cfg.Batch, ops); n*KeySize > len(w.keys) {
		w.keys = make([]byte, n*KeySize)
	}
	return nil
}

// SetHot makes a fraction keys of the key space hot from now on: the keys
// whose first 8 bytes are below keys×2^64, one contiguous range (so that
// they share leaves, and a hot set of keys is a hot set of pages). A
// fraction ops of the operations NextCommit makes then go to hot keys and
// the rest to the others: inserts draw new keys in the chosen part,
// updates and deletes live keys of it. SetHot(0, 0) turns it off.
func (w *FragmentedWorkload) SetHot(keys, ops float64) error {
	if keys < 0 || keys >= 1 || ops < 0 || ops > 1 || (keys == 0) != (ops == 0) {
		return fmt.Errorf("bench: hot set of %v of the keys taking %v of the operations: want both in (0, 1), or both 0", keys, ops)
	}
	w.hotBelow, w.hotOps = uint64(keys*(1<<64)), ops
	return nil
}

// isHot reports whether key id lies in the hot set.
func (w *FragmentedWorkload) isHot(id uint64) bool { return mix(id^w.salt) < w.hotBelow }

// HotKeys calls fn with each live key of the hot set, in id order. The key
// is valid only during the call.
func (w *FragmentedWorkload) HotKeys(fn func(key []byte) error) error {
	var k [KeySize]byte
	for id := range uint64(len(w.sizes)) {
		if w.isLive(id) && w.isHot(id) {
			PutKey(k[:], mix(id^w.salt))
			if err := fn(k[:]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *FragmentedWorkload) isLive(id uint64) bool { return w.sizes[id] != 0 }

// setValue records that key id now has a value of size bytes.
func (w *FragmentedWorkload) setValue(id uint64, size int) {
	if old := w.sizes[id]; old != 0 {
		w.liveBytes -= int64(KeySize + sizeOf(old))
	} else {
		w.nlive++
	}
	w.sizes[id] = sizeCode(size)
	w.liveBytes += int64(KeySize + size)
}

// remove records that key id was deleted.
func (w *FragmentedWorkload) remove(id uint64) {
	w.liveBytes -= int64(KeySize + sizeOf(w.sizes[id]))
	w.sizes[id] = 0
	w.nlive--
}

// valueSize draws the size of a new value.
func (w *FragmentedWorkload) valueSize() int {
	c := &w.cfg
	size := 0
	if c.LargeFraction > 0 && w.rng.Float64() < c.LargeFraction {
		f := math.Log(float64(c.LargeMax) / float64(c.LargeMin))
		size = min(int(float64(c.LargeMin)*math.Exp(w.rng.Float64()*f)), c.LargeMax)
	} else {
		lo := c.SmallValue * 3 / 4
		size = lo + w.rng.IntN(c.SmallValue*5/4-lo+1)
	}
	if size >= 0x7fff {
		size &^= 7 // see sizeCode
	}
	return size
}

// value draws a new value for key id and records its size: a slice of the
// workload's random block, which never changes, so it stays valid as long as
// the workload (bbolt keeps the slice until the commit).
func (w *FragmentedWorkload) value(id uint64) []byte {
	size := w.valueSize()
	w.setValue(id, size)
	off := w.rng.IntN(valueBlockSize)
	return w.block[off : off+size : off+size]
}

// key writes key id into the i-th slot of the key buffer and returns it.
func (w *FragmentedWorkload) key(i int, id uint64) []byte {
	k := w.keys[i*KeySize : (i+1)*KeySize : (i+1)*KeySize]
	PutKey(k, mix(id^w.salt))
	return k
}

// insertOp appends a put of a new key.
func (w *FragmentedWorkload) insertOp() { w.insertIn(false, false) }

// insertIn appends a put of a new key; with part, one in the hot set if hot
// is set, else one outside it. Ids whose keys lie in the other part are
// skipped: they stay never live.
func (w *FragmentedWorkload) insertIn(part, hot bool) {
	id := uint64(len(w.sizes))
	w.sizes = append(w.sizes, 0)
	for part && w.isHot(id) != hot {
		id++
		w.sizes = append(w.sizes, 0)
	}
	op := Op{Key: w.key(len(w.ops), id), Value: w.value(id)}
	w.inserted += int64(len(op.Key) + len(op.Value))
	w.ops = append(w.ops, op)
}

// randomLive returns a random live key id; there must be one.
func (w *FragmentedWorkload) randomLive() uint64 {
	n := uint64(len(w.sizes))
	for {
		if id := w.rng.Uint64N(n); w.isLive(id) {
			return id
		}
	}
}

// maxHotDraws bounds the draws liveIn makes for a live key of one
// part before it settles for any live key (a part may have none).
const maxHotDraws = 1 << 16

// liveIn returns a random live key id; with part, one of the hot set if hot
// is set, else one outside it (any live key if many draws found none there).
func (w *FragmentedWorkload) liveIn(part, hot bool) uint64 {
	if !part {
		return w.randomLive()
	}
	n := uint64(len(w.sizes))
	for range maxHotDraws {
		if id := w.rng.Uint64N(n); w.isLive(id) && w.isHot(id) == hot {
			return id
		}
	}
	return w.randomLive()
}

// Grow inserts new keys into e, Batch per commit, until the key and value
// bytes inserted by this call reach bytes.
func (w *FragmentedWorkload) Grow(e Engine, bytes int64) error {
	goal := w.inserted + bytes
	for w.inserted < goal {
		w.ops = w.ops[:0]
		for len(w.ops) < w.cfg.Batch && w.inserted < goal {
			w.insertOp()
		}
		if err := e.Apply(w.ops); err != nil {
			return err
		}
	}
	return nil
}

// Fragment deletes each live key with probability fraction, Batch deletes
// per commit. It visits keys by id, which is a random order of keys, so each
// commit deletes keys all over the tree and the freed pages are scattered.
func (w *FragmentedWorkload) Fragment(e Engine, fraction float64) error {
	if fraction < 0 || fraction > 1 {
		return fmt.Errorf("bench: fragment fraction %v: want 0 to 1", fraction)
	}
	w.ops = w.ops[:0]
	for id := range uint64(len(w.sizes)) {
		if !w.isLive(id) || w.rng.Float64() >= fraction {
			continue
		}
		w.remove(id)
		w.ops = append(w.ops, Op{Key: w.key(len(w.ops), id), Delete: true})
		if len(w.ops) == w.cfg.Batch {
			if err := e.Apply(w.ops); err != nil {
				return err
			}
			w.ops = w.ops[:0]
		}
	}
	if len(w.ops) > 0 {
		return e.Apply(w.ops)
	}
	return nil
}

// NextCommit returns the operations of the next steady commit. They are
// valid until the next call of a method of w.
func (w *FragmentedWorkload) NextCommit() []Op {
	w.ops = w.ops[:0]
	for len(w.ops) < w.cfg.OpsPerCommit {
		part, hot := w.hotOps > 0, false
		if part {
			hot = w.rng.Float64() < w.hotOps
		}
		r := w.rng.Float64()
		switch {
		case r < w.cfg.Insert || w.nlive == 0:
			w.insertIn(part, hot)
		case r < w.cfg.Insert+w.cfg.Update:
			id := w.liveIn(part, hot)
			w.ops = append(w.ops, Op{Key: w.key(len(w.ops), id), Value: w.value(id)})
		default:
			id := w.liveIn(part, hot)
			w.remove(id)
			w.ops = append(w.ops, Op{Key: w.key(len(w.ops), id), Delete: true})
		}
	}
	return w.ops
}

// Steady makes warmup commits of w on e unmeasured, then commits more, each
// measured, and returns their samples. e should be open with syncs on.
func Steady(e Engine, w *FragmentedWorkload, warmup, commits int) ([]CommitSample, error) {
	for i := 0; i < warmup; i++ {
		if err := e.Apply(w.NextCommit()); err != nil {
			return nil, err
		}
	}
	m, err := NewCommitMeter(e)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	samples := make([]CommitSample, 0, commits)
	for i := 0; i < commits; i++ {
		s, err := m.Apply(w.NextCommit())
		if err != nil {
			return nil, err
		}
		samples = append(samples, s)
	}
	return samples, nil
}

// FragmentedRun is one run of the whole fragmented workload on one engine.
type FragmentedRun struct {
	Config FragmentedConfig
	// Bytes is the key and value bytes Grow loads (the file ends up
	// larger: page overhead and fill).
	Bytes int64
	// Delete is the fraction of the keys Fragment deletes.
	Delete float64
	// Warmup commits precede the Commits measured ones.
	Warmup, Commits int
	// OpenRuns is how many warm opens are timed; the median is reported.
	OpenRuns int
	// ColdOpen also times one open after dropping the file's cached pages.
	ColdOpen bool
	// FillPercent is the bucket fill percent (0: the engine's default).
	FillPercent float64
}

// FragmentedResult is what RunFragmented measured.
type FragmentedResult struct {
	Engine string
	// Keys is the number of live keys at the end; every engine has the
	// same (RunFragmented checks it with a scan). LiveBytes are their key
	// and value bytes.
	Keys      int
	LiveBytes int64
	// LoadTime and FragmentTime are the wall times of Grow and Fragment
	// (without syncs); SteadyTime is that of the steady commits, warm-up
	// included.
	LoadTime, FragmentTime, SteadyTime time.Duration
	// Commits summarises the measured steady commits.
	Commits CommitSummary
	// OpenTime is the median of the warm opens (TimeOpen, file in the page
	// cache); ColdOpenTime is one open after DropFileCache, or -1.
	OpenTime, ColdOpenTime time.Duration
	// FileSize is the file's size at the end, in bytes.
	FileSize int64
	// FreePages is the engine's free page count after the steady phase.
	FreePages int
}

// RunFragmented runs the fragmented workload on a new database of spec at
// path (which must not exist): Grow by run.Bytes and Fragment, without
// syncs; reopen with syncs and make run.Warmup and run.Commits steady
// commits; close; time run.OpenRuns opens and, if asked, a cold one; check
// with a scan that the engine holds exactly the live keys. It removes
// nothing; the caller owns the file.
func RunFragmented(spec EngineSpec, path string, run FragmentedRun) (*FragmentedResult, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("bench: %s exists; RunFragmented makes a new database", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	w, err := NewFragmentedWorkload(run.Config)
	if err != nil {
		return nil, err
	}
	r := &FragmentedResult{Engine: spec.Name, ColdOpenTime: -1}
	synced := OpenOptions{FillPercent: run.FillPercent}

	e, err := spec.Open(path, OpenOptions{NoSync: true, FillPercent: run.FillPercent})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = w.Grow(e, run.Bytes)
	r.LoadTime = time.Since(start)
	if err == nil {
		start = time.Now()
		err = w.Fragment(e, run.Delete)
		r.FragmentTime = time.Since(start)
	}
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: load: %w", spec.Name, err)
	}

	if e, err = spec.Open(path, synced); err != nil {
		return nil, err
	}
	start = time.Now()
	samples, err := Steady(e, w, run.Warmup, run.Commits)
	r.SteadyTime = time.Since(start)
	if err == nil {
		r.Commits = SummarizeCommits(samples)
		r.FreePages = e.Stats().FreePages
	}
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: steady commits: %w", spec.Name, err)
	}

	opens := make([]time.Duration, 0, max(run.OpenRuns, 1))
	for i := 0; i < max(run.OpenRuns, 1); i++ {
		e, d, err := TimeOpen(spec, path, synced)
		if err != nil {
			return nil, err
		}
		opens = append(opens, d)
		if i == 0 {
			err = checkFragmented(e, w, r)
		}
		if cerr := e.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Name, err)
		}
	}
	slices.Sort(opens)
	r.OpenTime = opens[(len(opens)-1)/2]

	if run.ColdOpen {
		d, err := timeColdOpen(spec, path, synced)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
		case err != nil:
			return nil, fmt.Errorf("%s: cold open: %w", spec.Name, err)
		default:
			r.ColdOpenTime = d
		}
	}
	return r, nil
}

// checkFragmented checks that e holds exactly w's live keys and records the
// file size.
func checkFragmented(e Engine, w *FragmentedWorkload, r *FragmentedResult) error {
	n, err := e.Scan()
	if err != nil {
		return err
	}
	if n != w.Live() {
		return fmt.Errorf("scan found %d keys, the workload has %d live", n, w.Live())
	}
	r.Keys, r.LiveBytes = n, w.LiveBytes()
	r.FileSize, err = e.FileSize()
	return err
}

// timeColdOpen syncs the file at path, drops its cached pages and times an
// open.
func timeColdOpen(spec EngineSpec, path string, o OpenOptions) (time.Duration, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if err := DropFileCache(path); err != nil {
		return 0, err
	}
	e, d, err := TimeOpen(spec, path, o)
	if err != nil {
		return 0, err
	}
	return d, e.Close()
}
