package bench

// This file defines the small Engine interface the benchmarks drive and
// the table of engines, so that a new engine or a new freelist of an
// existing one is one more row.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// bucketName is the one bucket every engine stores the workload in.
var bucketName = []byte("bench")

// Engine is one storage engine behind the benchmarks. Methods are called
// from one goroutine at a time. Slices handed to a method must stay unchanged
// until it returns (bbolt's Put keeps the value slice until the commit); the
// caller may reuse them afterwards.
type Engine interface {
	// PutBatch puts the n pairs kv(0) .. kv(n-1) in one write transaction
	// and commits it, durably unless the engine was opened with NoSync.
	PutBatch(n int, kv func(i int) (key, value []byte)) error
	// Apply applies ops in order in one write transaction and commits it,
	// durably unless the engine was opened with NoSync. Deleting a missing
	// key is not an error.
	Apply(ops []Op) error
	// Get looks key up in a read transaction of its own and reports whether
	// it exists.
	Get(key []byte) (bool, error)
	// GetInTx looks up the n keys key(0) .. key(n-1) inside one read
	// transaction and returns how many exist.
	GetInTx(n int, key func(i int) []byte) (int, error)
	// Scan walks every key and value with a cursor in one read transaction
	// and returns the number of pairs.
	Scan() (int, error)
	// ScanRead walks every pair as Scan does and also reads each key's
	// first byte and each value's last, as a scan that uses what it finds
	// does; it returns the number of pairs and the sum of those bytes.
	// Scan alone favours a layout that keeps lengths apart from the bytes.
	ScanRead() (n int, sum uint64, err error)
	// FileSize returns the size of the database file in bytes.
	FileSize() (int64, error)
	// Stats returns the engine's counters. The cumulative ones count from
	// Open, so a caller measures a commit by the difference of two calls.
	Stats() EngineStats
	// Close closes the database; the file stays.
	Close() error
}

// Op is one operation of Apply: a put of Key and Value, or a delete of Key.
type Op struct {
	Key, Value []byte
	Delete     bool
}

// EngineStats are the counters the fragmented workload reads around each
// commit. A counter an engine does not have stays zero.
type EngineStats struct {
	// FreelistWrite is the bytes of freelist pages written since Open.
	// quiver counts them itself (Stats.FreelistWrite: its checkpoints and
	// per-commit records). bbolt rewrites its whole freelist in every
	// commit unless NoFreelistSync is set; its adapter adds, per write
	// transaction, the pages that freelist occupies, derived from
	// Stats.FreelistInuse the way bbolt sizes the allocation
	// (FreelistInuse/pageSize + 1 pages), and nothing with NoFreelistSync.
	FreelistWrite int64
	// FreePages is the number of free pages, including those freed by
	// recent commits and not yet reusable (pending).
	FreePages int
	// AllocTime is quiver's TxStats.AllocTime since Open: the time commits
	// spent asking the freelist for pages. bbolt has no counterpart.
	AllocTime time.Duration
	// SpillTime is bbolt's TxStats.SpillTime since Open: the time commits
	// spent writing nodes into pages, which includes allocating those
	// pages from the freelist (but not the freelist's own page). quiver
	// has no counterpart.
	SpillTime time.Duration
	// WriteTime is TxStats.WriteTime since Open, in both engines: the
	// time commits spent in write and sync system calls (pages, freelist
	// and meta).
	WriteTime time.Duration
}

// OpenOptions are the settings the workloads vary.
type OpenOptions struct {
	// NoSync skips the sync of each commit (fixture loads only).
	NoSync bool
	// FillPercent is the bucket fill percent set in every write
	// transaction; 0 means the engine's default.
	FillPercent float64
}

// EngineSpec names an engine configuration and opens it.
type EngineSpec struct {
	// Name is the value of the engine= part of the benchmark name.
	Name string
	// Open opens or creates the database at path and creates the bench
	// bucket if needed. On a file that has the bucket it begins no write
	// transaction: it opens the database and looks the bucket up in one read
	// transaction, so that timing Open times what opening costs (see
	// TimeOpen).
	Open func(path string, o OpenOptions) (Engine, error)
}

// Engines lists every configuration the benchmarks run, in the order they
// run. An entry whose Open fails on a new file is skipped with the error
// (see Available), so a freelist that quiver does not have yet can be listed
// before it lands.
//
// The -nofls rows are bbolt with Options.NoFreelistSync: commits do not
// write the freelist, and Open rebuilds it by walking every page of the
// tree. quiver has no such row: it always persists its freelist as deltas
// (one small record per commit, a checkpoint every 64 records), so that
// neither commits nor Open pay in proportion to the free space.
var Engines = []EngineSpec{
	{Name: "quiver-array", Open: quiverOpener("array")},
	{Name: "quiver-hashmap", Open: quiverOpener("hashmap")},
	{Name: "bbolt-array", Open: bboltOpener("array", false)},
	{Name: "bbolt-hashmap", Open: bboltOpener("hashmap", false)},
	{Name: "bbolt-array-nofls", Open: bboltOpener("array", true)},
	{Name: "bbolt-hashmap-nofls", Open: bboltOpener("hashmap", true)},
}

// Available opens and closes a new database of spec in a temporary
// directory and returns the error that makes the engine unusable, if any.
func Available(spec EngineSpec) error {
	dir, err := os.MkdirTemp("", "quiver-bench-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e, err := spec.Open(filepath.Join(dir, "probe.db"), OpenOptions{NoSync: true})
	if err != nil {
		return fmt.Errorf("%s: %w", spec.Name, err)
	}
	return e.Close()
}

// errMissingBucket is returned by a read on a database without the bench
// bucket, which Open always creates.
var errMissingBucket = errors.New("bench: bucket missing")

// fileSize returns the size of the file at path.
func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// lastByte returns the last byte of v, or 0 for an empty value.
func lastByte(v []byte) uint64 {
	if len(v) == 0 {
		return 0
	}
	return uint64(v[len(v)-1])
}
