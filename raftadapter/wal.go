package raftadapter

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mmap"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The write-ahead file (Config.WAL) makes a Ready's entries and HardState
// durable with one sequential write and one fdatasync, so that the
// engine's commits, which write the same entries into the log bucket and
// apply the committed ones, can skip their sync (Tx.DeferSync): a
// copy-on-write commit's sync covers several scattered pages, the file's
// one short run.
//
// The file holds the records written since the engine's last synced
// commit of this node, a generation: a random number, stored in the
// engine by that commit (walGenKey) and in every record. After a crash,
// the records of the engine's generation are written into the engine's
// log in order (each one's entries replace the log from their first index
// on, as raft's appends do), in one synced commit that starts a new
// generation; the file is then written again from its start. A record
// of another generation, a torn one or the end of the file ends the
// replay: each record is synced before anything depends on it, so only
// the last one can be torn.
//
// Record: payload length (4 bytes, little endian), CRC-32C of the rest
// (4), generation (8), payload. Payload: the HardState's length (uvarint;
// 0: none) and encoding, then each entry's length (uvarint) and encoding.

// walGenKey holds the generation the write-ahead file's records must have
// to be replayed: 8 bytes, big endian. Absent: none may be.
var walGenKey = []byte("walgen")

// walRotate is the size past which the node makes its next commit a
// synced one and starts a new generation at the file's start.
const walRotate = 16 << 20

// walSlack is reserved past walRotate for the record that crosses it.
const walSlack = 4 << 20

// walMaxRecord bounds a record's payload as replay reads it: a larger
// length is damage, not a record.
const walMaxRecord = 1 << 30

const walHeader = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// wal is the write-ahead file, used by the node's loop only.
type wal struct {
	f      quiver.File
	rotate int64 // walRotate, or less in tests
	gen    uint64
	off    int64  // where the next record goes
	buf    []byte // the record being written
}

// openWAL opens (creating) the write-ahead file at path with open (nil:
// quiver.OpenOSFile, whose Sync is fdatasync).
func openWAL(path string, open func(string, int, os.FileMode) (quiver.File, error)) (*wal, error) {
	if open == nil {
		open = quiver.OpenOSFile
	}
	_, statErr := os.Stat(path)
	f, err := open(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("raftadapter: opening the write-ahead file: %w", err)
	}
	fail := func(err error) (*wal, error) {
		f.Close()
		return nil, fmt.Errorf("raftadapter: preparing the write-ahead file: %w", err)
	}
	// Records are written over reserved blocks: an fdatasync that had
	// to record a new size as well would cost more.
	if size, err := f.Size(); err != nil || size < walRotate+walSlack {
		if err := errors.Join(err, mmap.Preallocate(f.Fd(), walRotate+walSlack), f.Sync()); err != nil {
			return fail(err)
		}
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// The file's entry must survive a crash before any record does.
		if d, ok := f.(quiver.DirSyncer); ok {
			err = d.SyncDir()
		} else {
			err = syncDir(filepath.Dir(path))
		}
		if err != nil {
			return fail(err)
		}
	}
	return &wal{f: f, rotate: walRotate}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// newGen returns a random generation other than 0 and old.
func newGen(old uint64) uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if g := binary.LittleEndian.Uint64(b[:]); g != 0 && g != old {
			return g
		}
	}
}

// append writes a record of hs (nil: none) and ents and syncs it.
func (w *wal) append(hs *pb.HardState, ents []*pb.Entry) error {
	b := append(w.buf[:0], make([]byte, walHeader)...)
	if hs == nil {
		b = append(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(proto.Size(hs)))
		var err error
		if b, err = (proto.MarshalOptions{}).MarshalAppend(b, hs); err != nil {
			return err
		}
	}
	for _, e := range ents {
		b = binary.AppendUvarint(b, uint64(proto.Size(e)))
		var err error
		if b, err = (proto.MarshalOptions{}).MarshalAppend(b, e); err != nil {
			return err
		}
	}
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)-walHeader))
	binary.LittleEndian.PutUint64(b[8:], w.gen)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return fmt.Errorf("raftadapter: writing the write-ahead file: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("raftadapter: syncing the write-ahead file: %w", err)
	}
	w.off += int64(len(b))
	if cap(b) <= 4<<20 {
		w.buf = b[:0]
	} else {
		w.buf = nil // a large Ready's buffer is not kept
	}
	return nil
}

// full reports whether the records have grown past w.rotate.
func (w *wal) full() bool { return w.off >= w.rotate }

// reset starts generation gen at the file's start, once the engine has
// made gen durable: the records before are in the engine now. A file
// grown far past walRotate (a large Ready) is cut back.
func (w *wal) reset(gen uint64) error {
	w.gen, w.off = gen, 0
	if size, err := w.f.Size(); err == nil && size > 4*walRotate {
		return w.f.Truncate(walRotate + walSlack)
	}
	return nil
}

func (w *wal) close() error { return w.f.Close() }

