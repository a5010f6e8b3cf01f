package quiver

import (
	"os"
	"time"
)

// FreelistType names a freelist implementation.
type FreelistType string

const (
	// FreelistArray keeps free page ids in a sorted array and allocates
	// first fit: bbolt's classic freelist.
	FreelistArray FreelistType = "array"
	// FreelistHashmap keeps free spans in size classes: O(1) allocation
	// and coalescing at any fragmentation, low page ids first.
	FreelistHashmap FreelistType = "hashmap"
)

// FreelistTypes lists the freelist implementations this build has; tests
// run the engine once per entry.
func FreelistTypes() []FreelistType {
	return []FreelistType{FreelistArray, FreelistHashmap}
}

// Defaults.
const (
	DefaultMaxBatchSize  = 1000
	DefaultMaxBatchDelay = 10 * time.Millisecond
	// DefaultAllocSize is the largest step by which the file grows.
	DefaultAllocSize = 16 << 20
	// DefaultFillPercent is how full split pages are filled.
	DefaultFillPercent = 0.5
)

// Options configures Open. A nil *Options means the defaults.
type Options struct {
	// Timeout is how long Open waits for the file lock; 0 waits forever.
	Timeout time.Duration
	// NoSync skips the fdatasync of each commit. A crash may then lose
	// recent commits or leave the file unopenable; for bulk loads that can
	// be redone.
	NoSync bool
	// NoGrowSync is accepted for bbolt compatibility. quiver's commit makes
	// the file size durable with its single fdatasync, so there is no
	// separate grow sync to skip.
	NoGrowSync bool
	// ReadOnly opens the file read-only under a shared lock. The database
	// shows the state committed when it was opened.
	ReadOnly bool
	// PageSize is the page size of a new file (default 4096). An existing
	// file keeps its own.
	PageSize int
	// InitialMmapSize is the minimum size of the first mapping. quiver
	// reserves generously anyway; readers never block the writer.
	InitialMmapSize int
	// MmapFlags are added to the flags of every mapping of the file
	// (MAP_SHARED), e.g. syscall.MAP_POPULATE to read the file in when it
	// is mapped.
	MmapFlags int
	// Mlock locks the file's pages in memory (mlock(2)): the whole file
	// when it is mapped and each extension as the file grows, so that no
	// read waits for the disk and none of the file is paged out. The
	// process must be allowed to lock the file's size (RLIMIT_MEMLOCK, or
	// CAP_IPC_LOCK); Open or the commit that grows the file fails if not.
	// DB.Compact opens its copy with the same options: while it runs, the
	// copy is locked too.
	Mlock bool
	// AllocSize is the largest step by which the file grows (default
	// 16 MiB); small files double instead. Growing ahead lets commits
	// overwrite pages rather than append.
	AllocSize int
	// FreelistType selects the freelist (default FreelistHashmap; bbolt's
	// default is its array freelist, which FreelistArray matches).
	FreelistType FreelistType
	// OpenFile opens the database file (default OpenOSFile): the seam for
	// fault injection. The file it returns must be the file at path (Open
	// checks, after locking it, that path still names it).
	OpenFile func(path string, flag int, mode os.FileMode) (File, error)
	// MaxBatchSize and MaxBatchDelay bound a Batch group (defaults
	// DefaultMaxBatchSize and DefaultMaxBatchDelay).
	MaxBatchSize  int
	MaxBatchDelay time.Duration
	// MaxSize caps the file size in bytes (0: no cap). A commit that needs
	// a larger file fails with ErrMaxSizeReached and changes nothing; an
	// existing file larger than MaxSize opens and may not grow.
	MaxSize int
	// Logger receives the database's messages (default: none are kept).
	Logger Logger
}

// DefaultOptions are the options used when Open is given nil.
var DefaultOptions = &Options{}
