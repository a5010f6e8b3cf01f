package raftadapter

import (
	"encoding/binary"
	"os"
	"strconv"
	"testing"

	"github.com/quiverdb/quiver/internal/testutil"
)

// TestProcessLargeValues is the scenario that gave etcd 10 GB of RSS
// (etcd #12548): three members, one follower stopped, and a 2 MiB value
// rewritten again and again through the leader. The leader's Go heap
// (HeapInuse) and RssAnon must stay under MemoryBudget + 128 MiB the whole
// time (the mapped file, RssFile, is reported apart); then the follower
// restarts, catches up, by snapshot once the log was compacted past it,
// and every member holds the same data.
//
// By default 120 proposals (240 MiB through the log) with a 32 MiB
// catch-up window (40 and 16 MiB with -short); QUIVER_RAFT_LARGE=1 runs the full scenario, 2,000
// proposals (4 GiB) with the default window, and QUIVER_RAFT_MEMCSV=PATH
// has each member write its memory samples to PATH.<id>.csv (for
// scripts/raftmem.py).
func TestProcessLargeValues(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory is not the engine's")
	}
	const budget = 64 << 20
	const limit = budget + 128<<20
	proposals, window := 120, int64(32<<20)
	if testing.Short() {
		proposals = 40
		window = 16 << 20
	}
	if os.Getenv("QUIVER_RAFT_LARGE") != "" {
		proposals, window = 2000, 0
	}
	if n, err := strconv.Atoi(os.Getenv("QUIVER_RAFT_PROPOSALS")); err == nil && n > 0 {
		proposals = n
	}
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	c := newProcCluster(t, 3, childConfig{MemoryBudget: budget, LogWindow: window, Samples: os.Getenv("QUIVER_RAFT_MEMCSV")})
	lead := c.leader()
	follower := c.other(lead)
	c.kill(follower)
	value := make([]byte, 2<<20)
	for i := range value {
		value[i] = byte(r.Uint32())
	}
	check := func(when string) {
		st, err := c.status(lead)
		if err != nil {
			t.Fatal(err)
		}
		if st.PeakHeap > limit || st.PeakAnon > limit {
			t.Fatalf("%s: the leader's peak heap %d MiB, RssAnon %d MiB; the limit is %d MiB", when, st.PeakHeap>>20, st.PeakAnon>>20, limit>>20)
		}
	}
	for i := 0; i < proposals; i++ {
		binary.BigEndian.PutUint64(value, uint64(i))
		for attempt := 0; ; attempt++ {
			err := c.put(lead, "big", value)
			if err == nil {
				break
			}
			if attempt == 5 {
				t.Fatalf("proposal %d: %v", i, err)
			}
			lead = c.leader()
		}
		if i%20 == 19 {
			check("after proposal " + strconv.Itoa(i+1))
		}
	}
	check("at the end")
	st, _ := c.status(lead)
	t.Logf("leader %d, follower %d stopped; %d proposals of 2 MiB: the leader's peak heap %d MiB, peak RssAnon %d MiB, RssFile %d MiB (budget %d MiB, limit %d MiB)",
		lead, follower, proposals, st.PeakHeap>>20, st.PeakAnon>>20, st.RssFile>>20, budget>>20, limit>>20)

	c.start(follower, false)
	final := c.converge()
	fst, err := c.status(follower)
	if err != nil {
		t.Fatal(err)
	}
	if int64(proposals)*(2<<20) > 2*max(window, DefaultLogWindow) && fst.Installed < 1 {
		t.Fatalf("the follower caught up without a snapshot, though the log was compacted past it")
	}
	t.Logf("the follower caught up (%d snapshot(s) installed); every member at applied %d, hash %016x", fst.Installed, final.Applied, final.Hash)
}
