package quiver_test

import (
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/testhook"
	"github.com/quiverdb/quiver/internal/testutil"
)

// testSeed and newRand are the shared ones (internal/testutil): -seed or
// QUIVER_SEED replays a randomised test.
var (
	testSeed = testutil.Seed
	newRand  = testutil.Rand
)

// defaultFreelist leaves the choice to Open: tests of one freelist run on
// the default.
const defaultFreelist quiver.FreelistType = ""

// forEachFreelist runs fn once per freelist implementation.
func forEachFreelist(t *testing.T, fn func(t *testing.T, ft quiver.FreelistType)) {
	for _, ft := range quiver.FreelistTypes() {
		t.Run("freelist="+string(ft), func(t *testing.T) { fn(t, ft) })
	}
}

// testDB is an open database in a temporary directory that is checked and
// closed when the test ends.
type testDB struct {
	*quiver.DB
	t    testing.TB
	opts quiver.Options
}

// openDB opens a new database of freelist ft (nil opts: defaults) and
// registers a cleanup that runs Check and closes it.
func openDB(t testing.TB, ft quiver.FreelistType, opts *quiver.Options) *testDB {
	t.Helper()
	return openDBWith(t, ft, opts, nil)
}

// openDBWith is openDB with testing knobs (nil: none) installed for the
// database's path before it opens, for the rest of the test.
func openDBWith(t testing.TB, ft quiver.FreelistType, opts *quiver.Options, hooks *testhook.Hooks) *testDB {
	t.Helper()
	var o quiver.Options
	if opts != nil {
		o = *opts
	}
	o.FreelistType = ft
	path := filepath.Join(t.TempDir(), "db")
	if hooks != nil {
		setHooks(t, path, hooks)
	}
	db, err := quiver.Open(path, 0o600, &o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	tdb := &testDB{DB: db, t: t, opts: o}
	t.Cleanup(func() {
		if tdb.DB == nil {
			return
		}
		tdb.mustCheck()
		if err := tdb.DB.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tdb
}

// mustCheck runs a full consistency check and fails the test on any error.
func (db *testDB) mustCheck() {
	db.t.Helper()
	mustCheck(db.t, db.DB)
}

func mustCheck(t testing.TB, db *quiver.DB) {
	t.Helper()
	err := db.View(func(tx *quiver.Tx) error {
		n := 0
		for err := range tx.Check() {
			n++
			if n <= 10 {
				t.Errorf("check: %v", err)
			}
		}
		if n > 10 {
			t.Errorf("check: %d more errors", n-10)
		}
		return nil
	})
	if err != nil {
		t.Errorf("check view: %v", err)
	}
}

// reopen closes and reopens the database.
func (db *testDB) reopen() {
	db.t.Helper()
	path := db.Path()
	if err := db.DB.Close(); err != nil {
		db.t.Fatalf("close: %v", err)
	}
	db.DB = nil
	d, err := quiver.Open(path, 0o600, &db.opts)
	if err != nil {
		db.t.Fatalf("reopen: %v", err)
	}
	db.DB = d
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// setHooks installs testing knobs for the database at path until the test
// ends; remove takes them away earlier.
func setHooks(t testing.TB, path string, h *testhook.Hooks) (remove func()) {
	remove = testhook.Set(path, h)
	t.Cleanup(remove)
	return remove
}
