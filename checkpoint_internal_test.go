package quiver

import (
	"fmt"
	"path/filepath"
	"testing"
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
	for i := 0; i < keys; i += 1000 {
		if err := db.Update(func(tx *Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			for j := i; j < i+1000; j++ {
				if err := b.Put(key(j), big); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Every other leaf freed: thousands of single-page spans.
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
		if db.checkpointing {
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
	if err := db.View(func(tx *Tx) error {
		for err := range tx.Check() {
			t.Error(err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
