package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Leases, as etcd has them: a lease is granted, revoked and checkpointed
// through the raft log, so every member holds the same leases, with the
// same keys attached; whether one has expired is decided by the leader
// alone, from its own clock, and an expired lease is revoked through the
// log (its keys deleted in the revoke's revision). The leader renews a
// lease on a keep-alive; a follower's keep-alive goes through the log as a
// checkpoint of the full TTL, which the leader applies as a renewal. The
// leader checkpoints every lease's remaining TTL now and then, so that a
// new leader starts from it rather than from the whole TTL.

var (
	// ErrLeaseNotFound and ErrLeaseExist are etcd's.
	ErrLeaseNotFound = errors.New("server: requested lease not found")
	ErrLeaseExist    = errors.New("server: lease already exists")
	// ErrLeaseTTLTooLarge: a TTL above etcd's largest (9e9 s).
	ErrLeaseTTLTooLarge = errors.New("server: too large lease TTL")
)

var leaseBucket = []byte("server.leases") // 8-byte id -> 8-byte TTL | 8-byte remaining TTL (0: none)

// minLeaseTTL is the shortest TTL granted, in seconds: a lease must
// outlive a leader election; maxLeaseTTL etcd's longest.
const (
	minLeaseTTL = 2
	maxLeaseTTL = 9_000_000_000
)

// checkpointBatch bounds the leases of one checkpoint entry.
const checkpointBatch = 1000

// lease is one lease in memory.
type lease struct {
	id, ttl   int64
	remaining int64     // the last checkpointed remaining TTL, 0 if none
	expiry    time.Time // the leader's deadline; zero on a follower
	keys      map[string]struct{}
}

// lessor holds every lease and the keys attached, the same on every
// member (changed only by applied entries), and the leader's deadlines.
type lessor struct {
	mu       sync.Mutex
	leases   map[int64]*lease
	keyLease map[string]int64
	leading  bool
}

func newLessor() *lessor {
	return &lessor{leases: map[int64]*lease{}, keyLease: map[string]int64{}}
}

// load rebuilds the lessor from the database: the leases from their
// bucket, the attachments from the store's keys.
func (l *lessor) load(db *quiver.DB, store *mvcc.Store) error {
	leases := map[int64]*lease{}
	err := db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket(leaseBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) != 16 {
				return fmt.Errorf("server: lease record %x of %d bytes: %w", k, len(v), quiver.ErrCorrupt)
			}
			id := int64(binary.BigEndian.Uint64(k))
			leases[id] = &lease{id: id, ttl: int64(binary.BigEndian.Uint64(v)), remaining: int64(binary.BigEndian.Uint64(v[8:])), keys: map[string]struct{}{}}
			return nil
		})
	})
	if err != nil {
		return err
	}
	keyLease := map[string]int64{}
	if len(leases) > 0 {
		res, err := store.Range([]byte{0}, []byte{0}, mvcc.RangeOptions{})
		if err != nil {
			return err
		}
		for _, kv := range res.KVs {
			if ls := leases[kv.Lease]; kv.Lease != 0 && ls != nil {
				ls.keys[string(kv.Key)] = struct{}{}
				keyLease[string(kv.Key)] = kv.Lease
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases, l.keyLease = leases, keyLease
	if l.leading {
		l.startLeadingLocked(time.Now())
	}
	return nil
}

func putLease(tx *quiver.Tx, ls *lease) error {
	b, err := tx.CreateBucketIfNotExists(leaseBucket)
	if err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(ls.ttl)), uint64(ls.remaining))
	return b.Put(binary.BigEndian.AppendUint64(nil, uint64(ls.id)), v)
}

// exists reports whether lease id exists.
func (l *lessor) exists(id int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leases[id] != nil
}

// grant applies a LeaseGrant.
func (l *lessor) grant(tx *quiver.Tx, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.ID <= 0 {
		return nil, fmt.Errorf("%w: lease id %d", errUnsupported, r.ID)
	}
	if r.TTL > maxLeaseTTL {
		return nil, ErrLeaseTTLTooLarge
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leases[r.ID] != nil {
		return nil, ErrLeaseExist
	}
	ls := &lease{id: r.ID, ttl: max(r.TTL, minLeaseTTL), keys: map[string]struct{}{}}
	if err := putLease(tx, ls); err != nil {
		return nil, err
	}
	l.leases[ls.id] = ls
	if l.leading {
		ls.expiry = time.Now().Add(time.Duration(ls.ttl) * time.Second)
	}
	return &pb.LeaseGrantResponse{ID: ls.id, TTL: ls.ttl}, nil
}

// checkpoint applies a LeaseCheckpoint: each lease's remaining TTL is
// recorded; the leader renews the lease to it.
func (l *lessor) checkpoint(tx *quiver.Tx, r *pb.LeaseCheckpointRequest) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, c := range r.Checkpoints {
		ls := l.leases[c.ID]
		if ls == nil {
			continue // revoked meanwhile
		}
		// 0 clears the checkpoint: the lease was renewed since.
		ls.remaining = min(max(c.Remaining_TTL, 0), ls.ttl)
		if err := putLease(tx, ls); err != nil {
			return err
		}
		// The leader's own checkpoints restate its deadline; a
		// follower's keep-alive (the full TTL) moves it later.
		if next := now.Add(time.Duration(ls.remaining) * time.Second); l.leading && ls.remaining > 0 && next.After(ls.expiry.Add(time.Second)) {
			ls.expiry = next
		}
	}
	return nil
}

