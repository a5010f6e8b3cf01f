package quiver_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/quiverdb/quiver"
)

func TestCursorEmptyBucket(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		ok(t, err)
		checkEmptyCursor(t, b.Cursor())
		return nil
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		checkEmptyCursor(t, tx.Bucket([]byte("b")).Cursor())
		return nil
	}))
	// Emptied by deletes, in the same tx and after commit.
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		ok(t, b.Put([]byte("x"), []byte("1")))
		ok(t, b.Delete([]byte("x")))
		checkEmptyCursor(t, b.Cursor())
		return nil
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		checkEmptyCursor(t, tx.Bucket([]byte("b")).Cursor())
		return nil
	}))
}

func checkEmptyCursor(t *testing.T, c *quiver.Cursor) {
	t.Helper()
	for name, f := range map[string]func() ([]byte, []byte){
		"First": c.First, "Last": c.Last, "Next": c.Next, "Prev": c.Prev,
		"Seek": func() ([]byte, []byte) { return c.Seek([]byte("a")) },
	} {
		if k, v := f(); k != nil || v != nil {
			t.Errorf("%s on an empty bucket: %q %q", name, k, v)
		}
	}
}

// cursorFixture makes bucket b with keys 0..n-1 (every other key, so that
// seeks can land between keys) and nested bucket "k000005x".
func cursorFixture(t *testing.T, n int) *testDB {
	db := openDB(t, quiver.FreelistArray, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		ok(t, err)
		for i := 0; i < n; i += 2 {
			ok(t, b.Put(key(i), value(i, 200)))
		}
		_, err = b.CreateBucket([]byte("k000005x"))
		return err
	}))
	return db
}

func TestCursorIterate(t *testing.T) {
	db := cursorFixture(t, 4000)
	check := func(tx *quiver.Tx) {
		c := tx.Bucket([]byte("b")).Cursor()
		var fwd [][]byte
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if bytes.Equal(k, []byte("k000005x")) {
				if v != nil {
					t.Errorf("bucket %q has value %q", k, v)
				}
			}
			fwd = append(fwd, k)
		}
		if len(fwd) != 2001 {
			t.Fatalf("forward saw %d keys", len(fwd))
		}
		i := len(fwd) - 1
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if !bytes.Equal(k, fwd[i]) {
				t.Fatalf("backward key %d = %q, forward %q", i, k, fwd[i])
			}
			i--
		}
		if i != -1 {
			t.Fatalf("backward stopped at %d", i)
		}
		// Prev from the first key returns nil.
		c.First()
		if k, _ := c.Prev(); k != nil {
			t.Errorf("Prev from first = %q", k)
		}
		// Next past the end stays at the end.
		c.Last()
		if k, _ := c.Next(); k != nil {
			t.Errorf("Next from last = %q", k)
		}
		if k, _ := c.Next(); k != nil {
			t.Errorf("Next after the end = %q", k)
		}
		if c.Bucket() != tx.Bucket([]byte("b")) && c.Bucket() == nil {
			t.Error("Cursor.Bucket is nil")
		}
	}
	ok(t, db.View(func(tx *quiver.Tx) error { check(tx); return nil }))
	ok(t, db.Update(func(tx *quiver.Tx) error { check(tx); return nil }))
}

func TestCursorSeek(t *testing.T) {
	db := cursorFixture(t, 4000)
	fn := func(tx *quiver.Tx) error {
		c := tx.Bucket([]byte("b")).Cursor()
		cases := []struct{ seek, want string }{
			{"", "k000000"},
			{"a", "k000000"},
			{"k000000", "k000000"},
			{"k000001", "k000002"},     // between keys
			{"k000005", "k000005x"},    // lands on the nested bucket
			{"k002001", "k002002"},     // mid tree
			{"k003998", "k003998"},     // last key
			{"k003999", ""},            // past the end
			{"zzz", ""},                // far past the end
			{"k001999\xff", "k002000"}, // just above a key
		}
		for _, c2 := range cases {
			k, v := c.Seek([]byte(c2.seek))
			if string(k) != c2.want {
				t.Errorf("Seek(%q) = %q, want %q", c2.seek, k, c2.want)
			}
			if c2.want == "k000005x" && v != nil {
				t.Errorf("Seek onto a bucket returned value %q", v)
			}
		}
		// Next after a seek continues in order.
		k, _ := c.Seek([]byte("k001001"))
		k2, _ := c.Next()
		if string(k) != "k001002" || string(k2) != "k001004" {
			t.Errorf("Seek then Next: %q %q", k, k2)
		}
		// Prev after seeking past the end returns nothing more.
		c.Seek([]byte("zzz"))
		return nil
	}
	ok(t, db.View(fn))
	ok(t, db.Update(fn))
}

