package raftadapter

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
	"github.com/quiverdb/quiver/mvcc"
)

// closingMVCC is an MVCCMachine the test cluster closes with its member.
type closingMVCC struct{ MVCCMachine }

func (m closingMVCC) Close() error { return m.Store.Close() }

func (c *cluster) store(id uint64) *mvcc.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.machines[id].(closingMVCC).Store
}

func (c *cluster) txn(id uint64, t *mvcc.Txn) (*mvcc.TxnResult, error) {
	data, err := EncodeTxn(t)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.node(id).Propose(ctx, data)
	if err != nil {
		return nil, err
	}
	if err, ok := v.(error); ok {
		return nil, err
	}
	return v.(*mvcc.TxnResult), nil
}

// TestMVCCReplicas: mvcc is the replicated state machine. Concurrent puts,
// deletes (of a range to the end of the key space too) and
// compare-and-swaps through every member, with a member stopped that
// comes back by snapshot, leave every member at the same revision with
// the same HashKV and the same contents; an invalid Txn is refused the
// same way everywhere.
func TestMVCCReplicas(t *testing.T) {
	seed := testutil.Seed(t)
	c := newClusterWith(t, 3, seed, func(c *cluster) {
		c.logWindow = 8 << 10
		c.contentsOf = "mvcc.rev"
		c.newMachine = func(db *quiver.DB) (StateMachine, error) {
			s, err := mvcc.Open(db, nil)
			return closingMVCC{MVCCMachine{Store: s}}, err
		}
	})
	lead := c.leader()
	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	var wg sync.WaitGroup
	run := func(phase string, members []uint64) {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := testutil.Rand(seed + uint64(g))
				for i := 0; i < 40; i++ {
					id := members[r.IntN(len(members))]
					key := []byte(fmt.Sprintf("k%02d", r.IntN(20)))
					var tx mvcc.Txn
					switch r.IntN(5) {
					case 0:
						tx.Then = []mvcc.Op{mvcc.OpDelete(key, mvcc.Prefix(key[:2]))}
					case 1: // compare-and-swap on the mod revision
						tx.If = []mvcc.Compare{{Key: key, Target: mvcc.CompareMod, Result: mvcc.Less, ModRevision: int64(r.IntN(200))}}
						tx.Then = []mvcc.Op{mvcc.OpPut(key, []byte(phase+"-cas"), 0)}
						tx.Else = []mvcc.Op{mvcc.OpRange(key, nil, mvcc.RangeOptions{})}
					default:
						tx.Then = []mvcc.Op{mvcc.OpPut(key, []byte(fmt.Sprintf("%s-%d-%d", phase, g, i)), 0)}
					}
					if _, err := c.txn(id, &tx); err != nil {
						t.Errorf("txn through %d: %v", id, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	run("a", c.ids)
	c.stop(follower)
	var up []uint64
	for _, id := range c.ids {
		if id != follower {
			up = append(up, id)
		}
	}
	run("b", up)
	c.start(follower)
	for deadline := time.Now().Add(10 * time.Second); c.node(follower).Status().Lead == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the restarted member found no leader in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	run("c", c.ids)

	// A range to the end of the key space survives the entry's encoding.
	if _, err := c.txn(lead, &mvcc.Txn{Then: []mvcc.Op{mvcc.OpPut([]byte("z1"), []byte("1"), 0)}}); err != nil {
		t.Fatal(err)
	}
	res, err := c.txn(lead, &mvcc.Txn{Then: []mvcc.Op{mvcc.OpDelete([]byte("z"), []byte{})}})
	if err != nil || res.Results[0].Deleted != 1 {
		t.Fatalf("delete from z to the end: %+v, %v", res, err)
	}
	// An invalid Txn is refused, and changes nothing.
	if _, err := c.txn(lead, &mvcc.Txn{Then: []mvcc.Op{mvcc.OpPut(nil, []byte("v"), 0)}}); err == nil {
		t.Fatal("a put without a key was applied")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	v, err := c.node(lead).Propose(ctx, []byte("not json"))
	cancel()
	if verr, ok := v.(error); err != nil || !ok {
		t.Fatalf("an undecodable entry: result %v, %v; want its decoding error as the result", v, err)
	} else {
		t.Logf("an undecodable entry: %v", verr)
	}
	c.converge(c.node(lead).Applied())

	if _, installed := c.node(follower).Snapshots(); installed < 1 {
		t.Fatal("the stopped member came back without a snapshot")
	}
	rev := c.store(lead).Rev()
	hash, _, err := c.store(lead).HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.store(lead).Range([]byte("k"), mvcc.Prefix([]byte("k")), mvcc.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids {
		s := c.store(id)
		h, _, err := s.HashKV(0)
		if err != nil || s.Rev() != rev || h != hash {
			t.Fatalf("member %d: revision %d, HashKV %08x, %v; the leader's %d, %08x", id, s.Rev(), h, err, rev, hash)
		}
		got, err := s.Range([]byte("k"), mvcc.Prefix([]byte("k")), mvcc.RangeOptions{})
		if err != nil || fmt.Sprint(got.KVs) != fmt.Sprint(want.KVs) {
			t.Fatalf("member %d's keys differ from the leader's: %v", id, err)
		}
	}
	t.Logf("%d members at revision %d, HashKV %08x, %d keys", len(c.ids), rev, hash, len(want.KVs))
}