// replay calls fn with each record of generation gen, in order, from the
// file's start to the first record that is not one.
func (w *wal) replay(gen uint64, fn func(hs *pb.HardState, ents []*pb.Entry) error) error {
	if gen == 0 {
		return nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(w.f, 0, 1<<62), 1<<20)
	head := make([]byte, walHeader)
	var body []byte
	for {
		if _, err := io.ReadFull(r, head); err != nil {
			return nil // the end of the file, or a torn header
		}
		n := binary.LittleEndian.Uint32(head[0:])
		if n > walMaxRecord || binary.LittleEndian.Uint64(head[8:]) != gen {
			return nil
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return nil
		}
		sum := crc32.Update(crc32.Checksum(head[8:], castagnoli), castagnoli, body)
		if sum != binary.LittleEndian.Uint32(head[4:]) {
			return nil
		}
		hs, ents, err := decodeWALRecord(body)
		if err != nil {
			return err
		}
		if err := fn(hs, ents); err != nil {
			return err
		}
	}
}

// decodeWALRecord decodes a record's payload, whose checksum matched:
// what does not decode is damage, not a torn write.
func decodeWALRecord(b []byte) (*pb.HardState, []*pb.Entry, error) {
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, corruptf("a write-ahead record does not decode")
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	v, err := next()
	if err != nil {
		return nil, nil, err
	}
	var hs *pb.HardState
	if len(v) > 0 {
		hs = &pb.HardState{}
		if err := proto.Unmarshal(v, hs); err != nil {
			return nil, nil, corruptf("a write-ahead record's HardState does not decode: %v", err)
		}
	}
	var ents []*pb.Entry
	for len(b) > 0 {
		v, err := next()
		if err != nil {
			return nil, nil, err
		}
		e := &pb.Entry{}
		if err := proto.Unmarshal(v, e); err != nil {
			return nil, nil, corruptf("a write-ahead record's entry does not decode: %v", err)
		}
		ents = append(ents, e)
	}
	return hs, ents, nil
}

// recoverWAL opens the write-ahead file at path and writes the records of
// the engine's generation into the log, in one synced commit that starts
// a new generation. A database with a generation (it did not stop cleanly
// with its file) needs its file: without one (path ""), or with it
// missing, it refuses to start.
func recoverWAL(db *quiver.DB, s *Storage, path string, open func(string, int, os.FileMode) (quiver.File, error)) (*wal, error) {
	var gen uint64
	err := db.View(func(tx *quiver.Tx) error {
		if v := tx.Bucket(bucketName).Get(walGenKey); v != nil {
			if len(v) != 8 {
				return corruptf("the write-ahead generation is %d bytes, not 8", len(v))
			}
			gen = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if path == "" {
		if gen != 0 {
			return nil, errors.New("raftadapter: the database did not stop cleanly with a write-ahead file, and its last entries may be only there: start it with that file (Config.WAL)")
		}
		return nil, nil
	}
	if _, err := os.Stat(path); gen != 0 && errors.Is(err, os.ErrNotExist) {
		return nil, corruptf("the write-ahead file %s is missing, and the database needs its records (generation %016x)", path, gen)
	}
	w, err := openWAL(path, open)
	if err != nil {
		return nil, err
	}
	next := newGen(gen)
	replayed := 0
	err = db.Update(func(tx *quiver.Tx) error {
		wr, err := s.Writer(tx)
		if err != nil {
			return err
		}
		var hs *pb.HardState
		err = w.replay(gen, func(h *pb.HardState, ents []*pb.Entry) error {
			replayed++
			if h != nil {
				hs = h
			}
			return wr.Append(ents)
		})
		if err != nil {
			return err
		}
		if hs != nil {
			if err := wr.SetHardState(mergeHardState(wr.state.hard, hs)); err != nil {
				return err
			}
		}
		if c := wr.state.hard.GetCommit(); c > wr.state.last || wr.state.applied > wr.state.last {
			return corruptf("after %d write-ahead records the log ends at %d, before the commit index %d or the applied index %d", replayed, wr.state.last, c, wr.state.applied)
		}
		return wr.b.Put(walGenKey, binary.BigEndian.AppendUint64(nil, next))
	})
	if err == nil {
		err = w.reset(next)
	}
	if err != nil {
		w.close()
		return nil, fmt.Errorf("raftadapter: replaying the write-ahead file: %w", err)
	}
	return w, nil
}

// mergeHardState is the HardState after a replay: the term and vote of
// the newest record (they are written ahead of the engine), and the
// higher of the two commit indexes (a commit index alone is written to
// the engine only).
func mergeHardState(engine, wal *pb.HardState) *pb.HardState {
	if engine != nil && engine.GetTerm() > wal.GetTerm() {
		return engine
	}
	hs := proto.Clone(wal).(*pb.HardState)
	if engine != nil && engine.GetCommit() > hs.GetCommit() {
		hs.Commit = new(engine.GetCommit())
	}
	return hs
}
