package quiver

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver/page"
)

// TestCheckpointInterval: with a free set whose checkpoint takes several
// pages, small commits write a checkpoint only once the records chained
// since the last take chainRatio times its pages, however many pages each
// commit frees and allocates; and a reopen replays the long chain to the
// same free set.
func TestCheckpointInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	// Small pages, so that a few thousand free spans take several.
	db, err := Open(path, 0o600, &Options{NoSync: true, PageSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%06d", i)) }
	big := make([]byte, 700) // a leaf of its own
	const keys = 12000
	fragmentByLeaf(t, db, keys, key)
	db.NoSync = false
	// Small commits, each rewriting a few leaves (and freeing their old
	// pages), as the capacity harness's measured commits do.
	var at []int // commits that wrote a checkpoint
	maxPages := 0
	for i := 0; i < 400; i++ {
		chainPages, cpPages := db.chainPages, db.checkpointPages
		if err := db.Update(func(tx *Tx) error {
			b := tx.Bucket([]byte("b"))
			// A large value rewritten too: each commit frees and
			// allocates ~2,000 pages, which must not bring checkpoints
			// sooner (the records stay one page).
			if err := b.Put([]byte("blob"), make([]byte, 1<<20+i)); err != nil {
				return err
			}
			for k := 0; k < 10; k++ {
				j := 1 + 2*((i*10+k)*7919%(keys/2))
				if err := b.Put(key(j), big[:600+k]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if db.plan.checkpointing {
			at = append(at, i)
			maxPages = max(maxPages, db.checkpointPages)
			// The file has too little free space to shrink or to force
			// a checkpoint for its tail: only the ratio brings one.
			if i > 0 && chainPages < max(minChainRecords, chainRatio*cpPages) {
				t.Fatalf("commit %d wrote a checkpoint after %d record pages; the last checkpoint took %d pages", i, chainPages, cpPages)
			}
		}
	}
	if maxPages < 2 || len(at) < 3 {
		t.Fatalf("checkpoints of up to %d pages at commits %v: the test wants several, of several pages", maxPages, at)
	}
	t.Logf("checkpoints (up to %d pages) at commits %v", maxPages, at)
	free := db.Stats().FreePageN + db.Stats().PendingPageN
	chain := len(db.chain)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(path, 0o600, nil); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Stats().FreePageN + db.Stats().PendingPageN; got != free {
		t.Fatalf("reopened with %d free pages, had %d (chain of %d records)", got, free, chain)
	}
	checkInternal(t, db)
}

// TestEarlyCheckpointBackOff: in a file whose free space lies below a tail
// held by the freelist's records, a checkpoint is brought forward to free
// the tail; one that lands above the records that held it (no run below
// was long enough) must not be followed by another early one before a due
// checkpoint, which could list the whole free set every minChainRecords
// commits for nothing. Random fragmenting commits, most of them also
// taking the free runs an early checkpoint would go to; each commit's
// early checkpoint is checked against the used end of the file before it.
func TestEarlyCheckpointBackOff(t *testing.T) {
	seed := internalSeed(t)
	r := rand.New(rand.NewPCG(seed, 2))
	path := filepath.Join(t.TempDir(), "db")
	db, err := Open(path, 0o600, &Options{PageSize: 1024, AllocSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%06d", i)) }
	const keys = 12000
	// Thousands of one-page spans: a checkpoint of several pages, for
	// which few free runs are long enough.
	fragmentByLeaf(t, db, keys, key)
	early, futile, again := 0, 0, 0
	last := "" // the kind of the last checkpoint: "due", "early" or "futile"
	for i := 0; i < 300; i++ {
		usedEnd := db.usedEnd()
		// Most commits also rewrite, each in a bucket of its own,
		// values that take the free runs of two pages or more below the
		// used end: the runs an early checkpoint would go to. Large nodes
		// are placed before the checkpoint.
		var runs []uint64
		if r.IntN(4) != 0 {
			db.freelist.Spans(func(id page.Pgid, n uint64) {
				if n > 1 && id+page.Pgid(n) <= usedEnd && len(runs) < 64 {
					runs = append(runs, n)
				}
			})
		}
		if err := db.Update(func(tx *Tx) error {
			b := tx.Bucket([]byte("b"))
			for k, n := range runs {
				v, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("v%d", k)))
				if err != nil {
					return err
				}
				if err := v.Put([]byte("big"), make([]byte, int(n)*1024-200)); err != nil {
					return err
				}
			}
			for k := 0; k < 1+r.IntN(40); k++ {
				j := r.IntN(keys)
				if r.IntN(3) == 0 {
					if err := b.Delete(key(j)); err != nil {
						return err
					}
					continue
				}
				size := 100 + r.IntN(900)
				if r.IntN(20) == 0 {
					size = 1000 + r.IntN(20000)
				}
				if err := b.Put(key(j), make([]byte, size)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !db.plan.checkpointing {
			continue
		}
		if !db.plan.tailForced {
			last = "due"
			continue
		}
		early++
		if last == "futile" {
			again++
			t.Errorf("commit %d: an early checkpoint follows one that landed above the used end, with no due checkpoint between", i)
		}
		last = "early"
		if cp := db.chain[0]; cp.id+page.Pgid(cp.pages) > usedEnd {
			futile++
			last = "futile"
		}
	}
	t.Logf("%d early checkpoints, %d of them above the used end, %d right after one of those", early, futile, again)
	checkInternal(t, db)
}

// fragmentByLeaf fills bucket "b" of a database of 1 KiB pages with keys
// whose 700-byte values take a leaf each, in commits of 1000, then deletes
// every other key: thousands of single-page free spans.
func fragmentByLeaf(t *testing.T, db *DB, keys int, key func(int) []byte) {
	t.Helper()
	for i := 0; i < keys; i += 1000 {
		if err := db.Update(func(tx *Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			for j := i; j < min(i+1000, keys); j++ {
				if err := b.Put(key(j), make([]byte, 700)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Update(func(tx *Tx) error {
		b := tx.Bucket([]byte("b"))
		for j := 0; j < keys; j += 2 {
			if err := b.Delete(key(j)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// checkInternal fails t with every error Check finds in db.
func checkInternal(t *testing.T, db *DB) {
	t.Helper()
	if err := db.View(func(tx *Tx) error {
		for err := range tx.Check() {
			t.Error(err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
