package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
)

// binName is the bucket name with bytes that are not printable: the
// commands print it as hex in --format auto.
var binName = []byte{0x00, 0xff, 'b'}

// largeValue is the value of blobs/large: it spans many overflow pages.
var largeValue = bytes.Repeat([]byte("0123456789abcdef"), 300_000/16)

const manyKeys = 2000

// writeTestDB fills the database at path with what the command tests
// expect: nested buckets with sequences, binary names, keys and values, an
// empty value, an empty bucket, a large value and enough keys for branch
// pages.
//
//	users (sequence 41): alice, bob, sessions/
//	  sessions (sequence 3): s1, 2024/
//	    2024: jan
//	00ff62: 0001fe = deadbeef, empty = ""
//	blobs: large = 300000 bytes
//	empty
//	many: key00000 .. key01999 = 64 bytes each
func writeTestDB(t testing.TB, path string) {
	t.Helper()
	db, err := quiver.Open(path, 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *quiver.Tx) error {
		users, err := tx.CreateBucket([]byte("users"))
		if err != nil {
			return err
		}
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		must(users.SetSequence(41))
		must(users.Put([]byte("alice"), []byte("Alice Liddell")))
		must(users.Put([]byte("bob"), []byte("Bob")))
		sessions, err := users.CreateBucket([]byte("sessions"))
		must(err)
		for range 3 {
			_, err := sessions.NextSequence()
			must(err)
		}
		must(sessions.Put([]byte("s1"), []byte("x")))
		year, err := sessions.CreateBucket([]byte("2024"))
		must(err)
		must(year.Put([]byte("jan"), []byte("1")))

		bin, err := tx.CreateBucket(binName)
		must(err)
		must(bin.Put([]byte{0x00, 0x01, 0xfe}, []byte{0xde, 0xad, 0xbe, 0xef}))
		must(bin.Put([]byte("empty"), []byte{}))

		blobs, err := tx.CreateBucket([]byte("blobs"))
		must(err)
		must(blobs.Put([]byte("large"), largeValue))

		_, err = tx.CreateBucket([]byte("empty"))
		must(err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The many keys in a few commits, so that the file has commit records
	// and free pages.
	for c := range 4 {
		err = db.Update(func(tx *quiver.Tx) error {
			many, err := tx.CreateBucketIfNotExists([]byte("many"))
			if err != nil {
				return err
			}
			for i := c * manyKeys / 4; i < (c+1)*manyKeys/4; i++ {
				if err := many.Put(manyKey(i), manyValue(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func manyKey(i int) []byte { return fmt.Appendf(nil, "key%05d", i) }

func manyValue(i int) []byte {
	return bytes.Repeat([]byte{byte('a' + i%26)}, 64)
}

// newTestDB writes the test database in a new directory and registers a
// cleanup that checks it, so that no command leaves it damaged.
func newTestDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	writeTestDB(t, path)
	t.Cleanup(func() { checkDB(t, path) })
	return path
}

// checkDB runs the engine's check on the database at path.
func checkDB(t testing.TB, path string) {
	t.Helper()
	db, err := quiver.Open(path, 0, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *quiver.Tx) error {
		for err := range tx.Check() {
			t.Errorf("check %s: %v", path, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
	}
}

// result is what one in-process run of the tool did.
type result struct {
	status         int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("status %d\nstdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
}

// quiverRun runs the tool in-process.
func quiverRun(args ...string) result {
	var stdout, stderr bytes.Buffer
	status := run(args, &stdout, &stderr)
	return result{status, stdout.String(), stderr.String()}
}

// copyFile copies the file src to a new file in a new directory.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// entry is one item of a database's contents, for comparing two.
type entry struct {
	path     string // bucket names and key in hex, "/"-separated
	value    string // "" for a bucket
	bucket   bool
	sequence uint64
}

// contents walks the database at path and returns every bucket (with its
// sequence) and key/value, in order.
func contents(t testing.TB, path string) []entry {
	t.Helper()
	db, err := quiver.Open(path, 0, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []entry
	var walk func(b *quiver.Bucket, prefix string)
	walk = func(b *quiver.Bucket, prefix string) {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			p := prefix + "/" + fmt.Sprintf("%x", k)
			if v == nil {
				if child := b.Bucket(k); child != nil {
					out = append(out, entry{path: p, bucket: true, sequence: child.Sequence()})
					walk(child, p)
					continue
				}
			}
			out = append(out, entry{path: p, value: string(v)})
		}
	}
	err = db.View(func(tx *quiver.Tx) error {
		return tx.ForEach(func(name []byte, b *quiver.Bucket) error {
			p := fmt.Sprintf("%x", name)
			out = append(out, entry{path: p, bucket: true, sequence: b.Sequence()})
			walk(b, p)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lines splits output into its lines.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
