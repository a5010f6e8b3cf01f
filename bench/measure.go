package bench

import (
	"errors"
	"slices"
	"time"
)

// CommitSample is what one commit cost, measured by CommitMeter.
type CommitSample struct {
	// Latency is the wall time of Engine.Apply: the write transaction,
	// its operations, its commit and its syncs.
	Latency time.Duration
	// Bytes is what the process passed to write system calls during the
	// commit (the wchar of /proc/self/io), or -1 where that counter does
	// not exist. Both engines write with pwrite, so this is every byte the
	// commit wrote: pages, freelist and meta.
	Bytes int64
	// FreelistBytes is the part of Bytes that was freelist (see
	// EngineStats.FreelistWrite).
	FreelistBytes int64
	// AllocTime and SpillTime are the commit's share of the engine's
	// counters of the same names (each engine has only one of them).
	AllocTime, SpillTime time.Duration
	// WriteTime is the part of Latency spent in the commit's write and
	// sync system calls (EngineStats.WriteTime).
	WriteTime time.Duration
	// MajorFaults is the number of page faults during the commit that
	// waited for a read from the device (the page was not cached), or -1
	// where not measured. A database larger than the page cache has them.
	MajorFaults int64
}

// CommitMeter measures commits of one engine one at a time. It reads the
// process-wide write counter, so nothing else in the process should write
// files while it measures; other processes do not matter.
type CommitMeter struct {
	e Engine
	w *writeCounter // nil where the platform has no counter
}

