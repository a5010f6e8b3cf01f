package quiver_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/internal/dbtest"
)

// mbucket is the model of a bucket: plain maps.
type mbucket struct {
	keys    map[string]string
	buckets map[string]*mbucket
	seq     uint64
}

func newMBucket() *mbucket {
	return &mbucket{keys: map[string]string{}, buckets: map[string]*mbucket{}}
}

func (m *mbucket) clone() *mbucket {
	c := &mbucket{keys: make(map[string]string, len(m.keys)), buckets: make(map[string]*mbucket, len(m.buckets)), seq: m.seq}
	for k, v := range m.keys {
		c.keys[k] = v
	}
	for k, b := range m.buckets {
		c.buckets[k] = b.clone()
	}
	return c
}

// flatten lists every bucket, key and sequence as "path\x00key=value".
func (m *mbucket) flatten(prefix string, out map[string]string) {
	out[prefix+"#seq"] = fmt.Sprint(m.seq)
	for k, v := range m.keys {
		out[prefix+"\x00"+k] = v
	}
	for k, b := range m.buckets {
		out[prefix+"\x00"+k+"/"] = "bucket"
		b.flatten(prefix+"\x00"+k+"/", out)
	}
}

// flattenDB reads what flatten produces from a transaction.
var flattenDB = dbtest.Flatten

func modelRoot(m *mbucket) map[string]string {
	out := map[string]string{}
	for k, b := range m.buckets {
		out["\x00"+k+"/"] = "bucket"
		b.flatten("\x00"+k+"/", out)
	}
	return out
}

