package mvcc

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
)

// TestKill9 runs a child process whose writers put keys concurrently (group
// commits) and report each acknowledged revision, while it also compacts;
// the child is killed with SIGKILL at a random moment, and the reopened
// store must hold every acknowledged put, at its revision, and check.
// QUIVER_KILL_CYCLES sets the number of cycles (default 20).
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	cycles := testutil.KillCycles(20)
	path := filepath.Join(t.TempDir(), "db")
	r := rand.New(rand.NewPCG(5, 6))
	acked := map[string]int64{} // key -> revision of its acknowledged put
	for c := 0; c < cycles; c++ {
		env := []string{"QUIVER_MVCC_KILL_CHILD=" + path, fmt.Sprintf("QUIVER_MVCC_KILL_CYCLE=%d", c)}
		for _, line := range testutil.RunKilled(t, "TestKill9Child", env, time.Duration(30+r.IntN(200))*time.Millisecond) {
			var k string
			var rev int64
			if n, _ := fmt.Sscan(line, &k, &rev); n == 2 {
				acked[k] = rev
			}
		}
		db, err := quiver.Open(path, 0o600, nil)
		if err != nil {
			t.Fatalf("cycle %d: open after kill: %v", c, err)
		}
		s, err := Open(db, nil)
		if err != nil {
			t.Fatalf("cycle %d: store after kill: %v", c, err)
		}
		for k, rev := range acked {
			res, err := s.Range([]byte(k), nil, RangeOptions{})
			if err != nil || len(res.KVs) != 1 || res.KVs[0].ModRevision != rev {
				t.Fatalf("cycle %d: acknowledged put of %s at revision %d: %+v %v", c, k, rev, res, err)
			}
		}
		_ = db.View(func(tx *quiver.Tx) error {
			for err := range tx.Check() {
				t.Errorf("cycle %d: check: %v", c, err)
			}
			return nil
		})
		s.Close()
		db.Close()
	}
	t.Logf("%d kill cycles, %d acknowledged keys present", cycles, len(acked))
}

// TestKill9Child is TestKill9's child: four writers put unique keys, each
// printed with its revision once Put returned; a fifth goroutine compacts.
func TestKill9Child(t *testing.T) {
	path := os.Getenv("QUIVER_MVCC_KILL_CHILD")
	if path == "" {
		t.Skip("run by TestKill9")
	}
	db, err := quiver.Open(path, 0o600, &quiver.Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(1)
	}
	s, err := Open(db, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child store:", err)
		os.Exit(1)
	}
	cycle := os.Getenv("QUIVER_MVCC_KILL_CYCLE")
	var mu sync.Mutex
	go func() {
		for {
			if rev := s.Rev() - 50; rev > s.CompactRev() {
				if _, err := s.Compact(rev); err != nil {
					fmt.Fprintln(os.Stderr, "child compact:", err)
					os.Exit(1)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for w := 0; w < 4; w++ {
		go func(w int) {
			for i := 0; ; i++ {
				k := fmt.Sprintf("c%s-w%d-%d", cycle, w, i)
				rev, err := s.Put([]byte(k), []byte("v"), 0)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child put:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%s %d\n", k, rev)
				mu.Unlock()
			}
		}(w)
	}
	select {}
}
