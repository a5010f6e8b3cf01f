package mvcc

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// HashKV returns a hash of the store's contents at revision rev (0: the
// current one), and the compaction revision it was computed under. Two
// stores given the same writes and compactions return the same hash,
// whatever their compaction progress; and it is the hash etcd's HashKV
// returns for the same history, so replicas of either can be compared.
//
// It is etcd's definition: a CRC-32 (Castagnoli) of the bucket name "key"
// then, in revision order, each revision's key and value as etcd stores
// them (main and sub revision big-endian around '_', 't' appended for a
// deletion; the protobuf encoding of the key-value), for every revision
// above the compaction up to rev, and below it only those a compaction at
// rev keeps.
func (s *Store) HashKV(rev int64) (hash uint32, compactRev int64, err error) {
	tx, err := s.db.Begin(false)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	cur := s.committed.Load()
	s.index.mu.RLock()
	compactRev = s.index.compacted
	if err := s.checkRevLocked(rev, cur); err != nil {
		s.index.mu.RUnlock()
		return 0, 0, err
	}
	if rev <= 0 {
		rev = cur
	}
	// The revisions at or below the compaction that a compaction at rev
	// keeps, as etcd's keep set.
	keep := map[Revision]bool{}
	s.index.tree.Ascend(func(ki *keyIndex) bool {
		if i, ok := ki.keepAt(rev); ok {
			_, _, evs := ki.split()
			if r := evs[i].rev(); r.Main <= compactRev {
				keep[r] = true
			}
		}
		return true
	})
	s.index.mu.RUnlock()

	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write([]byte("key"))
	var kbuf [revKeyLen + 2]byte
	var vbuf []byte
	c := tx.Bucket(revBucket).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, ok := revOfKey(k)
		if !ok {
			return 0, 0, fmt.Errorf("%w: revision key %x", errBadRecord, k)
		}
		if r.Main > rev {
			break
		}
		kv, tomb, err := decodeRecord(v, r)
		if err != nil {
			return 0, 0, err
		}
		if r.Main <= compactRev && len(keep) > 0 && !keep[r] {
			continue
		}
		if r.Main == compactRev && tomb {
			continue
		}
		h.Write(etcdRevKey(kbuf[:0], r, tomb))
		if tomb {
			kv = KeyValue{Key: kv.Key}
		}
		vbuf = appendEtcdKV(vbuf[:0], &kv)
		h.Write(vbuf)
	}
	return h.Sum32(), compactRev, tx.Err()
}

// etcdRevKey appends etcd's bucket key of revision r.
func etcdRevKey(dst []byte, r Revision, tomb bool) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Main))
	dst = append(dst, '_')
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Sub))
	if tomb {
		dst = append(dst, 't')
	}
	return dst
}

// appendEtcdKV appends the protobuf encoding of etcd's mvccpb.KeyValue:
// fields 1 key, 2 create_revision, 3 mod_revision, 4 version, 5 value,
// 6 lease, in that order, zero values left out (proto3).
func appendEtcdKV(dst []byte, kv *KeyValue) []byte {
	bytesField := func(tag byte, b []byte) {
		if len(b) > 0 {
			dst = append(dst, tag)
			dst = binary.AppendUvarint(dst, uint64(len(b)))
			dst = append(dst, b...)
		}
	}
	intField := func(tag byte, v int64) {
		if v != 0 {
			dst = append(dst, tag)
			dst = binary.AppendUvarint(dst, uint64(v))
		}
	}
	bytesField(1<<3|2, kv.Key)
	intField(2<<3, kv.CreateRevision)
	intField(3<<3, kv.ModRevision)
	intField(4<<3, kv.Version)
	bytesField(5<<3|2, kv.Value)
	intField(6<<3, kv.Lease)
	return dst
}
