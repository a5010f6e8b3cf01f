package fuzz_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
)

// TestKill9 runs a child process that commits transactions and reports each
// acknowledged one on a pipe, kills it with SIGKILL at a random moment, and
// requires the reopened database to pass Check and hold every acknowledged
// transaction. In every other cycle the child also compacts the database
// online, over and over, so that kills land in every stage of a
// compaction, the switch to the new file included. QUIVER_KILL_CYCLES sets
// the number of cycles (default 50).
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	cycles := testutil.KillCycles(50)
	path := filepath.Join(t.TempDir(), "db")
	r := rand.New(rand.NewPCG(21, 22))
	acked := -1
	var compactions atomic.Int64
	for c := 0; c < cycles; c++ {
		env := []string{"QUIVER_KILL_CHILD=" + path, fmt.Sprintf("QUIVER_KILL_START=%d", acked+1), fmt.Sprintf("QUIVER_KILL_COMPACT=%d", c%2)}
		for _, line := range testutil.RunKilled(t, "TestKill9Child", env, time.Duration(20+r.IntN(150))*time.Millisecond) {
			if n, err := strconv.Atoi(line); err == nil && n > acked {
				acked = n
			} else if line == "compacted" {
				compactions.Add(1)
			}
		}
		// Every acknowledged transaction is there, and the database checks.
		db, err := quiver.Open(path, 0o600, nil)
		if err != nil {
			t.Fatalf("cycle %d: open after kill: %v", c, err)
		}
		err = db.View(func(tx *quiver.Tx) error {
			for err := range tx.Check() {
				t.Errorf("cycle %d: check: %v", c, err)
			}
			b := tx.Bucket([]byte("acks"))
			for i := 0; i <= acked; i++ {
				if b == nil || b.Get(killKey(i)) == nil {
					return fmt.Errorf("acknowledged transaction %d lost", i)
				}
			}
			// A transaction committed but not yet reported may be there too.
			if b != nil {
				if k, _ := b.Cursor().Last(); k != nil {
					if n := int(binary.BigEndian.Uint64(k)); n > acked {
						acked = n
					}
				}
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatalf("cycle %d: %v", c, err)
		}
	}
	t.Logf("%d kill cycles, %d transactions acknowledged, %d online compactions finished", cycles, acked+1, compactions.Load())
	if cycles >= 10 && compactions.Load() == 0 {
		t.Error("the children finished no compaction: the kills never landed after one")
	}
}

func killKey(i int) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(i))
	return k
}

// TestKill9Child is the child of TestKill9: it commits transaction after
// transaction, each adding its number (and churning other keys), and prints
// the number once Commit has returned.
func TestKill9Child(t *testing.T) {
	path := os.Getenv("QUIVER_KILL_CHILD")
	if path == "" {
		t.Skip("run by TestKill9")
	}
	start, _ := strconv.Atoi(os.Getenv("QUIVER_KILL_START"))
	db, err := quiver.Open(path, 0o600, &quiver.Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(1)
	}
	if os.Getenv("QUIVER_KILL_COMPACT") == "1" {
		go func() {
			for {
				if _, err := db.Compact(context.Background(), &quiver.CompactOptions{TxMaxSize: 1 << 16}); err != nil {
					fmt.Fprintln(os.Stderr, "child compact:", err)
					os.Exit(1)
				}
				fmt.Fprintln(os.Stdout, "compacted")
			}
		}()
	}
	r := rand.New(rand.NewPCG(uint64(start), 1))
	for i := start; ; i++ {
		err := db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("acks"))
			if err != nil {
				return err
			}
			if err := b.Put(killKey(i), []byte("ok")); err != nil {
				return err
			}
			churn, err := tx.CreateBucketIfNotExists([]byte("churn"))
			if err != nil {
				return err
			}
			for j := 0; j < 20; j++ {
				k := []byte(fmt.Sprintf("c%05d", r.IntN(5000)))
				if r.IntN(3) == 0 {
					if err := churn.Delete(k); err != nil {
						return err
					}
				} else if err := churn.Put(k, bytes.Repeat([]byte{byte(j)}, 10+r.IntN(400))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child commit:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stdout, "%d\n", i)
	}
}
