package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// TestMaintenance: Status names the leader and indexes on every member;
// HashKV agrees across members; Defragment keeps the data; a snapshot
// saved with etcd's own client code passes its sha256 check and opens as
// a quiver database holding the data.
func TestMaintenance(t *testing.T) {
	c := newTestCluster(t, 3)
	cli := client(t, c.addrs...)
	x := ctx(t)
	var last *clientv3.PutResponse
	for i := 0; i < 20; i++ {
		last = must[*clientv3.PutResponse](t)(cli.Put(x, "k"+string(rune('a'+i)), "v"))
	}
	var leader uint64
	var hash uint32
	for _, addr := range c.addrs {
		st := must[*clientv3.StatusResponse](t)(cli.Status(x, addr))
		if st.Leader == 0 || (leader != 0 && st.Leader != leader) || st.RaftTerm == 0 || st.DbSize == 0 || st.Version != APIVersion {
			t.Fatalf("status of %s: %+v", addr, st)
		}
		leader = st.Leader
		// Every member, once it applied the last put, has the same hash.
		one := client(t, addr)
		must[*clientv3.GetResponse](t)(one.Get(x, "ka"))
		h := must[*clientv3.HashKVResponse](t)(cli.HashKV(x, addr, last.Header.Revision))
		if hash != 0 && h.Hash != hash {
			t.Fatalf("HashKV of %s is %08x, another member's %08x", addr, h.Hash, hash)
		}
		hash = h.Hash
	}
	if _, err := cli.Defragment(x, c.addrs[0]); err != nil {
		t.Fatal(err)
	}
	if g := must[*clientv3.GetResponse](t)(cli.Get(x, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())); g.Count != 20 {
		t.Fatalf("%d keys after defragment", g.Count)
	}
	alarms := must[*clientv3.AlarmResponse](t)(cli.AlarmList(x))
	if len(alarms.Alarms) != 0 {
		t.Fatalf("alarms: %v", alarms.Alarms)
	}

	path := filepath.Join(t.TempDir(), "snap.db")
	if _, err := snapshot.SaveWithVersion(x, zap.NewNop(), clientv3.Config{Endpoints: c.addrs[:1], Logger: zap.NewNop()}, path); err != nil {
		t.Fatalf("etcd's snapshot save: %v", err)
	}
	// The saved file is the database and its sha256, as etcd's.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(raw) - sha256.Size
	if n <= 0 || n%512 != 0 {
		t.Fatalf("the saved snapshot is %d bytes", len(raw))
	}
	if sum := sha256.Sum256(raw[:n]); !bytes.Equal(sum[:], raw[n:]) {
		t.Fatal("the snapshot's sha256 does not match its data")
	}
	if err := os.WriteFile(path, raw[:n], 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := mvcc.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if res, err := s.Range([]byte("k"), mvcc.Prefix([]byte("k")), mvcc.RangeOptions{CountOnly: true}); err != nil || res.Count != 20 {
		t.Fatalf("the snapshot holds %v keys (%v)", res, err)
	}
}

// TestQuota: writes that would take the space in use past the quota are
// refused with etcd's NOSPACE error and raise the alarm on every member;
// while it is raised, puts, transactions with a put and lease grants are
// refused (by the proposer and, for what reaches the log, by every
// member's apply), reads, deletes and compactions go on; once space is
// freed and the alarm cleared, writes go on.
func TestQuota(t *testing.T) {
	const quota = 2 << 20
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.QuotaBackendBytes = quota; cfg.LogWindow = 64 << 10 })
	cli := client(t, c.addrs...)
	x := ctx(t)
	val := strings.Repeat("v", 32<<10)
	refused := -1
	for i := 0; i < 200; i++ {
		_, err := cli.Put(x, fmt.Sprintf("k%03d", i), val)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			refused = i
			break
		}
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if refused < 0 {
		t.Fatalf("200 puts of 32 KiB under a %d-byte quota were all taken", quota)
	}
	t.Logf("put %d refused for space", refused)
	var alarms *clientv3.AlarmResponse
	for deadline := time.Now().Add(10 * time.Second); ; {
		alarms = must[*clientv3.AlarmResponse](t)(cli.AlarmList(x))
		if len(alarms.Alarms) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarms after the refusal: %v", alarms.Alarms)
	}
	for i, addr := range c.addrs {
		// Each member applied the alarm by the time it answers a
		// linearizable read.
		must[*clientv3.GetResponse](t)(client(t, addr).Get(x, "k000"))
		st := must[*clientv3.StatusResponse](t)(cli.Status(x, addr))
		if len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "alarm:NOSPACE") || st.DbSizeQuota != quota {
			t.Fatalf("member %d's status: errors %q, quota %d", i, st.Errors, st.DbSizeQuota)
		}
		if !c.servers[i].alarms.raised(pb.AlarmType_NOSPACE) {
			t.Fatalf("member %d has not applied the alarm", i)
		}
	}

	// Refused while raised: a small put, a transaction with a put on its
	// other path, a lease grant.
	if _, err := cli.Put(x, "small", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("small put under the alarm: %v", err)
	}
	_, err := cli.Txn(x).If(clientv3.Compare(clientv3.Version("nope"), "=", 1)).Then(clientv3.OpPut("a", "b")).Commit()
	if !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("txn with a put under the alarm: %v", err)
	}
	if _, err := cli.Grant(x, 60); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("lease grant under the alarm: %v", err)
	}
	// A put that reaches the log anyway (proposed by a member that had not
	// applied the alarm yet) is refused by every member's apply.
	data := must[[]byte](t)(proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("late"), Value: []byte("v")}}))
	if v, err := c.servers[0].Node().Propose(x, data); err != nil || !errors.Is(v.(error), ErrNoSpace) {
		t.Fatalf("a put in the log under the alarm gave %v, %v", v, err)
	}
	if g := must[*clientv3.GetResponse](t)(cli.Get(x, "late")); g.Count != 0 {
		t.Fatal("the put in the log under the alarm was applied")
	}

	// Reads, deletes and compaction go on; the freed space lets writes in
	// once the alarm is cleared.
	if g := must[*clientv3.GetResponse](t)(cli.Get(x, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())); g.Count != int64(refused) {
		t.Fatalf("%d keys under the alarm, want %d", g.Count, refused)
	}
	del := must[*clientv3.DeleteResponse](t)(cli.Delete(x, "k", clientv3.WithPrefix()))
	must[*clientv3.CompactResponse](t)(cli.Compact(x, del.Header.Revision, clientv3.WithCompactPhysical()))
	// A member's freed pages become free once no reader needs them: a few
	// more commits (reads through the log do not commit; lease-free
	// deletes of nothing do).
	for i := 0; i < 3; i++ {
		must[*clientv3.DeleteResponse](t)(cli.Delete(x, "nothing"))
	}
	for _, a := range alarms.Alarms {
		if _, err := cli.AlarmDisarm(x, (*clientv3.AlarmMember)(a)); err != nil {
			t.Fatal(err)
		}
	}
	if got := must[*clientv3.AlarmResponse](t)(cli.AlarmList(x)); len(got.Alarms) != 0 {
		t.Fatalf("alarms after the disarm: %v", got.Alarms)
	}
	// The client may send the next put to any member: each one refuses it
	// until it has applied the disarm itself and, like the member that
	// answered the disarm, counts the freed pages as free.
	for i, s := range c.servers {
		for deadline := time.Now().Add(10 * time.Second); ; {
			raised, inUse := s.alarms.raised(pb.AlarmType_NOSPACE), s.sizeInUse()
			if !raised && inUse+int64(len(val))+1024 <= quota {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %d after the disarm: alarm raised %v, in use %d of %d", i, raised, inUse, quota)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i := 0; i < 10; i++ {
		if _, err := cli.Put(x, fmt.Sprintf("after%d", i), val); err != nil {
			t.Fatalf("put %d after freeing space and clearing the alarm: %v (in use %d of %d)", i, err, c.servers[0].sizeInUse(), quota)
		}
	}
	if st := must[*clientv3.StatusResponse](t)(cli.Status(x, c.addrs[0])); len(st.Errors) != 0 {
		t.Fatalf("status errors after the disarm: %q", st.Errors)
	}
}
