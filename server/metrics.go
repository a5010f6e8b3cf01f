package server

import (
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/quiverdb/quiver"
	"go.etcd.io/raft/v3"
)

// metrics are the member's Prometheus metrics, served on /metrics by Run.
// Where etcd has a metric of the same meaning, it has etcd's name, so that
// dashboards made for etcd read them; the engine's own are quiver_*.
type metrics struct {
	reg           *prometheus.Registry
	leaderChanges prometheus.Counter
	failed        prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_leader_changes_seen_total",
			Help: "The number of leader changes seen."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_proposals_failed_total",
			Help: "The number of failed proposals seen."}),
	}
	// The Go runtime's and the process's, as etcd serves them.
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	stats := func(f func(quiver.Stats) int) func() float64 {
		return func() float64 { return float64(f(s.cfg.DB.Stats())) }
	}
	m.reg.MustRegister(
		m.leaderChanges, m.failed,
		gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.",
			func() float64 { return b(s.node.Status().Lead != raft.None) }),
		gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.",
			func() float64 { return b(s.node.Status().RaftState == raft.StateLeader) }),
		gauge("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.",
			func() float64 { return float64(s.node.Status().GetCommit()) }),
		gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.",
			func() float64 { return float64(s.node.Applied()) }),
		gauge("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.",
			func() float64 {
				fi, err := os.Stat(s.cfg.DB.Path())
				if err != nil {
					return 0
				}
				return float64(fi.Size())
			}),
		gauge("etcd_debugging_mvcc_current_revision", "The current revision of the store.",
			func() float64 { return float64(s.store.Rev()) }),
		gauge("quiver_raft_log_cache_bytes", "Bytes of raft log entries cached in memory.",
			func() float64 { return float64(s.node.Storage().CacheBytes()) }),
		gauge("quiver_freelist_free_pages", "Free pages ready for allocation.", stats(func(st quiver.Stats) int { return st.FreePageN })),
		gauge("quiver_freelist_pending_pages", "Freed pages waiting for readers to finish.", stats(func(st quiver.Stats) int { return st.PendingPageN })),
		gauge("quiver_freelist_free_bytes", "Bytes in free and pending pages.", stats(func(st quiver.Stats) int { return st.FreeAlloc })),
		gauge("quiver_freelist_inuse_bytes", "Bytes of the freelist's persisted form.", stats(func(st quiver.Stats) int { return st.FreelistInuse })),
		gauge("quiver_freelist_written_bytes", "Bytes of freelist written since open.", stats(func(st quiver.Stats) int { return st.FreelistWrite })),
		gauge("quiver_read_transactions_open", "Read transactions open.", stats(func(st quiver.Stats) int { return st.OpenTxN })),
	)
	return m
}

// FsyncTimer times the fdatasyncs of the files opened through it, into
// etcd's histograms: the database's (Options.OpenFile: OpenFile) and the
// raft write-ahead file's (Config.WALOpenFile: OpenWALFile).
type FsyncTimer struct {
	backend, wal prometheus.Histogram
}

// NewFsyncTimer returns a timer whose histograms are
// etcd_disk_backend_commit_duration_seconds (a synced engine commit has one
// fdatasync, which is most of its time) and
// etcd_disk_wal_fsync_duration_seconds.
func NewFsyncTimer() *FsyncTimer {
	return &FsyncTimer{
		backend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "etcd_disk_backend_commit_duration_seconds",
			Help:    "The latency distributions of the engine's fdatasync, one per synced commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to ~16 s
		}),
		wal: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "etcd_disk_wal_fsync_duration_seconds",
			Help:    "The latency distributions of the raft write-ahead file's fdatasync, one per Ready that appends entries.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1 ms to ~13 s
		}),
	}
}

// OpenFile is an Options.OpenFile that times the file's syncs.
func (f *FsyncTimer) OpenFile(path string, flag int, mode os.FileMode) (quiver.File, error) {
	return openTimed(path, flag, mode, f.backend)
}

// OpenWALFile is a raftadapter Config.WALOpenFile that times the file's
// syncs.
func (f *FsyncTimer) OpenWALFile(path string, flag int, mode os.FileMode) (quiver.File, error) {
	return openTimed(path, flag, mode, f.wal)
}

func openTimed(path string, flag int, mode os.FileMode, hist prometheus.Histogram) (quiver.File, error) {
	file, err := quiver.OpenOSFile(path, flag, mode)
	if err != nil {
		return nil, err
	}
	return timedFile{File: file, hist: hist}, nil
}

type timedFile struct {
	quiver.File
	hist prometheus.Histogram
}

func (f timedFile) Sync() error {
	start := time.Now()
	err := f.File.Sync()
	f.hist.Observe(time.Since(start).Seconds())
	return err
}

// SyncDir passes the directory sync through (quiver.DirSyncer).
func (f timedFile) SyncDir() error {
	if d, ok := f.File.(quiver.DirSyncer); ok {
		return d.SyncDir()
	}
	return nil
}
