package raftadapter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver/internal/testutil"
)

// TestProcessKillRestart: three members in their own processes over TCP
// take puts from concurrent clients and are all killed (SIGKILL) while
// puts are in flight, then restarted, repeatedly (QUIVER_KILL_CYCLES,
// default 3). Every put acknowledged before a kill reads back, through
// ReadIndex, after it, and the members converge on the same data. Then a
// member's disk is lost: it is removed from the cluster, and a new member
// joins in its place with an empty directory, catches up by snapshot, and
// is promoted.
func TestProcessKillRestart(t *testing.T) {
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	// With the write-ahead file, as quiver serve runs members: the
	// engine's commits skip their syncs, and a killed member's page cache
	// keeps them; TestPowerCut drops them.
	c := newProcCluster(t, 3, childConfig{LogWindow: 32 << 10, WAL: true})
	acked := map[string]string{}
	var mu sync.Mutex
	cycles := testutil.KillCycles(3)
	if testing.Short() {
		cycles = 1
	}
	for cycle := 0; cycle < cycles; cycle++ {
		c.leader()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for client := 0; client < 4; client++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					ids := c.running()
					if len(ids) == 0 {
						return
					}
					key := fmt.Sprintf("c%d-k%d-%d", cycle, client, i)
					value := fmt.Sprintf("%d-%s", seed, key)
					if c.put(ids[i%len(ids)], key, []byte(value)) == nil {
						mu.Lock()
						acked[key] = value
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(300+r.IntN(700)) * time.Millisecond)
		for id := range c.peers { // killed while the clients put
			c.kill(id)
		}
		close(stop)
		wg.Wait()
		for id := range c.peers {
			c.start(id, false)
		}
		st := c.converge()
		c.checkAcked(acked)
		t.Logf("cycle %d: %d puts acknowledged in all, %d keys, applied %d", cycle, len(acked), st.Keys, st.Applied)
	}

	// A member loses its disk: out with it, in with a new one.
	lead := c.leader()
	lost := c.other(lead)
	c.kill(lost)
	if err := os.RemoveAll(filepath.Join(c.dir, fmt.Sprint(lost))); err != nil {
		t.Fatal(err)
	}
	c.conf(lead, "remove", lost)
	delete(c.peers, lost)
	const newID = 9
	c.peers[newID] = testutil.FreeAddr(t)
	for _, id := range c.running() {
		if _, err := c.call(id, "POST", fmt.Sprintf("/peer?id=%d&addr=%s", newID, c.peers[newID]), nil); err != nil {
			t.Fatal(err)
		}
	}
	c.start(newID, true)
	c.conf(lead, "learner", newID)
	for i := 0; i < 50; i++ {
		key := fmt.Sprintf("after-%d", i)
		if err := c.put(lead, key, []byte(key)); err != nil {
			t.Fatal(err)
		}
		acked[key] = key
	}
	c.conf(lead, "voter", newID)
	st := c.converge()
	c.checkAcked(acked)
	nst, err := c.status(newID)
	if err != nil {
		t.Fatal(err)
	}
	if nst.Installed < 1 {
		t.Fatalf("the new member caught up without a snapshot")
	}
	t.Logf("new member %d: applied %d, %d keys, %d snapshot(s) installed", newID, st.Applied, st.Keys, nst.Installed)
}

// conf proposes a membership change through member id.
func (c *procCluster) conf(id uint64, typ string, member uint64) {
	c.t.Helper()
	b, _ := json.Marshal(ccRequest{Type: typ, ID: member})
	if _, err := c.call(id, "POST", "/conf", bytes.NewReader(b)); err != nil {
		c.t.Fatalf("%s %d: %v", typ, member, err)
	}
}

// checkAcked reads every acknowledged put back through a linearizable
// read of a running member.
func (c *procCluster) checkAcked(acked map[string]string) {
	c.t.Helper()
	ids := c.running()
	i := 0
	for k, want := range acked {
		i++
		got, err := c.call(ids[i%len(ids)], "GET", "/get?key="+k, nil)
		if err != nil {
			c.t.Fatalf("reading %s: %v", k, err)
		}
		if string(got) != want {
			c.t.Fatalf("%s = %q after the restart, acknowledged as %q", k, got, want)
		}
	}
}