func TestCursorDeleteWhileIterating(t *testing.T) {
	db := cursorFixture(t, 6000)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		c := tx.Bucket([]byte("b")).Cursor()
		seen := 0
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			seen++
			if bytes.Equal(k, []byte("k000005x")) {
				if err := c.Delete(); err != quiver.ErrIncompatibleValue {
					t.Errorf("Cursor.Delete on a bucket: %v", err)
				}
				continue
			}
			// Delete every key whose number is divisible by 4.
			var n int
			fmt.Sscanf(string(k), "k%d", &n)
			if n%4 == 0 {
				ok(t, c.Delete())
			}
		}
		if seen != 3001 {
			t.Errorf("iteration while deleting saw %d keys, want 3001", seen)
		}
		return nil
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		n := 0
		ok(t, tx.Bucket([]byte("b")).ForEach(func(k, v []byte) error {
			var i int
			fmt.Sscanf(string(k), "k%d", &i)
			if i%4 == 0 && !bytes.Equal(k, []byte("k000005x")) {
				t.Errorf("key %q survived", k)
			}
			n++
			return nil
		}))
		if n != 1501 {
			t.Errorf("%d keys left, want 1501", n)
		}
		return nil
	}))
	// Delete everything through a cursor: the bucket empties and merges.
	ok(t, db.Update(func(tx *quiver.Tx) error {
		c := tx.Bucket([]byte("b")).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if !bytes.Equal(k, []byte("k000005x")) {
				ok(t, c.Delete())
			}
		}
		return nil
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		k, _ := tx.Bucket([]byte("b")).Cursor().First()
		k2, _ := tx.Bucket([]byte("b")).Cursor().Last()
		if string(k) != "k000005x" || string(k2) != "k000005x" {
			t.Errorf("after deleting all keys First %q Last %q", k, k2)
		}
		return nil
	}))
}

func TestCursorSeesOwnWrites(t *testing.T) {
	db := cursorFixture(t, 200)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b := tx.Bucket([]byte("b"))
		ok(t, b.Put([]byte("k000001"), []byte("new")))
		ok(t, b.Delete([]byte("k000002")))
		c := b.Cursor()
		k, v := c.Seek([]byte("k000001"))
		if string(k) != "k000001" || string(v) != "new" {
			t.Errorf("seek own put: %q %q", k, v)
		}
		k, _ = c.Next()
		if string(k) != "k000004" {
			t.Errorf("after own delete Next = %q", k)
		}
		return nil
	}))
}

func TestTxCursorListsBuckets(t *testing.T) {
	db := openDB(t, quiver.FreelistArray, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		for _, n := range []string{"c", "a", "b"} {
			if _, err := tx.CreateBucket([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	}))
	ok(t, db.View(func(tx *quiver.Tx) error {
		var names []string
		c := tx.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v != nil {
				t.Errorf("bucket %q has a value", k)
			}
			names = append(names, string(k))
		}
		if fmt.Sprint(names) != "[a b c]" {
			t.Errorf("root cursor saw %v", names)
		}
		return nil
	}))
}

// TestCursorRunsOffAndBack (issue 15, case 4): a cursor that runs off
// either end stays on the first or last key, as bbolt's does, so that the
// walk continues in the other direction from there: First, Prev (nil),
// Next gives the second key; Last, Next (nil), Prev gives the one before
// the last. A Seek past the end leaves the cursor past the last key.
func TestCursorRunsOffAndBack(t *testing.T) {
	for _, n := range []int{6, 4000} { // one leaf; three levels
		db := cursorFixture(t, n)
		check := func(tx *quiver.Tx) error {
			c := tx.Bucket([]byte("b")).Cursor()
			firstKey, _ := c.First()
			second, _ := c.Next()
			lastKey, _ := c.Last()
			beforeLast, _ := c.Prev()
			steps := []struct {
				name string
				move func() ([]byte, []byte)
				want []byte
			}{
				{"First", c.First, firstKey},
				{"Prev", c.Prev, nil},
				{"Prev again", c.Prev, nil},
				{"Next", c.Next, second},
				{"Last", c.Last, lastKey},
				{"Next", c.Next, nil},
				{"Next again", c.Next, nil},
				{"Prev", c.Prev, beforeLast},
				{"Seek past the end", func() ([]byte, []byte) { return c.Seek([]byte("zzz")) }, nil},
				{"Prev", c.Prev, lastKey},
			}
			for i, s := range steps {
				if k, _ := s.move(); !bytes.Equal(k, s.want) {
					t.Errorf("%d keys, step %d (%s): %q, want %q", n/2, i, s.name, k, s.want)
				}
			}
			return nil
		}
		ok(t, db.View(check))
		ok(t, db.Update(check))
	}
}

