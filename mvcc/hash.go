package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
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
	// At the latest revision, a compaction since it was read is no error
	// (see Range).
	for attempt := 0; ; attempt++ {
		hash, compactRev, err = s.hashKV(rev)
		if rev > 0 || attempt == 8 || !errors.Is(err, ErrCompacted) || !s.waitCompactionCommitted() {
			return hash, compactRev, err
		}
	}
}

func (s *Store) hashKV(rev int64) (hash uint32, compactRev int64, err error) {
	// As etcd, a revision a recent compaction was at answers with the hash
	// its deletion pass computed, under the compaction before it.
	if h, ok := s.compactor.hashAt(rev); ok {
		return h.hash, max(h.prev, 0), nil
	}
	// The revision before the snapshot: every revision up to it is in the
	// snapshot (the other order could miss the commit between them).
	cur := s.committed.Load()
	if readAtHook != nil {
		readAtHook()
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	s.index.mu.RLock()
	compacted := s.index.compacted
	if err := s.checkRevLocked(rev, cur); err != nil {
		s.index.mu.RUnlock()
		return 0, 0, err
	}
	if rev <= 0 {
		rev = cur
	}
	// What a compaction at rev would keep, etcd's keep set: only its part
	// at or below the compaction matters, and whether it is empty.
	keep := map[Revision]bool{}
	keepAny := false
	s.index.ascendFrom(nil, func(_ []byte, h hist) bool {
		if i, ok := h.hashKeeps(rev); ok {
			keepAny = true
			_, _, evs := h.split()
			if r := evs[i].rev(); r.Main <= compacted {
				keep[r] = true
			}
		}
		return true
	})
	s.index.mu.RUnlock()

	h := newHasher(compacted, rev, keepAny)
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
		h.add(r, kv, tomb, keep[r])
	}
	return h.sum(), max(compacted, 0), tx.Err()
}

// hasher computes etcd's hash of the revisions up to rev under the
// compaction at prev (-1: none): every revision above prev, and at or
// below it only those kept (or all of them if nothing at all is kept, an
// etcd quirk kept for equality), except a deletion at prev itself.
type hasher struct {
	h          hash.Hash32
	prev, rev  int64
	keepAny    bool
	kbuf, vbuf []byte
}

func newHasher(prev, rev int64, keepAny bool) *hasher {
	h := &hasher{h: crc32.New(crc32.MakeTable(crc32.Castagnoli)), prev: prev, rev: rev, keepAny: keepAny}
	h.h.Write([]byte("key"))
	return h
}

// add hashes revision r (its record kv, a tombstone or not), given whether
// the keep set holds it. Revisions come in order.
func (h *hasher) add(r Revision, kv KeyValue, tomb, kept bool) {
	if r.Main > h.rev || r.Main <= h.prev && h.keepAny && !kept || r.Main == h.prev && tomb {
		return
	}
	h.kbuf = etcdRevKey(h.kbuf[:0], r, tomb)
	h.h.Write(h.kbuf)
	if tomb {
		kv = KeyValue{Key: kv.Key}
	}
	h.vbuf = appendEtcdKV(h.vbuf[:0], &kv)
	h.h.Write(h.vbuf)
}

func (h *hasher) sum() uint32 { return h.h.Sum32() }

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
