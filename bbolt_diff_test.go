package quiver_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/quiverdb/quiver"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The differential against bbolt v1.5.0 (the baseline the API keeps): the
// same calls on both engines, answers compared. Where quiver answers
// differently on purpose (bbolt panics, or reads memory its transaction no
// longer owns), the test names the difference and the README lists it.

// diffCursor is the method set bbolt's and quiver's cursors share.
type diffCursor interface {
	First() ([]byte, []byte)
	Last() ([]byte, []byte)
	Next() ([]byte, []byte)
	Prev() ([]byte, []byte)
	Seek([]byte) ([]byte, []byte)
	Delete() error
}

// diffKeys returns n distinct keys in random order (some share prefixes,
// some are long, so that the trees have several levels).
func diffKeys(rng interface{ IntN(int) int }, n int) [][]byte {
	seen := map[string]bool{}
	var keys [][]byte
	for len(keys) < n {
		k := fmt.Sprintf("k%05d", rng.IntN(4*n+10))
		if rng.IntN(8) == 0 {
			k += string(bytes.Repeat([]byte{'x'}, rng.IntN(300)))
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, []byte(k))
		}
	}
	return keys
}

// TestBboltCursorWalks: random walks of First, Last, Next, Prev and Seek,
// running off both ends and coming back, in read and write transactions
// (with Cursor.Delete in the latter), give the same keys and values on
// both engines; after the writes are committed both hold the same data.
func TestBboltCursorWalks(t *testing.T) {
	seed := testSeed(t)
	rng := newRand(seed)
	dir := t.TempDir()
	for round, n := range []int{0, 1, 2, 3, 40, 700, 3000} {
		bdb, err := bolt.Open(filepath.Join(dir, fmt.Sprintf("b%d", round)), 0o600, nil)
		ok(t, err)
		t.Cleanup(func() { bdb.Close() })
		qdb := openDB(t, defaultFreelist, nil)
		keys := diffKeys(rng, n)
		value := func(k []byte) []byte { return append([]byte("v-"), k[:min(len(k), 20)]...) }
		ok(t, bdb.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("b"))
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := b.Put(k, value(k)); err != nil {
					return err
				}
			}
			return nil
		}))
		ok(t, qdb.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucket([]byte("b"))
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := b.Put(k, value(k)); err != nil {
					return err
				}
			}
			return nil
		}))
		walk := func(bc, qc diffCursor, writable bool) {
			t.Helper()
			var log []string
			on := false // the last move returned a key
			var lastKey []byte
			for i := 0; i < 400; i++ {
				var bk, bv, qk, qv []byte
				var op string
				switch r := rng.IntN(20); {
				case r == 0:
					op = "First"
					bk, bv = bc.First()
					qk, qv = qc.First()
				case r == 1:
					op = "Last"
					bk, bv = bc.Last()
					qk, qv = qc.Last()
				case r < 4:
					seek := []byte(fmt.Sprintf("k%05d", rng.IntN(4*n+12)))
					if rng.IntN(6) == 0 {
						seek = []byte("zzz")
					}
					op = fmt.Sprintf("Seek(%q)", seek)
					bk, bv = bc.Seek(seek)
					qk, qv = qc.Seek(seek)
				case r == 4 && writable && on:
					// Delete on a key the cursor returned (bbolt panics
					// on an unpositioned cursor).
					// Then both seek the deleted key: bbolt's position
					// after a Delete depends on whether the leaf was
					// changed before in the transaction (see
					// TestBboltSemantics), quiver's does not.
					op = "Delete+Seek"
					k, _ := qc.Seek(lastKey)
					bc.Seek(lastKey)
					berr, qerr := bc.Delete(), qc.Delete()
					if (berr == nil) != (qerr == nil) {
						t.Fatalf("seed %d, %d keys: after %v, Delete of %q: bbolt %v, quiver %v", seed, n, log, k, berr, qerr)
					}
					bk, bv = bc.Seek(k)
					qk, qv = qc.Seek(k)
				case r < 12:
					op = "Next"
					bk, bv = bc.Next()
					qk, qv = qc.Next()
				default:
					op = "Prev"
					bk, bv = bc.Prev()
					qk, qv = qc.Prev()
				}
				on = qk != nil
				if on {
					lastKey = append(lastKey[:0], qk...)
				}
				log = append(log, op)
				if len(log) > 12 {
					log = log[1:]
				}
				if !bytes.Equal(bk, qk) || !bytes.Equal(bv, qv) {
					t.Fatalf("seed %d, %d keys: after %v: bbolt %q=%q, quiver %q=%q", seed, n, log, bk, bv, qk, qv)
				}
			}
		}
		for _, writable := range []bool{false, true} {
			func() {
				btx, err := bdb.Begin(writable)
				ok(t, err)
				defer btx.Rollback()
				qtx, err := qdb.Begin(writable)
				ok(t, err)
				defer qtx.Rollback()
				// The walk starts unpositioned: Next and Prev return nil
				// then on both.
				walk(btx.Bucket([]byte("b")).Cursor(), qtx.Bucket([]byte("b")).Cursor(), writable)
				if writable {
					ok(t, btx.Commit())
					ok(t, qtx.Commit())
				}
			}()
		}
		var bkeys, qkeys []string
		ok(t, bdb.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("b")).ForEach(func(k, v []byte) error { bkeys = append(bkeys, string(k)+"="+string(v)); return nil })
		}))
		ok(t, qdb.View(func(tx *quiver.Tx) error {
			return tx.Bucket([]byte("b")).ForEach(func(k, v []byte) error { qkeys = append(qkeys, string(k)+"="+string(v)); return nil })
		}))
		if !slices.Equal(bkeys, qkeys) {
			t.Fatalf("seed %d, %d keys: after the deletes bbolt holds %d keys, quiver %d", seed, n, len(bkeys), len(qkeys))
		}
	}
}

