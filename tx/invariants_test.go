//go:build invariants

package tx_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// TestAllocatingAUsedPageFails: with the invariants tag, a backend that
// hands a commit a page its snapshot still uses (here: the bucket's root
// page, as a damaged freelist would) fails the commit with a corruption
// error instead of overwriting what readers see.
func TestAllocatingAUsedPageFails(t *testing.T) {
	m := newMemStore(1024, 8<<20)
	if err := m.update(func(x *tx.Tx) error {
		b, err := x.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 200; i++ {
			if err := b.Put([]byte(fmt.Sprintf("k%04d", i)), []byte("value")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var root page.Pgid
	if err := m.view(func(x *tx.Tx) error { root = x.Bucket([]byte("b")).Root(); return nil }); err != nil {
		t.Fatal(err)
	}
	m.allocate = func(txid page.Txid, n int, grow bool) (page.Pgid, error) {
		return root, nil // a page the snapshot reaches
	}
	err := m.update(func(x *tx.Tx) error { return x.Bucket([]byte("b")).Put([]byte("k0001"), []byte("new")) })
	if !errors.Is(err, page.ErrCorrupt) || !strings.Contains(fmt.Sprint(err), "invariant") {
		t.Fatalf("the commit gave %v, want an invariant's corruption error", err)
	}
	m.allocate = nil
	m.check(t)
}
