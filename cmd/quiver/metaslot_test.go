package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
)

// TestMetaSlotAfterDeferSync: after a deferred commit, the commit after it
// writes its meta over the deferred one's, so a meta's page is no longer
// its txid%2. info and check's note name the meta page: they must name the
// page that holds the meta.
func TestMetaSlotAfterDeferSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := quiver.Open(path, 0o600, &quiver.Options{PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i, deferSync := range []bool{false, true, false} {
		if err := db.Update(func(tx *quiver.Tx) error {
			if deferSync {
				tx.DeferSync()
			}
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte{byte(i)}, []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	slot, newest := -1, page.Txid(0)
	var m *page.Meta
	for s := 0; s < 2; s++ {
		if mm, err := page.DecodeMeta(raw[s*4096:s*4096+page.MetaEnd], page.Pgid(s)); err == nil && mm.Txid >= newest {
			slot, newest, m = s, mm.Txid, mm
		}
	}
	if int(newest%2) == slot {
		t.Fatalf("the newest meta (tx %d) is in page %d: the scenario did not happen", newest, slot)
	}
	wantPage := "meta page " + string(rune('0'+slot))
	r := quiverRun("info", path)
	if r.status != 0 {
		t.Fatalf("info: %v", r)
	}
	if !strings.Contains(r.stdout, wantPage) {
		t.Errorf("info says %q; the meta of tx %d is in page %d", firstLine(r.stdout, "Txid:"), newest, slot)
	}
	// Damage the newest commit's record: open falls back, and check notes
	// which meta page names the commit that does not verify.
	off := int(m.Record)*4096 + 100
	raw[off] ^= 0xff
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	r = quiverRun("check", path)
	if !strings.Contains(r.stderr, "note: "+wantPage+" names tx") {
		t.Errorf("check's note: %q; the meta of tx %d is in page %d", strings.TrimSpace(r.stderr), newest, slot)
	}
}

func firstLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