// outcome runs f and describes its result, or its panic.
func outcome(f func() string) (s string) {
	defer func() {
		if r := recover(); r != nil {
			s = "panic"
		}
	}()
	return f()
}

func errName(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, quiver.ErrTxClosed), errors.Is(err, berrors.ErrTxClosed):
		return "ErrTxClosed"
	case errors.Is(err, quiver.ErrBucketNotFound), errors.Is(err, berrors.ErrBucketNotFound):
		return "ErrBucketNotFound"
	case errors.Is(err, quiver.ErrTxManaged):
		return "ErrTxManaged"
	}
	return "other: " + err.Error()
}

func val(v []byte) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", v)
}

// semanticsCase is one call on both engines: the answers expected of each,
// and why they differ when they do.
type semanticsCase struct {
	name          string
	bbolt, quiver string
	why           string
}

// TestBboltSemantics compares the answers of calls that the walks above do
// not make: handles used after Commit and after View, cursors in a
// deleted bucket, a value put as nil, an empty bucket name.
func TestBboltSemantics(t *testing.T) {
	const (
		bboltReadsFreed = "bbolt reads through a handle whose transaction ended: the pages may be unmapped or reused; quiver returns nothing"
		bboltPanics     = "bbolt panics; quiver returns an error or nothing"
	)
	cases := []semanticsCase{
		{"nil value, Get in the same tx", "nil", "nil", ""},
		{"nil value, Get after commit", `""`, `""`, ""},
		{"empty value, Get in the same tx", `""`, `""`, ""},
		{"DeleteBucket of an empty name", "ErrBucketNotFound", "ErrBucketNotFound", ""},
		{"DeleteBucket of a missing bucket", "ErrBucketNotFound", "ErrBucketNotFound", ""},
		{"after Commit: Put", "ErrTxClosed", "ErrTxClosed", ""},
		{"after Commit: Delete", "ErrTxClosed", "ErrTxClosed", ""},
		{"after Commit: CreateBucket", "ErrTxClosed", "ErrTxClosed", ""},
		{"after Commit: NextSequence", "ErrTxClosed", "ErrTxClosed", ""},
		{"after Commit: ForEach", "ErrTxClosed", "ErrTxClosed", ""},
		{"after Commit: Cursor.Delete", "ErrTxClosed", "ErrTxClosed", ""},
		{"after Commit: Commit", "ErrTxClosed", "ErrTxClosed", ""},
		{"after Commit: Rollback", "ErrTxClosed", "ErrTxClosed", ""},
		{"after Commit: Get", `"a"`, "nil", bboltReadsFreed},
		{"after Commit: Cursor.Next", "panic", "nil", bboltPanics},
		{"after View: Put", "ErrTxClosed", "ErrTxClosed", ""},
		{"after View: ForEach", "ErrTxClosed", "ErrTxClosed", ""},
		{"after View: Rollback", "ErrTxClosed", "ErrTxClosed", ""},
		{"after View: Get", `"a"`, "nil", bboltReadsFreed},
		{"after View: Cursor.Next", "panic", "nil", bboltPanics},
		{"after View: Tx.Bucket", "panic", "nil", bboltPanics},
		{"Cursor.Delete, Next, Prev on an unchanged leaf", `"b" "a"`, `"b" nil`, "bbolt's cursor walks the page it read, where the deleted key still is; quiver's walks the changed leaf"},
		{"Cursor.Delete, Next on a leaf changed before", `"c"`, `"b"`, "bbolt's cursor skips the key after the deleted one when the leaf was changed earlier in the transaction; quiver's returns it"},
		{"deleted bucket: Cursor.Delete", "panic", "ErrBucketNotFound", bboltPanics},
		{"deleted bucket: Put", "panic", "ErrBucketNotFound", bboltPanics},
		{"deleted bucket: Get", `"b"`, "nil", "bbolt reads the deleted bucket's old pages; quiver returns nothing"},
		{"deleted bucket: Cursor.Next", `"b"`, "nil", "bbolt walks the deleted bucket's old pages; quiver returns nothing"},
	}
	got := map[string]map[string]string{"bbolt": bboltSemantics(t), "quiver": quiverSemantics(t)}
	for _, c := range cases {
		if b := got["bbolt"][c.name]; b != c.bbolt {
			t.Errorf("%s: bbolt %s, recorded as %s", c.name, b, c.bbolt)
		}
		if q := got["quiver"][c.name]; q != c.quiver {
			t.Errorf("%s: quiver %s, want %s (bbolt: %s)", c.name, q, c.quiver, c.bbolt)
		}
		if (c.bbolt != c.quiver) != (c.why != "") {
			t.Errorf("%s: a difference must say why, and only a difference", c.name)
		}
	}
	for engine, m := range got {
		if len(m) != len(cases) {
			t.Errorf("%s answered %d cases, the table has %d", engine, len(m), len(cases))
		}
	}
}

