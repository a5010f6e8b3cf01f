package quiver

import (
	"path/filepath"
	"testing"
)

// TestTxStatsCounts checks the counts bbolt's TxStats has and quiver
// added: spills and their time, cursors (of read transactions too, merged
// into DB.Stats when they end), and Stats.Sub.
func TestTxStatsCounts(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := db.Stats()
	var txs TxStats
	err = db.Update(func(tx *Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := range 2000 {
			if err := b.Put([]byte{byte(i >> 8), byte(i)}, make([]byte, 100)); err != nil {
				return err
			}
		}
		b.Cursor()
		tx.OnCommit(func() { txs = tx.Stats() })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if txs.GetSpill() < 2 || txs.GetSpill() != txs.GetNodeCount() {
		t.Errorf("spill %d, nodes %d: want every written node spilled, more than one", txs.GetSpill(), txs.GetNodeCount())
	}
	if txs.GetSplit() == 0 || txs.GetPageCount() < txs.GetSpill() || txs.GetPageAlloc() != txs.GetPageCount()*4096 {
		t.Errorf("split %d, pages %d, bytes %d", txs.GetSplit(), txs.GetPageCount(), txs.GetPageAlloc())
	}
	if txs.GetSpillTime() <= 0 || txs.GetCursorCount() != 1 {
		t.Errorf("spill time %v, cursors %d", txs.GetSpillTime(), txs.GetCursorCount())
	}
	for range 3 {
		if err := db.View(func(tx *Tx) error {
			tx.Bucket([]byte("b")).Cursor().First()
			tx.Cursor()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	d := db.Stats()
	diff := d.Sub(&before)
	if diff.TxN != 3 {
		t.Errorf("Sub: TxN %d, want 3", diff.TxN)
	}
	if got := diff.TxStats.GetCursorCount(); got != 1+6 {
		t.Errorf("Sub: cursors %d, want 7 (1 in the write, 2 in each of 3 reads)", got)
	}
	if diff.TxStats.GetSpill() != txs.GetSpill() || diff.TxStats.GetWrite() == 0 || diff.TxStats.GetWriteTime() <= 0 {
		t.Errorf("Sub: spill %d (want %d), writes %d, write time %v", diff.TxStats.GetSpill(), txs.GetSpill(), diff.TxStats.GetWrite(), diff.TxStats.GetWriteTime())
	}
	if diff.FreePageN != d.FreePageN {
		t.Errorf("Sub: the gauge FreePageN is %d, want s's %d", diff.FreePageN, d.FreePageN)
	}
	if s := d.Sub(nil); s.TxN != d.TxN {
		t.Errorf("Sub(nil): TxN %d, want %d", s.TxN, d.TxN)
	}
}