// NewCommitMeter returns a meter of e's commits. Close it when done.
func NewCommitMeter(e Engine) (*CommitMeter, error) {
	w, err := newWriteCounter()
	if errors.Is(err, errors.ErrUnsupported) {
		w, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &CommitMeter{e: e, w: w}, nil
}

// Apply applies ops in one commit of the meter's engine and returns what the
// commit cost. Only the Apply call is timed; the counters are read outside
// that window.
func (m *CommitMeter) Apply(ops []Op) (CommitSample, error) {
	var w0, w1 int64 = 0, -1
	var err error
	if m.w != nil {
		if w0, err = m.w.written(); err != nil {
			return CommitSample{}, err
		}
	}
	s0 := m.e.Stats()
	f0 := majorFaults()
	start := time.Now()
	err = m.e.Apply(ops)
	lat := time.Since(start)
	if err != nil {
		return CommitSample{}, err
	}
	faults := majorFaults()
	if faults >= 0 && f0 >= 0 {
		faults -= f0
	}
	s1 := m.e.Stats()
	if m.w != nil {
		if w1, err = m.w.written(); err != nil {
			return CommitSample{}, err
		}
		w1 -= w0
	}
	return CommitSample{
		Latency:       lat,
		Bytes:         w1,
		FreelistBytes: s1.FreelistWrite - s0.FreelistWrite,
		AllocTime:     s1.AllocTime - s0.AllocTime,
		SpillTime:     s1.SpillTime - s0.SpillTime,
		WriteTime:     s1.WriteTime - s0.WriteTime,
		MajorFaults:   faults,
	}, nil
}

// Close releases the meter's counter; the engine stays open.
func (m *CommitMeter) Close() error {
	if m.w == nil {
		return nil
	}
	return m.w.close()
}

// CommitSummary condenses the samples of many commits.
type CommitSummary struct {
	N int // commits
	// P50, P99 and Max are latency percentiles by nearest rank; Mean is
	// the mean latency.
	P50, P99, Max, Mean time.Duration
	// Bytes is the mean of CommitSample.Bytes, or -1 if not measured.
	Bytes float64
	// FreelistBytes is the mean freelist bytes of a commit, and
	// FreelistBytesP50 and FreelistBytesMax their median and maximum: a
	// quiver commit writes one record page, and now and then one commit
	// also writes a whole checkpoint.
	FreelistBytes                      float64
	FreelistBytesP50, FreelistBytesMax int64
	// AllocTime and SpillTime are the mean per commit.
	AllocTime, SpillTime time.Duration
	// MajorFaults is the mean major faults a commit (-1: not measured);
	// Faulting is the fraction of commits with at least one, and
	// P99Cached the p99 latency of the commits with none: what the
	// engine costs when the pages it touches are cached.
	MajorFaults float64
	Faulting    float64
	P99Cached   time.Duration
	// WriteP99 is the p99 of the commits' WriteTime (the device's share),
	// and RestP99 the p99 of Latency minus WriteTime: the tree work,
	// allocation and page faults, what the engine's design decides.
	WriteP99, RestP99 time.Duration
}

// SummarizeCommits condenses samples; it reorders nothing in samples.
func SummarizeCommits(samples []CommitSample) CommitSummary {
	n := len(samples)
	s := CommitSummary{N: n}
	if n == 0 {
		return s
	}
	lat := make([]time.Duration, n)
	wr := make([]time.Duration, n)
	rest := make([]time.Duration, n)
	fl := make([]int64, n)
	var sumLat, sumAlloc, sumSpill time.Duration
	var sumBytes, sumFl int64
	for i, c := range samples {
		lat[i] = c.Latency
		wr[i] = c.WriteTime
		rest[i] = c.Latency - c.WriteTime
		fl[i] = c.FreelistBytes
		sumLat += c.Latency
		sumAlloc += c.AllocTime
		sumSpill += c.SpillTime
		sumFl += c.FreelistBytes
		if sumBytes >= 0 && c.Bytes >= 0 {
			sumBytes += c.Bytes
		} else {
			sumBytes = -1
		}
	}
	slices.Sort(lat)
	slices.Sort(wr)
	slices.Sort(rest)
	slices.Sort(fl)
	s.P50 = lat[rank(n, 50)]
	s.P99 = lat[rank(n, 99)]
	s.WriteP99 = wr[rank(n, 99)]
	s.RestP99 = rest[rank(n, 99)]
	s.Max = lat[n-1]
	s.Mean = sumLat / time.Duration(n)
	s.Bytes = -1
	if sumBytes >= 0 {
		s.Bytes = float64(sumBytes) / float64(n)
	}
	s.FreelistBytes = float64(sumFl) / float64(n)
	s.FreelistBytesP50 = fl[rank(n, 50)]
	s.FreelistBytesMax = fl[n-1]
	s.AllocTime = sumAlloc / time.Duration(n)
	s.SpillTime = sumSpill / time.Duration(n)
	s.MajorFaults = -1
	var cached []time.Duration
	var faults, faulting int64
	for _, c := range samples {
		if c.MajorFaults < 0 {
			return s
		}
		faults += c.MajorFaults
		if c.MajorFaults > 0 {
			faulting++
		} else {
			cached = append(cached, c.Latency)
		}
	}
	s.MajorFaults = float64(faults) / float64(n)
	s.Faulting = float64(faulting) / float64(n)
	if len(cached) > 0 {
		slices.Sort(cached)
		s.P99Cached = cached[rank(len(cached), 99)]
	}
	return s
}

// rank is the index of the pct-th percentile of n sorted values by nearest
// rank: the smallest value that at least pct% of the values do not exceed.
func rank(n, pct int) int {
	r := (n*pct + 99) / 100 // ceil(n*pct/100)
	return max(r-1, 0)
}

// TimeOpen opens the engine's database at path and returns it with the time
// that took: the engine's Open, which on a file that has the bench bucket is
// the database's Open plus one read transaction that looks the bucket up.
// bbolt reads its freelist (or, with NoFreelistSync, rebuilds it by walking
// the whole tree) inside Open; quiver loads its checkpoint and replays the
// chained records inside Open.
func TimeOpen(spec EngineSpec, path string, o OpenOptions) (Engine, time.Duration, error) {
	start := time.Now()
	e, err := spec.Open(path, o)
	d := time.Since(start)
	return e, d, err
}

// DropFileCache asks the kernel to drop the cached pages of the file at
// path, so that the next Open reads from the device: a cold open. It only
// drops clean pages, so the file must have been synced. It returns an error
// matching errors.ErrUnsupported where the platform cannot do this.
func DropFileCache(path string) error { return dropFileCache(path) }