func bboltSemantics(t *testing.T) map[string]string {
	out := map[string]string{}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "b"), 0o600, nil)
	ok(t, err)
	defer db.Close()
	ok(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("A"))
		if err != nil {
			return err
		}
		for _, k := range []string{"a", "b", "c"} {
			if err := b.Put([]byte(k), []byte(k)); err != nil {
				return err
			}
		}
		ok(t, b.Put([]byte("nil"), nil))
		ok(t, b.Put([]byte("empty"), []byte{}))
		out["nil value, Get in the same tx"] = val(b.Get([]byte("nil")))
		out["empty value, Get in the same tx"] = val(b.Get([]byte("empty")))
		out["DeleteBucket of an empty name"] = errName(tx.DeleteBucket(nil))
		out["DeleteBucket of a missing bucket"] = errName(tx.DeleteBucket([]byte("missing")))
		return nil
	}))
	ok(t, db.View(func(tx *bolt.Tx) error {
		out["nil value, Get after commit"] = val(tx.Bucket([]byte("A")).Get([]byte("nil")))
		return nil
	}))
	tx, err := db.Begin(true)
	ok(t, err)
	b := tx.Bucket([]byte("A"))
	c := b.Cursor()
	c.First()
	ok(t, tx.Commit())
	for name, f := range map[string]func() string{
		"Put":           func() string { return errName(b.Put([]byte("a"), nil)) },
		"Delete":        func() string { return errName(b.Delete([]byte("a"))) },
		"CreateBucket":  func() string { _, err := b.CreateBucket([]byte("x")); return errName(err) },
		"NextSequence":  func() string { _, err := b.NextSequence(); return errName(err) },
		"ForEach":       func() string { return errName(b.ForEach(func(k, v []byte) error { return nil })) },
		"Cursor.Delete": func() string { return errName(c.Delete()) },
		"Commit":        func() string { return errName(tx.Commit()) },
		"Rollback":      func() string { return errName(tx.Rollback()) },
		"Get":           func() string { return val(b.Get([]byte("a"))) },
		"Cursor.Next":   func() string { k, _ := c.Next(); return val(k) },
	} {
		out["after Commit: "+name] = outcome(f)
	}
	var vtx *bolt.Tx
	ok(t, db.View(func(tx *bolt.Tx) error {
		vtx, b = tx, tx.Bucket([]byte("A"))
		c = b.Cursor()
		c.First()
		return nil
	}))
	for name, f := range map[string]func() string{
		"Put":         func() string { return errName(b.Put([]byte("a"), nil)) },
		"ForEach":     func() string { return errName(b.ForEach(func(k, v []byte) error { return nil })) },
		"Rollback":    func() string { return errName(vtx.Rollback()) },
		"Get":         func() string { return val(b.Get([]byte("a"))) },
		"Cursor.Next": func() string { k, _ := c.Next(); return val(k) },
		"Tx.Bucket":   func() string { return fmt.Sprint(vtx.Bucket([]byte("A"))) },
	} {
		out["after View: "+name] = outcome(f)
	}
	for _, changed := range []bool{false, true} {
		tx, err := db.Begin(true)
		ok(t, err)
		b := tx.Bucket([]byte("A"))
		if changed {
			ok(t, b.Put([]byte("d"), []byte("d")))
		}
		c := b.Cursor()
		c.First()
		ok(t, c.Delete())
		k, _ := c.Next()
		if changed {
			out["Cursor.Delete, Next on a leaf changed before"] = val(k)
		} else {
			p, _ := c.Prev()
			out["Cursor.Delete, Next, Prev on an unchanged leaf"] = val(k) + " " + val(p)
		}
		ok(t, tx.Rollback())
	}
	// Each call on its own deleted bucket: a panic may leave bbolt's
	// transaction unusable.
	for name, f := range map[string]func(b *bolt.Bucket, c *bolt.Cursor) string{
		"Cursor.Delete": func(b *bolt.Bucket, c *bolt.Cursor) string { return errName(c.Delete()) },
		"Put":           func(b *bolt.Bucket, c *bolt.Cursor) string { return errName(b.Put([]byte("q"), []byte("v"))) },
		"Get":           func(b *bolt.Bucket, c *bolt.Cursor) string { return val(b.Get([]byte("b"))) },
		"Cursor.Next":   func(b *bolt.Bucket, c *bolt.Cursor) string { k, _ := c.Next(); return val(k) },
	} {
		tx, err := db.Begin(true)
		ok(t, err)
		b := tx.Bucket([]byte("A"))
		c := b.Cursor()
		c.First()
		ok(t, tx.DeleteBucket([]byte("A")))
		out["deleted bucket: "+name] = outcome(func() string { return f(b, c) })
		_ = outcome(func() string { return errName(tx.Rollback()) })
	}
	return out
}