// revokeKeys returns the keys attached to lease id, sorted (the order of
// their deletion, the same on every member).
func (l *lessor) revokeKeys(id int64) ([]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[id]
	if ls == nil {
		return nil, false
	}
	return slices.Sorted(func(yield func(string) bool) {
		for k := range ls.keys {
			if !yield(k) {
				return
			}
		}
	}), true
}

// remove forgets lease id and its attachments, and its record in tx.
func (l *lessor) remove(tx *quiver.Tx, id int64) error {
	if b := tx.Bucket(leaseBucket); b != nil {
		if err := b.Delete(binary.BigEndian.AppendUint64(nil, uint64(id))); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls := l.leases[id]; ls != nil {
		for k := range ls.keys {
			delete(l.keyLease, k)
		}
		delete(l.leases, id)
	}
	return nil
}

// attach records that key now has lease id (0: none), after a put.
func (l *lessor) attach(key string, id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.keyLease[key]; old != 0 {
		if ls := l.leases[old]; ls != nil {
			delete(ls.keys, key)
		}
		delete(l.keyLease, key)
	}
	if ls := l.leases[id]; id != 0 && ls != nil {
		ls.keys[key] = struct{}{}
		l.keyLease[key] = id
	}
}

// setLeading starts or stops the leader's deadlines: a new leader gives
// every lease its checkpointed remaining TTL (or its TTL) from now.
func (l *lessor) setLeading(leading bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if leading == l.leading {
		return
	}
	l.leading = leading
	if leading {
		l.startLeadingLocked(time.Now())
		return
	}
	for _, ls := range l.leases {
		ls.expiry = time.Time{}
	}
}

func (l *lessor) startLeadingLocked(now time.Time) {
	for _, ls := range l.leases {
		d := ls.ttl
		if ls.remaining > 0 {
			d = ls.remaining
		}
		ls.expiry = now.Add(time.Duration(d) * time.Second)
	}
}

// expired returns up to n leases past their deadline (the leader's).
func (l *lessor) expired(now time.Time, n int) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int64
	for id, ls := range l.leases {
		if l.leading && !ls.expiry.IsZero() && now.After(ls.expiry) {
			out = append(out, id)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// renew extends lease id on the leader; it returns the TTL, 0 if the lease
// does not exist, whether this member leads, and whether a checkpoint of
// the lease must be cleared (so that a new leader does not count from it).
func (l *lessor) renew(id int64) (ttl int64, leading, clear bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leading {
		return 0, false, false
	}
	ls := l.leases[id]
	if ls == nil {
		return 0, true, false
	}
	ls.expiry = time.Now().Add(time.Duration(ls.ttl) * time.Second)
	return ls.ttl, true, ls.remaining > 0
}

// status returns lease id's granted TTL, its remaining TTL (the leader's
// deadline, else the last checkpoint or the TTL) and, if asked, its keys.
func (l *lessor) status(id int64, keys bool) (ttl, remaining int64, ks [][]byte, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[id]
	if ls == nil {
		return 0, 0, nil, false
	}
	remaining = ls.ttl
	switch {
	case !ls.expiry.IsZero():
		remaining = max(int64(time.Until(ls.expiry).Seconds()+0.5), 0)
	case ls.remaining > 0:
		remaining = ls.remaining
	}
	if keys {
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range ls.keys {
				if !yield(k) {
					return
				}
			}
		}) {
			ks = append(ks, []byte(k))
		}
	}
	return ls.ttl, remaining, ks, true
}

// ids lists the leases.
func (l *lessor) ids() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(func(yield func(int64) bool) {
		for id := range l.leases {
			if !yield(id) {
				return
			}
		}
	})
}

// remainings is every lease's remaining TTL on the leader, for a
// checkpoint.
func (l *lessor) remainings() []*pb.LeaseCheckpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*pb.LeaseCheckpoint
	for id, ls := range l.leases {
		if !ls.expiry.IsZero() {
			out = append(out, &pb.LeaseCheckpoint{ID: id, Remaining_TTL: max(int64(time.Until(ls.expiry).Seconds()), 1)})
		}
	}
	return out
}
