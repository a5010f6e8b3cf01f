package mvcc

import (
	"errors"
	"testing"

	"github.com/quiverdb/quiver"
)

// TestDamageIsCorruption: damage the store finds in its records matches
// quiver.ErrCorrupt, as damage the engine finds does, so that callers and
// operators tell it from misuse.
func TestDamageIsCorruption(t *testing.T) {
	for _, b := range [][]byte{nil, {0}, {0, 0xff, 0xff}} {
		_, _, err := decodeRecord(b, Revision{Main: 1})
		if err == nil {
			continue // a record this short may decode
		}
		if !errors.Is(err, quiver.ErrCorrupt) || !quiver.IsCorruption(err) {
			t.Errorf("decodeRecord(%x): %v does not match ErrCorrupt", b, err)
		}
	}
	if _, _, err := decodeRecord(nil, Revision{Main: 1}); err == nil {
		t.Fatalf("an empty record decoded")
	}
}