func quiverSemantics(t *testing.T) map[string]string {
	out := map[string]string{}
	db := openDB(t, defaultFreelist, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("A"))
		if err != nil {
			return err
		}
		for _, k := range []string{"a", "b", "c"} {
			if err := b.Put([]byte(k), []byte(k)); err != nil {
				return err
			}
		}
		ok(t, b.Put([]byte("nil"), nil))
		ok(t, b.Put([]byte("empty"), []byte{}))
		out["nil value, Get in the same tx"] = val(b.Get([]byte("nil")))
		out["empty value, Get in the same tx"] = val(b.Get([]byte("empty")))
		out["DeleteBucket of an empty name"] = errName(tx.DeleteBucket(nil))
		out["DeleteBucket of a missing bucket"] = errName(tx.DeleteBucket([]byte("missing")))
		return nil
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		out["nil value, Get after commit"] = val(tx.Bucket([]byte("A")).Get([]byte("nil")))
		return nil
	}))
	tx, err := db.Begin(true)
	ok(t, err)
	b := tx.Bucket([]byte("A"))
	c := b.Cursor()
	c.First()
	ok(t, tx.Commit())
	for name, f := range map[string]func() string{
		"Put":           func() string { return errName(b.Put([]byte("a"), nil)) },
		"Delete":        func() string { return errName(b.Delete([]byte("a"))) },
		"CreateBucket":  func() string { _, err := b.CreateBucket([]byte("x")); return errName(err) },
		"NextSequence":  func() string { _, err := b.NextSequence(); return errName(err) },
		"ForEach":       func() string { return errName(b.ForEach(func(k, v []byte) error { return nil })) },
		"Cursor.Delete": func() string { return errName(c.Delete()) },
		"Commit":        func() string { return errName(tx.Commit()) },
		"Rollback":      func() string { return errName(tx.Rollback()) },
		"Get":           func() string { return val(b.Get([]byte("a"))) },
		"Cursor.Next":   func() string { k, _ := c.Next(); return val(k) },
	} {
		out["after Commit: "+name] = outcome(f)
	}
	var vtx *quiver.Tx
	ok(t, db.View(func(tx *quiver.Tx) error {
		vtx, b = tx, tx.Bucket([]byte("A"))
		c = b.Cursor()
		c.First()
		return nil
	}))
	for name, f := range map[string]func() string{
		"Put":         func() string { return errName(b.Put([]byte("a"), nil)) },
		"ForEach":     func() string { return errName(b.ForEach(func(k, v []byte) error { return nil })) },
		"Rollback":    func() string { return errName(vtx.Rollback()) },
		"Get":         func() string { return val(b.Get([]byte("a"))) },
		"Cursor.Next": func() string { k, _ := c.Next(); return val(k) },
		"Tx.Bucket": func() string {
			if b := vtx.Bucket([]byte("A")); b != nil {
				return "a bucket"
			}
			return "nil"
		},
	} {
		out["after View: "+name] = outcome(f)
	}
	for _, changed := range []bool{false, true} {
		tx, err := db.Begin(true)
		ok(t, err)
		b := tx.Bucket([]byte("A"))
		if changed {
			ok(t, b.Put([]byte("d"), []byte("d")))
		}
		c := b.Cursor()
		c.First()
		ok(t, c.Delete())
		k, _ := c.Next()
		if changed {
			out["Cursor.Delete, Next on a leaf changed before"] = val(k)
		} else {
			p, _ := c.Prev()
			out["Cursor.Delete, Next, Prev on an unchanged leaf"] = val(k) + " " + val(p)
		}
		ok(t, tx.Rollback())
	}
	for name, f := range map[string]func(b *quiver.Bucket, c *quiver.Cursor) string{
		"Cursor.Delete": func(b *quiver.Bucket, c *quiver.Cursor) string { return errName(c.Delete()) },
		"Put":           func(b *quiver.Bucket, c *quiver.Cursor) string { return errName(b.Put([]byte("q"), []byte("v"))) },
		"Get":           func(b *quiver.Bucket, c *quiver.Cursor) string { return val(b.Get([]byte("b"))) },
		"Cursor.Next":   func(b *quiver.Bucket, c *quiver.Cursor) string { k, _ := c.Next(); return val(k) },
	} {
		tx, err := db.Begin(true)
		ok(t, err)
		b := tx.Bucket([]byte("A"))
		c := b.Cursor()
		c.First()
		ok(t, tx.DeleteBucket([]byte("A")))
		out["deleted bucket: "+name] = outcome(func() string { return f(b, c) })
		ok(t, tx.Rollback())
	}
	return out
}
