package quiver_test

import (
	"testing"

	"github.com/quiverdb/quiver"
)

// TestFreelistDeltasSurviveReopen commits more than a chain of deltas holds
// (so that checkpoints and chained records both occur), then checks that a
// reopened database finds exactly the free pages it had.
func TestFreelistDeltasSurviveReopen(t *testing.T) {
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		db := openDB(t, ft, nil)
		fill(t, db.DB, "b", 3000, 60)
		for i := 0; i < 150; i++ {
			ok(t, db.Update(func(tx *quiver.Tx) error {
				b := tx.Bucket([]byte("b"))
				if i%3 == 0 {
					return b.Delete(key(i * 7))
				}
				return b.Put(key(i*13), value(i, 60+i))
			}))
			if i%37 == 0 || i == 149 {
				// Release what readers held, then compare across a reopen.
				ok(t, db.Update(func(*quiver.Tx) error { return nil }))
				st := db.Stats()
				before := st.FreePageN + st.PendingPageN
				db.reopen()
				st = db.Stats()
				if after := st.FreePageN + st.PendingPageN; after != before {
					t.Fatalf("commit %d: %d free pages before reopen, %d after", i, before, after)
				}
				// The persisted freelist stays small: a checkpoint plus at
				// most 64 one-page records here.
				if st.FreelistInuse <= 0 || st.FreelistInuse > 80*4096 {
					t.Fatalf("commit %d: freelist takes %d bytes", i, st.FreelistInuse)
				}
				db.mustCheck()
			}
		}
	})
}

// TestSmallCommitFreelistBytes: a one-key commit writes at most two pages
// of freelist (its commit record) however many free spans there are, except
// for the commits that write a checkpoint, and those are rare enough that
// the mean stays under two pages a commit. With 1 KB pages and thousands of
// free spans a checkpoint takes several pages, so writing the whole free set
// every commit would be caught.
func TestSmallCommitFreelistBytes(t *testing.T) {
	const minChain = 8 // the fewest records between checkpoints
	const ps = 1024
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		for _, keys := range []int{2000, 60000} {
			db := openDB(t, ft, &quiver.Options{PageSize: ps})
			fill(t, db.DB, "b", keys, 100)
			// Fragment: delete 8 keys of every 16, which empties every
			// other leaf or so and leaves the free pages in small spans.
			ok(t, db.Update(func(tx *quiver.Tx) error {
				b := tx.Bucket([]byte("b"))
				for i := 0; i < keys; i++ {
					if i%16 < 8 {
						if err := b.Delete(key(i)); err != nil {
							return err
						}
					}
				}
				return nil
			}))
			ok(t, db.Update(func(*quiver.Tx) error { return nil }))
			ok(t, db.Update(func(*quiver.Tx) error { return nil }))
			st := db.Stats()
			free, checkpoint := st.FreePageN, st.FreelistInuse
			big, total := 0, 0
			const commits = 200
			for i := 0; i < commits; i++ {
				before := db.Stats().FreelistWrite
				ok(t, db.Update(func(tx *quiver.Tx) error {
					return tx.Bucket([]byte("b")).Put(key(i*16+9), value(i, 100))
				}))
				d := db.Stats().FreelistWrite - before
				total += d
				if d > 2*ps {
					big++
				} else if d <= 0 {
					t.Fatalf("commit %d wrote %d freelist bytes", i, d)
				}
			}
			if big > commits/minChain+1 || total > 2*ps*commits {
				t.Fatalf("%d free pages: %d of %d small commits wrote more than 2 freelist pages, %d bytes in all", free, big, commits, total)
			}
			t.Logf("%d free pages, freelist %d bytes: %d of %d commits wrote more than 2 pages; %.2f pages a commit", free, checkpoint, big, commits, float64(total)/ps/commits)
		}
	})
}