func diffFlat(want, got map[string]string) string {
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %q", k))
		} else if g != v {
			diffs = append(diffs, fmt.Sprintf("%q = %.30q, want %.30q", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %q", k))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
	}
	return strings.Join(diffs, "\n")
}

// randomValue returns a value that is usually small and sometimes spans
// overflow pages.
func randomValue(r *rand.Rand) string {
	n := r.IntN(64)
	switch r.IntN(50) {
	case 0:
		n = 4000 + r.IntN(40000)
	case 1:
		n = 0
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

func randomKey(r *rand.Rand) string {
	if r.IntN(20) == 0 {
		return strings.Repeat("long", 1+r.IntN(100)) + fmt.Sprint(r.IntN(100))
	}
	return fmt.Sprintf("%03x", r.IntN(600))
}

// pickBucket walks from the root to a random bucket and returns the db and
// model buckets and the path.
func pickBucket(r *rand.Rand, tx *quiver.Tx, m *mbucket) (*quiver.Bucket, *mbucket) {
	names := sortedKeys(m.buckets)
	if len(names) == 0 {
		return nil, m
	}
	name := names[r.IntN(len(names))]
	b, mb := tx.Bucket([]byte(name)), m.buckets[name]
	for r.IntN(3) != 0 && len(mb.buckets) > 0 {
		names := sortedKeys(mb.buckets)
		name := names[r.IntN(len(names))]
		b, mb = b.Bucket([]byte(name)), mb.buckets[name]
	}
	return b, mb
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// randomOp applies one random operation to tx and the model m.
func randomOp(t *testing.T, r *rand.Rand, tx *quiver.Tx, m *mbucket) {
	t.Helper()
	b, mb := pickBucket(r, tx, m)
	if b == nil || r.IntN(40) == 0 {
		// A top-level bucket op.
		name := fmt.Sprintf("top%d", r.IntN(6))
		if _, exists := m.buckets[name]; exists && r.IntN(3) == 0 {
			ok(t, tx.DeleteBucket([]byte(name)))
			delete(m.buckets, name)
		} else if !exists {
			_, err := tx.CreateBucket([]byte(name))
			ok(t, err)
			m.buckets[name] = newMBucket()
		}
		return
	}
	if b == nil {
		t.Fatal("model bucket has no db bucket")
	}
	switch op := r.IntN(100); {
	case op < 55:
		k, v := randomKey(r), randomValue(r)
		err := b.Put([]byte(k), []byte(v))
		if _, isBucket := mb.buckets[k]; isBucket {
			if !errors.Is(err, quiver.ErrIncompatibleValue) {
				t.Fatalf("put over bucket %q: %v", k, err)
			}
			return
		}
		ok(t, err)
		mb.keys[k] = v
	case op < 80:
		k := randomKey(r)
		if keys := sortedKeys(mb.keys); len(keys) > 0 && r.IntN(2) == 0 {
			k = keys[r.IntN(len(keys))]
		}
		err := b.Delete([]byte(k))
		if _, isBucket := mb.buckets[k]; isBucket {
			if !errors.Is(err, quiver.ErrIncompatibleValue) {
				t.Fatalf("delete of bucket %q: %v", k, err)
			}
			return
		}
		ok(t, err)
		delete(mb.keys, k)
	case op < 85:
		k := "sub" + randomKey(r)
		if _, isKey := mb.keys[k]; isKey {
			return
		}
		_, err := b.CreateBucketIfNotExists([]byte(k))
		ok(t, err)
		if _, exists := mb.buckets[k]; !exists {
			mb.buckets[k] = newMBucket()
		}
	case op < 87:
		names := sortedKeys(mb.buckets)
		if len(names) == 0 {
			return
		}
		k := names[r.IntN(len(names))]
		ok(t, b.DeleteBucket([]byte(k)))
		delete(mb.buckets, k)
	case op < 90:
		s, err := b.NextSequence()
		ok(t, err)
		mb.seq++
		if s != mb.seq {
			t.Fatalf("NextSequence %d, model %d", s, mb.seq)
		}
	case op < 95:
		// Delete a run through a cursor.
		c := b.Cursor()
		k, _ := c.Seek([]byte(randomKey(r)))
		for i := 0; k != nil && i < 1+r.IntN(20); i++ {
			if _, isBucket := mb.buckets[string(k)]; !isBucket {
				ok(t, c.Delete())
				delete(mb.keys, string(k))
			}
			k, _ = c.Next()
		}
	case op < 97:
		// A run of keys in order, below or above everything else, with a
		// random fill percent: splits and redistribution at the edges.
		b.FillPercent = []float64{0.1, 0.5, 0.9, 1.0}[r.IntN(4)]
		prefix := []string{"!", "~"}[r.IntN(2)]
		n := 20 + r.IntN(200)
		for i := 0; i < n; i++ {
			j := i
			if r.IntN(2) == 0 {
				j = n - i
			}
			k := fmt.Sprintf("%s%05d", prefix, j)
			if _, isBucket := mb.buckets[k]; isBucket {
				continue
			}
			v := randomValue(r)
			ok(t, b.Put([]byte(k), []byte(v)))
			mb.keys[k] = v
		}
	default:
		k := randomKey(r)
		got := b.Get([]byte(k))
		want, exists := mb.keys[k]
		if exists != (got != nil) || string(got) != want {
			t.Fatalf("Get(%q) = %.20q, model %.20q (exists %v)", k, got, want, exists)
		}
	}
}

// TestRandomModel runs random operations on nested buckets against a map
// model, committing, rolling back and reopening at random, and compares the
// whole database with the model after every transaction.
func TestRandomModel(t *testing.T) {
	txs := 400
	if testing.Short() {
		txs = 100
	}
	forEachFreelist(t, func(t *testing.T, ft quiver.FreelistType) {
		seed := testSeed(t)
		r := newRand(seed)
		db := openDB(t, ft, &quiver.Options{PageSize: 1024, NoSync: true})
		model := newMBucket()
		for i := 0; i < txs; i++ {
			work := model.clone()
			tx, err := db.Begin(true)
			ok(t, err)
			// A failure below must not leave the writer lock held.
			t.Cleanup(func() { _ = tx.Rollback() })
			for n := r.IntN(200); n >= 0; n-- {
				randomOp(t, r, tx, work)
			}
			// The tx sees its own writes.
			got, err := flattenDB(tx)
			ok(t, err)
			if d := diffFlat(modelRoot(work), got); d != "" {
				t.Fatalf("tx %d (seed %d): in-tx view differs from model:\n%s", i, seed, d)
			}
			if r.IntN(5) == 0 {
				ok(t, tx.Rollback())
			} else {
				ok(t, tx.Commit())
				model = work
			}
			if r.IntN(25) == 0 {
				db.reopen()
			}
			ok(t, db.View(func(tx *quiver.Tx) error {
				got, err := flattenDB(tx)
				if err != nil {
					return err
				}
				if d := diffFlat(modelRoot(model), got); d != "" {
					t.Fatalf("after tx %d (seed %d): database differs from model:\n%s", i, seed, d)
				}
				return nil
			}))
			if i%50 == 0 {
				db.mustCheck()
				if t.Failed() {
					t.Fatalf("check failed after tx %d (seed %d)", i, seed)
				}
			}
		}
	})
}