// TestCursorAfterDelete: after Cursor.Delete, Next returns the key after
// the deleted one and Prev the key before it, whether the leaf was changed
// before in the transaction or not; deleting the last key and running off
// the end leaves the cursor past the end, so that Prev returns the new
// last key.
func TestCursorAfterDelete(t *testing.T) {
	db := cursorFixture(t, 4000)
	for _, changed := range []bool{false, true} {
		tx, err := db.Begin(true)
		ok(t, err)
		b := tx.Bucket([]byte("b"))
		if changed {
			ok(t, b.Put(key(1001), value(1001, 10)))
			ok(t, b.Put(key(3997), value(3997, 10)))
		}
		c := b.Cursor()
		c.Seek(key(1000))
		ok(t, c.Delete())
		if k, _ := c.Next(); !bytes.Equal(k, key(map[bool]int{false: 1002, true: 1001}[changed])) {
			t.Errorf("changed %v: Next after Delete = %q", changed, k)
		}
		c.Seek(key(1002))
		ok(t, c.Delete())
		if k, _ := c.Prev(); !bytes.Equal(k, key(map[bool]int{false: 998, true: 1001}[changed])) {
			t.Errorf("changed %v: Prev after Delete = %q", changed, k)
		}
		c.Last()
		ok(t, c.Delete())
		if k, _ := c.Next(); k != nil {
			t.Errorf("changed %v: Next after deleting the last key = %q", changed, k)
		}
		if k, _ := c.Prev(); !bytes.Equal(k, key(map[bool]int{false: 3996, true: 3997}[changed])) {
			t.Errorf("changed %v: Prev after running off the end = %q", changed, k)
		}
		ok(t, tx.Rollback())
	}
}

// TestCursorEmptiedLeaves: in a write transaction whose deletes emptied
// leaves at the start, middle or end of a bucket, walks that cross them or
// run off an end next to them return each remaining key once, in order,
// and come back the way they went (found by review: running off the end
// past emptied last leaves left the cursor in them, so Prev returned the
// last key again).
func TestCursorEmptiedLeaves(t *testing.T) {
	const n = 600
	k := func(i int) []byte { return []byte(fmt.Sprintf("k%05d", i)) }
	db := openDB(t, defaultFreelist, nil)
	ok(t, db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := b.Put(k(i), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	}))
	for _, tc := range []struct {
		name   string
		lo, hi int // deleted
		steps  []string
		want   []string
	}{
		{"last leaves", 450, n, []string{"Last", "Next", "Prev", "Next", "Next", "Prev"}, []string{"k00449", "", "k00448", "k00449", "", "k00448"}},
		{"first leaves", 0, 150, []string{"Seek k00150", "Prev", "Next", "First", "Prev", "Next"}, []string{"k00150", "", "k00151", "k00150", "", "k00151"}},
		{"middle leaves", 200, 350, []string{"Seek k00350", "Prev", "Next", "Seek k00199", "Next"}, []string{"k00350", "k00199", "k00350", "k00199", "k00350"}},
		{"past the end", 450, n, []string{"Seek zzz", "Prev", "Next", "Next", "Prev"}, []string{"", "k00449", "", "", "k00448"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := db.Begin(true)
			ok(t, err)
			defer tx.Rollback()
			b := tx.Bucket([]byte("b"))
			for i := tc.lo; i < tc.hi; i++ {
				ok(t, b.Delete(k(i)))
			}
			c := b.Cursor()
			for i, step := range tc.steps {
				var got []byte
				switch {
				case step == "First":
					got, _ = c.First()
				case step == "Last":
					got, _ = c.Last()
				case step == "Next":
					got, _ = c.Next()
				case step == "Prev":
					got, _ = c.Prev()
				default:
					got, _ = c.Seek([]byte(step[len("Seek "):]))
				}
				if string(got) != tc.want[i] {
					t.Fatalf("step %d (%s): %q, want %q (steps %v)", i, step, got, tc.want[i], tc.steps)
				}
			}
			// A full walk each way sees every remaining key once.
			var fwd, back int
			for key, _ := c.First(); key != nil; key, _ = c.Next() {
				fwd++
			}
			for key, _ := c.Last(); key != nil; key, _ = c.Prev() {
				back++
			}
			if want := n - (tc.hi - tc.lo); fwd != want || back != want {
				t.Fatalf("walks saw %d and %d keys, want %d", fwd, back, want)
			}
		})
	}
}
