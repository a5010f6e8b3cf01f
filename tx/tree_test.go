package tx_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/quiverdb/quiver/internal/testutil"
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

var testSeed = testutil.Seed

// model is the expected content of nested buckets: path -> key -> value.
type model map[string]map[string]string

// compare checks every bucket of m against the transaction, both ways
// with cursors.
func (m model) compare(t *testing.T, x *tx.Tx) {
	t.Helper()
	for path, kv := range m {
		b := tx.Root(x)
		for _, name := range splitPath(path) {
			if b = b.Bucket([]byte(name)); b == nil {
				t.Fatalf("bucket %q missing", path)
			}
		}
		keys := make([]string, 0, len(kv))
		for k := range kv {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var got []string
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				continue // a nested bucket
			}
			got = append(got, string(k))
			if want := kv[string(k)]; string(v) != want {
				t.Fatalf("bucket %q key %q = %q, want %q", path, k, v, want)
			}
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("bucket %q holds %d keys, want %d", path, len(got), len(keys))
		}
		n := len(keys)
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if v == nil {
				continue
			}
			n--
			if n < 0 || string(k) != keys[n] {
				t.Fatalf("bucket %q backwards: %q at %d", path, k, n)
			}
		}
		if n != 0 {
			t.Fatalf("bucket %q backwards stopped at %d", path, n)
		}
	}
}

func splitPath(p string) []string {
	if p == "" {
		return nil
	}
	return bytes2strings(bytes.Split([]byte(p), []byte("/")))
}

func bytes2strings(b [][]byte) []string {
	out := make([]string, len(b))
	for i, s := range b {
		out[i] = string(s)
	}
	return out
}

// TestTreeSplitRebalanceInMemory: random puts and deletes in nested
// buckets through the in-memory backend, commits and rollbacks, compared
// with a model after each transaction and checked: the tree splits as it
// grows, merges as it empties, and every state passes Check, with no file.
func TestTreeSplitRebalanceInMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	for _, ps := range []int{1024, 4096} {
		m := newMemStore(ps, 64<<20)
		want := model{"a": {}, "a/n": {}, "b": {}}
		if err := m.update(func(x *tx.Tx) error {
			a, err := x.CreateBucket([]byte("a"))
			if err != nil {
				return err
			}
			if _, err := a.CreateBucket([]byte("n")); err != nil {
				return err
			}
			_, err = x.CreateBucket([]byte("b"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		paths := []string{"a", "a/n", "b"}
		var maxDepth int
		for round := 0; round < 60; round++ {
			grow := round < 35
			next := model{}
			for p, kv := range want {
				next[p] = map[string]string{}
				for k, v := range kv {
					next[p][k] = v
				}
			}
			rollback := rng.IntN(8) == 0
			err := m.update(func(x *tx.Tx) error {
				for i := 0; i < 300; i++ {
					p := paths[rng.IntN(len(paths))]
					b := tx.Root(x)
					for _, name := range splitPath(p) {
						b = b.Bucket([]byte(name))
					}
					k := fmt.Sprintf("key%06d", rng.IntN(20000))
					if grow || rng.IntN(10) == 0 {
						v := string(bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(ps/2)))
						if err := b.Put([]byte(k), []byte(v)); err != nil {
							return err
						}
						next[p][k] = v
						continue
					}
					// Delete the keys next to k, so that leaves empty.
					c := b.Cursor()
					for key, v := c.Seek([]byte(k)); key != nil && v != nil && len(next[p]) > 0 && rng.IntN(40) != 0; key, v = c.Next() {
						if err := c.Delete(); err != nil {
							return err
						}
						delete(next[p], string(key))
					}
				}
				if rollback {
					return errors.New("rolled back")
				}
				return nil
			})
			if rollback {
				if err == nil || err.Error() != "rolled back" {
					t.Fatalf("round %d: %v", round, err)
				}
			} else if err != nil {
				t.Fatalf("round %d: %v", round, err)
			} else {
				want = next
			}
			if err := m.view(func(x *tx.Tx) error {
				want.compare(t, x)
				if d := x.Bucket([]byte("a")).Stats().Depth; d > maxDepth {
					maxDepth = d
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			m.check(t)
		}
		var depth int
		if err := m.view(func(x *tx.Tx) error { depth = x.Bucket([]byte("a")).Stats().Depth; return nil }); err != nil {
			t.Fatal(err)
		}
		if maxDepth < 3 || depth >= maxDepth {
			t.Fatalf("page size %d: the tree reached depth %d and is %d after the deletes: no split or no merge", ps, maxDepth, depth)
		}
		t.Logf("page size %d: depth %d at most, %d after the deletes; %d keys left", ps, maxDepth, depth, len(want["a"])+len(want["a/n"])+len(want["b"]))
	}
}

// TestCheckFindsDamageInMemory: Check reports a damaged page of the tree,
// naming it, with no file involved.
func TestCheckFindsDamageInMemory(t *testing.T) {
	m := newMemStore(1024, 8<<20)
	if err := m.update(func(x *tx.Tx) error {
		b, err := x.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 500; i++ {
			if err := b.Put([]byte(fmt.Sprintf("k%04d", i)), []byte("value")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m.check(t)
	var root page.Pgid
	if err := m.view(func(x *tx.Tx) error { root = x.Bucket([]byte("b")).Root(); return nil }); err != nil {
		t.Fatal(err)
	}
	m.data[int(root)*m.ps+page.HeaderSize+3] ^= 0x40
	var found bool
	if err := m.view(func(x *tx.Tx) error {
		for err := range x.Check() {
			var ce *tx.CorruptionError
			if errors.As(err, &ce) && ce.Pgid == root {
				found = true
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("Check did not report the damaged page %d", root)
	}
}

// TestCheckOptions: WithKVStringer renders the keys of Check's reports;
// WithPageId checks one subtree, so damage elsewhere is not reported.
func TestCheckOptions(t *testing.T) {
	m := newMemStore(1024, 8<<20)
	if err := m.update(func(x *tx.Tx) error {
		for _, name := range []string{"good", "bad"} {
			b, err := x.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for i := 0; i < 5; i++ {
				if err := b.Put([]byte(fmt.Sprintf("k%d", i)), []byte("v")); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var good, bad page.Pgid
	if err := m.view(func(x *tx.Tx) error {
		good, bad = x.Bucket([]byte("good")).Root(), x.Bucket([]byte("bad")).Root()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Unorder bad's leaf (k2 becomes k9) and seal it again, so that only
	// the order check can see it.
	p := m.data[int(bad)*m.ps : int(bad+1)*m.ps]
	_, k, _, _ := page.LeafElem(p, 2)
	k[1] = '9'
	page.Seal(p)
	reports := func(opts ...tx.CheckOption) []string {
		var out []string
		if err := m.view(func(x *tx.Tx) error {
			for err := range x.Check(opts...) {
				out = append(out, err.Error())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The whole check also finds that the commit record's checksum of the
	// page no longer matches.
	if r := reports(); len(r) != 2 || !strings.Contains(r[0], `"k9" then "k3"`) {
		t.Fatalf("default reports: %q", r)
	}
	if r := reports(tx.WithKVStringer(tx.HexKVStringer())); len(r) != 2 || !strings.Contains(r[0], "6b39 then 6b33") {
		t.Fatalf("hex reports: %q", r)
	}
	if r := reports(tx.WithPageId(uint64(good))); len(r) != 0 {
		t.Fatalf("the good subtree reported %q", r)
	}
	if r := reports(tx.WithPageId(uint64(bad))); len(r) != 1 {
		t.Fatalf("the bad subtree reported %q", r)
	}
}
