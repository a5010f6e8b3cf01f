package quiver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testutil"
)

// contentsHash hashes every bucket's keys and values of db.
func contentsHash(t *testing.T, db *quiver.DB) uint64 {
	t.Helper()
	h := xxhash.New()
	ok(t, db.View(func(tx *quiver.Tx) error {
		return tx.ForEach(func(name []byte, b *quiver.Bucket) error {
			_, _ = h.Write(name)
			return b.ForEach(func(k, v []byte) error {
				_, _ = h.Write(k)
				_, _ = h.Write(v)
				return nil
			})
		})
	}))
	return h.Sum64()
}

// TestRestoreKilled: a child process restores two images in turn, again
// and again, and is killed with SIGKILL at a random moment; the reopened
// database holds one image or the other whole (its contents hash to that
// image's, and it checks), never a mix, and the next Restore works.
// QUIVER_KILL_CYCLES sets the number of cycles (default 12; 3 with -short).
func TestRestoreKilled(t *testing.T) {
	cycles := testutil.KillCycles(12)
	if testing.Short() {
		cycles = 3
	}
	seed := testutil.Seed(t)
	r := testutil.Rand(seed)
	dir := t.TempDir()
	images := map[string]string{}
	want := map[string]uint64{}
	for i, name := range []string{"a", "b"} {
		img := image(t, name, 4000*(i+1), i)
		path := filepath.Join(dir, name+".img")
		ok(t, os.WriteFile(path, img, 0o600))
		images[name] = path
		db, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
		ok(t, err)
		want[name] = contentsHash(t, db)
		ok(t, db.Close())
	}
	path := filepath.Join(dir, "db")
	img, err := os.ReadFile(images["a"])
	ok(t, err)
	ok(t, os.WriteFile(path, img, 0o600))
	seen := map[string]int{}
	for c := 0; c < cycles; c++ {
		env := []string{"QUIVER_RESTORE_KILL_CHILD=" + path, "QUIVER_RESTORE_KILL_IMAGES=" + images["a"] + ":" + images["b"]}
		lines := testutil.RunKilled(t, "TestRestoreKilledChild", env, time.Duration(20+r.IntN(300))*time.Millisecond)
		db, err := quiver.Open(path, 0o600, nil)
		if err != nil {
			t.Fatalf("cycle %d: open after kill (%d restores done): %v", c, len(lines), err)
		}
		got := contentsHash(t, db)
		which := ""
		for name, h := range want {
			if h == got {
				which = name
			}
		}
		if which == "" {
			t.Fatalf("cycle %d: the contents are neither image whole (%d restores done)", c, len(lines))
		}
		seen[which]++
		ok(t, db.View(func(tx *quiver.Tx) error {
			for err := range tx.Check() {
				t.Errorf("cycle %d: check: %v", c, err)
			}
			return nil
		}))
		ok(t, db.Close())
	}
	t.Logf("%d kill cycles: image a whole %d times, image b %d times", cycles, seen["a"], seen["b"])
}

// TestRestoreKilledChild is TestRestoreKilled's child: it restores the two
// images in turn until killed, printing each one done.
func TestRestoreKilledChild(t *testing.T) {
	path := os.Getenv("QUIVER_RESTORE_KILL_CHILD")
	if path == "" {
		t.Skip("run by TestRestoreKilled")
	}
	imgs := strings.Split(os.Getenv("QUIVER_RESTORE_KILL_IMAGES"), ":")
	db, err := quiver.Open(path, 0o600, &quiver.Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		f, err := os.Open(imgs[i%2])
		if err == nil {
			err = db.Restore(f, nil)
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child restore:", err)
			os.Exit(1)
		}
		fmt.Println("restored", i%2)
	}
}
