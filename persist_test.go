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
