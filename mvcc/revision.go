package mvcc

import (
	"encoding/binary"
	"fmt"

	"github.com/quiverdb/quiver"
)

// Revision identifies one change: Main is the revision of the write
// transaction that made it (one per transaction that changed anything),
// Sub its position among that transaction's changes.
type Revision struct {
	Main int64
	Sub  int64
}

// Less orders revisions.
func (a Revision) Less(b Revision) bool {
	return a.Main < b.Main || a.Main == b.Main && a.Sub < b.Sub
}

func (a Revision) String() string { return fmt.Sprintf("%d.%d", a.Main, a.Sub) }

// KeyValue is a key at a revision.
type KeyValue struct {
	Key   []byte
	Value []byte
	// CreateRevision is the main revision of the put that began the key's
	// current generation (the first put after it was last deleted).
	CreateRevision int64
	// ModRevision is the main revision of the key's last change.
	ModRevision int64
	// Version counts the puts of the generation: 1 after the first.
	Version int64
	// Lease is the lease the last put attached, 0 for none.
	Lease int64
}

// The store keeps every revision in one bucket: the key is the revision,
// big-endian main then sub, so that byte order is revision order; the
// value is a record.
const revKeyLen = 16

func putRevKey(b []byte, r Revision) []byte {
	binary.BigEndian.PutUint64(b[0:], uint64(r.Main))
	binary.BigEndian.PutUint64(b[8:], uint64(r.Sub))
	return b[:revKeyLen]
}

func revOfKey(b []byte) (Revision, bool) {
	if len(b) != revKeyLen {
		return Revision{}, false
	}
	return Revision{Main: int64(binary.BigEndian.Uint64(b)), Sub: int64(binary.BigEndian.Uint64(b[8:]))}, true
}

// A record is a flags byte (recTombstone), then uvarints create revision,
// version, zigzag lease and key length, then the key and the value.
const recTombstone = 1

func appendRecord(dst []byte, kv *KeyValue, tomb bool) []byte {
	flags := byte(0)
	if tomb {
		flags = recTombstone
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(kv.CreateRevision))
	dst = binary.AppendUvarint(dst, uint64(kv.Version))
	dst = binary.AppendVarint(dst, kv.Lease)
	dst = binary.AppendUvarint(dst, uint64(len(kv.Key)))
	dst = append(dst, kv.Key...)
	return append(dst, kv.Value...)
}

// recordSize bounds the length of kv's record, for allocating it once.
func recordSize(kv *KeyValue) int {
	return 1 + 3*binary.MaxVarintLen64 + binary.MaxVarintLen32 + len(kv.Key) + len(kv.Value)
}

// errBadRecord is damage in the store: it matches quiver.ErrCorrupt, as
// damage the engine finds does.
var errBadRecord = fmt.Errorf("mvcc: malformed revision record: %w", quiver.ErrCorrupt)

// decodeRecord decodes record b of revision r. The key and value alias b.
func decodeRecord(b []byte, r Revision) (kv KeyValue, tomb bool, err error) {
	if len(b) < 1 {
		return kv, false, errBadRecord
	}
	tomb = b[0]&recTombstone != 0
	off := 1
	next := func() uint64 {
		if err != nil {
			return 0
		}
		v, n := binary.Uvarint(b[off:])
		if n <= 0 {
			err = errBadRecord
			return 0
		}
		off += n
		return v
	}
	kv.CreateRevision = int64(next())
	kv.Version = int64(next())
	if err == nil {
		v, n := binary.Varint(b[off:])
		if n <= 0 {
			return kv, false, errBadRecord
		}
		kv.Lease, off = v, off+n
	}
	klen := next()
	if err != nil || klen > uint64(len(b)-off) {
		return kv, false, errBadRecord
	}
	kv.Key = b[off : off+int(klen) : off+int(klen)]
	kv.Value = b[off+int(klen):]
	kv.ModRevision = r.Main
	return kv, tomb, nil
}
