package server

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"
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
