package crash

import (
	"math/rand/v2"
	"os"
	"sync"

	"github.com/quiverdb/quiver"
)

// SectorSize is the unit a torn write keeps or loses.
const SectorSize = 512

// Kind is the kind of a recorded operation.
type Kind int

// Recorded operations.
const (
	Write Kind = iota
	Truncate
	Sync
	// SyncDir: the file's directory entry was made durable
	// (quiver.DirSyncer). Before the first one, a power cut may lose the
	// file whole.
	SyncDir
)

// Op is one recorded operation.
type Op struct {
	Kind Kind
	Off  int64  // Write: offset; Truncate: new size
	Data []byte // Write: a copy of the bytes
}

// Recorder records the operations on the one file it opens.
type Recorder struct {
	mu  sync.Mutex
	ops []Op
}

// OpenFile opens the real file and records what is done to it. It is meant
// for a file that does not exist yet, so that the history starts empty.
func (r *Recorder) OpenFile(path string, flag int, mode os.FileMode) (quiver.File, error) {
	f, err := quiver.OpenOSFile(path, flag, mode)
	if err != nil {
		return nil, err
	}
	return &file{File: f, r: r}, nil
}

// Len returns the number of operations recorded so far: a crash point.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

func (r *Recorder) add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

type file struct {
	quiver.File
	r *Recorder
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.r.add(Op{Kind: Write, Off: off, Data: append([]byte(nil), p...)})
	return f.File.WriteAt(p, off)
}

func (f *file) Truncate(size int64) error {
	f.r.add(Op{Kind: Truncate, Off: size})
	return f.File.Truncate(size)
}

func (f *file) Sync() error {
	f.r.add(Op{Kind: Sync})
	return f.File.Sync()
}

// Ops returns a copy of the operations recorded so far, in order.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

func (f *file) SyncDir() error {
	f.r.add(Op{Kind: SyncDir})
	if d, ok := f.File.(quiver.DirSyncer); ok {
		return d.SyncDir()
	}
	return nil
}

// Image returns the file a power cut after the first n operations could
// leave, choosing the fate of each unsynced operation with rng (nil keeps
// them all). A file whose directory entry was not synced in those n
// operations may be lost whole: Image then returns nil (no file) for one
// fate in three.
func (r *Recorder) Image(n int, rng *rand.Rand) []byte {
	r.mu.Lock()
	ops := r.ops[:n]
	r.mu.Unlock()
	synced := 0
	entry := false
	for i, op := range ops {
		switch op.Kind {
		case Sync:
			synced = i + 1
		case SyncDir:
			entry = true
		}
	}
	if !entry && rng != nil && rng.IntN(3) == 0 {
		return nil
	}
	var img []byte
	apply := func(op Op, keep int) {
		switch op.Kind {
		case Write:
			data := op.Data[:keep]
			if end := int(op.Off) + len(data); end > len(img) {
				img = append(img, make([]byte, end-len(img))...)
			}
			copy(img[op.Off:], data)
		case Truncate:
			if int(op.Off) <= len(img) {
				img = img[:op.Off]
			} else {
				img = append(img, make([]byte, int(op.Off)-len(img))...)
			}
		}
	}
	for i, op := range ops {
		keep := len(op.Data)
		if i >= synced && rng != nil {
			switch rng.IntN(3) {
			case 0: // dropped
				continue
			case 1: // torn: a prefix of whole sectors survives
				if op.Kind == Write && len(op.Data) > SectorSize {
					keep = SectorSize * (1 + rng.IntN((len(op.Data)-1)/SectorSize))
				}
			}
		}
		apply(op, keep)
	}
	return img
}
