package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
	bolt "go.etcd.io/bbolt"
)

// The bbolt database the migration tests start from, with every edge case
// of the format a migration must carry over:
//
//	users (sequence 41): alice, bob, empty = "", sessions/ (sequence 3): s1, 2024/: jan
//	00 (a one-byte binary name): 00 = 00
//	00ff62 (binary): 0001fe = deadbeef, empty = ""
//	blobs: large = 4 MiB, maxkey (a key of bbolt's MaxKeySize) = "v",
//	       maxkey2 (another, one byte different) = 64 KiB
//	empty: nothing
//	seqonly (sequence 7): nothing
//	deep: d01/d02/.../d20, each with a key, d20 with sequence 20 and an empty bucket
//	many: mkey0000 .. mkey0799, 100 bytes each (branch pages)
//	ffff (binary, last): nested empty bucket 00 with sequence 1<<63
var (
	migrateLarge  = bytes.Repeat([]byte("quiver<-bbolt->"), 4<<20/15)
	migrateMaxKey = bytes.Repeat([]byte{'k'}, bolt.MaxKeySize)
	migrateKey2   = append(bytes.Repeat([]byte{'k'}, bolt.MaxKeySize-1), 'l')
	migrateMid    = bytes.Repeat([]byte{0xa5}, 64<<10)
)

const migrateManyKeys = 800

// writeBoltDB writes the test database at path with bbolt, with pages of
// pageSize bytes (0: bbolt's default).
func writeBoltDB(t testing.TB, path string, pageSize int) {
	t.Helper()
	db, err := bolt.Open(path, 0o640, &bolt.Options{PageSize: pageSize, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Update(func(tx *bolt.Tx) error {
		users, err := tx.CreateBucket([]byte("users"))
		must(err)
		must(users.SetSequence(41))
		must(users.Put([]byte("alice"), []byte("Alice Liddell")))
		must(users.Put([]byte("bob"), []byte("Bob")))
		must(users.Put([]byte("empty"), []byte{}))
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

		zero, err := tx.CreateBucket([]byte{0})
		must(err)
		must(zero.Put([]byte{0}, []byte{0}))
		bin, err := tx.CreateBucket([]byte{0x00, 0xff, 'b'})
		must(err)
		must(bin.Put([]byte{0x00, 0x01, 0xfe}, []byte{0xde, 0xad, 0xbe, 0xef}))
		must(bin.Put([]byte("empty"), nil))

		blobs, err := tx.CreateBucket([]byte("blobs"))
		must(err)
		must(blobs.Put([]byte("large"), migrateLarge))
		must(blobs.Put(migrateMaxKey, []byte("v")))
		must(blobs.Put(migrateKey2, migrateMid))

		_, err = tx.CreateBucket([]byte("empty"))
		must(err)
		seqonly, err := tx.CreateBucket([]byte("seqonly"))
		must(err)
		must(seqonly.SetSequence(7))

		deep, err := tx.CreateBucket([]byte("deep"))
		must(err)
		b := deep
		for i := 1; i <= 20; i++ {
			b, err = b.CreateBucket(fmt.Appendf(nil, "d%02d", i))
			must(err)
			must(b.Put(fmt.Appendf(nil, "level%02d", i), fmt.Appendf(nil, "%d", i)))
		}
		must(b.SetSequence(20))
		_, err = b.CreateBucket([]byte("bottom"))
		must(err)

		last, err := tx.CreateBucket([]byte{0xff, 0xff})
		must(err)
		nested, err := last.CreateBucket([]byte{0})
		must(err)
		return nested.SetSequence(1 << 63)
	}))
	// The many keys in a few commits, so that the file has free pages.
	for c := range 4 {
		must(db.Update(func(tx *bolt.Tx) error {
			many, err := tx.CreateBucketIfNotExists([]byte("many"))
			if err != nil {
				return err
			}
			for i := c * migrateManyKeys / 4; i < (c+1)*migrateManyKeys/4; i++ {
				if err := many.Put(fmt.Appendf(nil, "mkey%04d", i), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
					return err
				}
			}
			return nil
		}))
	}
}

// newBoltDB writes the bbolt test database in a new directory.
func newBoltDB(t *testing.T, pageSize int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.bolt")
	writeBoltDB(t, path, pageSize)
	return path
}

// boltContents walks the bbolt database at path with bbolt's own API, as
// contents walks a quiver one, and runs bbolt's check on it.
func boltContents(t testing.TB, path string) []entry {
	t.Helper()
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []entry
	var walk func(b *bolt.Bucket, prefix string)
	walk = func(b *bolt.Bucket, prefix string) {
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
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check %s: %v", path, err)
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
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

func boltPageSize(t testing.TB, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return db.Info().PageSize
}

func quiverPageSize(t testing.TB, path string) int {
	t.Helper()
	db, err := quiver.Open(path, 0, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	_ = db.View(func(tx *quiver.Tx) error { n = int(tx.Meta().PageSize); return nil })
	return n
}

// diffEntries reports the first difference between two walks.
func diffEntries(t *testing.T, what string, got, want []entry) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			g, w := got[i], want[i]
			g.value, w.value = fmt.Sprintf("%d bytes", len(g.value)), fmt.Sprintf("%d bytes", len(w.value))
			t.Errorf("%s: entry %d is %+v, want %+v", what, i, g, w)
			return
		}
	}
	t.Errorf("%s: %d entries, want %d", what, len(got), len(want))
}

var migrateLine = regexp.MustCompile(`^(.+) \((bbolt|quiver)\) -> (.+) \((bbolt|quiver)\): ([0-9]+) buckets, ([0-9]+) keys, xxhash ([0-9a-f]{16}) OK\n$`)

// TestMigrateRoundTrip imports a bbolt database, exports the result, and
// compares all three files entry by entry, with each engine's own API.
func TestMigrateRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pageSize int
		flags    []string
	}{
		{"default", 0, nil},
		// A commit before every item: the path of buckets is entered
		// again in each new transaction, at every depth.
		{"commit per item", 0, []string{"--tx-max-size", "1", "--no-sync"}},
		{"one transaction, 16 KiB pages", 16384, []string{"--tx-max-size", "1000000000"}},
		{"1 KiB pages", 1024, []string{"--no-sync"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newBoltDB(t, tc.pageSize)
			want := boltContents(t, src)
			dir := t.TempDir()
			mid := filepath.Join(dir, "mid.db")
			back := filepath.Join(dir, "back.bolt")

			r := quiverRun(append(append([]string{"import", "--from-bbolt"}, tc.flags...), src, mid)...)
			if r.status != 0 || r.stderr != "" {
				t.Fatal(r)
			}
			in := migrateLine.FindStringSubmatch(r.stdout)
			if in == nil || in[1] != src || in[2] != "bbolt" || in[3] != mid || in[4] != "quiver" {
				t.Fatalf("import printed %q", r.stdout)
			}
			checkDB(t, mid)
			diffEntries(t, "quiver copy", contents(t, mid), want)

			r = quiverRun(append(append([]string{"export", "--to-bbolt"}, tc.flags...), mid, back)...)
			if r.status != 0 || r.stderr != "" {
				t.Fatal(r)
			}
			out := migrateLine.FindStringSubmatch(r.stdout)
			if out == nil || out[1] != mid || out[2] != "quiver" || out[3] != back || out[4] != "bbolt" {
				t.Fatalf("export printed %q", r.stdout)
			}
			diffEntries(t, "bbolt round trip", boltContents(t, back), want)

			// Both lines count and hash the same contents.
			if !slices.Equal(in[5:], out[5:]) {
				t.Errorf("import counted %q, export %q", in[5:], out[5:])
			}
			buckets, keys := 0, 0
			for _, e := range want {
				if e.bucket {
					buckets++
				} else {
					keys++
				}
			}
			if in[5] != fmt.Sprint(buckets) || in[6] != fmt.Sprint(keys) {
				t.Errorf("import counted %s buckets, %s keys; the source has %d and %d", in[5], in[6], buckets, keys)
			}

			// Page size and permissions carry over.
			ps := boltPageSize(t, src)
			if got := quiverPageSize(t, mid); got != ps {
				t.Errorf("quiver copy has %d-byte pages, the source %d", got, ps)
			}
			if got := boltPageSize(t, back); got != ps {
				t.Errorf("bbolt round trip has %d-byte pages, the source %d", got, ps)
			}
			for _, p := range []string{mid, back} {
				if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
					t.Errorf("%s: mode %v (%v), want 0640 as the source", p, fi.Mode(), err)
				}
			}
		})
	}
}

// TestMigrateEmpty migrates a database without buckets both ways.
func TestMigrateEmpty(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "empty.bolt")
	db, err := bolt.Open(src, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	mid, back := filepath.Join(dir, "mid.db"), filepath.Join(dir, "back.bolt")
	for _, args := range [][]string{{"import", "--from-bbolt", src, mid}, {"export", "--to-bbolt", mid, back}} {
		r := quiverRun(args...)
		if m := migrateLine.FindStringSubmatch(r.stdout); r.status != 0 || m == nil || m[5] != "0" || m[6] != "0" {
			t.Fatalf("%q: %v", args, r)
		}
	}
	checkDB(t, mid)
	if got := boltContents(t, back); len(got) != 0 {
		t.Errorf("round trip of an empty database has %d entries", len(got))
	}
}

// TestMigrateRefuses checks the refusals: each is one line and status 1
// (2 for bad usage), and leaves no DST behind.
func TestMigrateRefuses(t *testing.T) {
	boltDB := newBoltDB(t, 0)
	quiverDB := newTestDB(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	existing := write("existing.db", []byte("keep me"))
	text := write("text.db", []byte(strings.Repeat("not a database, just some text\n", 300)))
	short := write("short.db", []byte("hello\n"))
	empty := write("empty.db", nil)
	boltBytes, err := os.ReadFile(boltDB)
	if err != nil {
		t.Fatal(err)
	}
	// A bbolt file cut after its first page: bbolt maps past the end and
	// would fault reading the second meta page.
	onePage := write("onepage.bolt", boltBytes[:boltPageSize(t, boltDB)])
	// Cut in the middle: the meta pages are intact, half the tree is not.
	cut := write("cut.bolt", boltBytes[:len(boltBytes)/4])
	out := filepath.Join(dir, "out.db")

	// A bbolt writer holds its exclusive lock while the file is open.
	lockedBolt := filepath.Join(t.TempDir(), "locked.bolt")
	writeBoltDB(t, lockedBolt, 0)
	holder, err := bolt.Open(lockedBolt, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	lockedQuiver := copyFile(t, quiverDB)
	qholder, err := quiver.Open(lockedQuiver, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer qholder.Close()

	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"import", "--from-bbolt", boltDB, existing}, 1, existing + ": exists; DST must be a new file"},
		{[]string{"import", "--from-bbolt", boltDB, boltDB}, 1, boltDB + ": is the source; DST must be a new file"},
		{[]string{"import", "--from-bbolt", filepath.Join(dir, "missing.bolt"), out}, 1, "missing.bolt: no such file"},
		{[]string{"import", "--from-bbolt", quiverDB, out}, 1, quiverDB + ": a quiver database, not a bbolt one (quiver export --to-bbolt converts it)"},
		{[]string{"import", "--from-bbolt", text, out}, 1, text + ": not a bbolt database (no bbolt meta page)"},
		{[]string{"import", "--from-bbolt", short, out}, 1, short + ": not a bbolt database (no bbolt meta page)"},
		{[]string{"import", "--from-bbolt", empty, out}, 1, empty + ": not a bbolt database (empty file)"},
		{[]string{"import", "--from-bbolt", onePage, out}, 1, onePage + ": damaged bbolt database (the file is"},
		{[]string{"import", "--from-bbolt", cut, out}, 1, cut + ": damaged bbolt database (its pages reach byte "},
		{[]string{"import", "--from-bbolt", dir, out}, 1, dir + ": is a directory, not a bbolt database"},
		{[]string{"import", "--from-bbolt", "--timeout", "50ms", lockedBolt, out}, 1, lockedBolt + ": locked by another process that has it open for writing (waited 50ms; see --timeout)"},
		{[]string{"import", "--from-bbolt", boltDB, filepath.Join(dir, "no", "such", "dir.db")}, 1, "no such file or directory"},
		{[]string{"import", boltDB, out}, 2, "want --from-bbolt"},
		{[]string{"import", "--from-bbolt", boltDB}, 2, "want 2 arguments, got 1"},
		{[]string{"import", "--from-bbolt", "--tx-max-size", "0", boltDB, out}, 2, "invalid --tx-max-size 0"},

		{[]string{"export", "--to-bbolt", quiverDB, existing}, 1, existing + ": exists; DST must be a new file"},
		{[]string{"export", "--to-bbolt", quiverDB, quiverDB}, 1, quiverDB + ": is the source; DST must be a new file"},
		{[]string{"export", "--to-bbolt", filepath.Join(dir, "missing.db"), out}, 1, "missing.db: no such file"},
		{[]string{"export", "--to-bbolt", boltDB, out}, 1, boltDB + ": a bbolt database, not a quiver one (quiver import --from-bbolt converts it)"},
		{[]string{"export", "--to-bbolt", text, out}, 1, text + ": not a quiver database (bad magic"},
		{[]string{"export", "--to-bbolt", empty, out}, 1, empty + ": not a quiver database"},
		{[]string{"export", "--to-bbolt", dir, out}, 1, dir + ": is a directory, not a quiver database"},
		{[]string{"export", "--to-bbolt", "--timeout", "50ms", lockedQuiver, out}, 1, lockedQuiver + ": locked by another process that has it open for writing (waited 50ms; see --timeout)"},
		{[]string{"export", quiverDB, out}, 2, "want --to-bbolt"},
	} {
		r := quiverRun(tc.args...)
		ok := r.status == tc.status && r.stdout == "" && strings.HasPrefix(r.stderr, "quiver "+tc.args[0]+": ") && strings.Contains(r.stderr, tc.want)
		if tc.status == 1 {
			ok = ok && strings.Count(r.stderr, "\n") == 1
		}
		if !ok {
			t.Errorf("%q: want status %d and %q: %v", tc.args, tc.status, tc.want, r)
		}
		if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%q left %s behind", tc.args, out)
			os.Remove(out)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("an existing DST was changed")
	}
}

// TestMigrateRemovesDST damages the source so that reading it fails
// halfway through the copy: DST, already written in part, is removed.
func TestMigrateRemovesDST(t *testing.T) {
	t.Run("import", func(t *testing.T) {
		// A bbolt file whose root page of bucket many is zeroed: bbolt
		// panics on it, after the buckets before many were copied.
		src := newBoltDB(t, 0)
		db, err := bolt.Open(src, 0, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var root, pageSize int64
		_ = db.View(func(tx *bolt.Tx) error {
			root, pageSize = int64(tx.Bucket([]byte("many")).Root()), int64(db.Info().PageSize)
			return nil
		})
		db.Close()
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		clear(b[root*pageSize : (root+1)*pageSize])
		cut := filepath.Join(t.TempDir(), "zeroed.bolt")
		if err := os.WriteFile(cut, b, 0o600); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "dst.db")
		r := quiverRun("import", "--from-bbolt", "--tx-max-size", "1", "--no-sync", cut, dst)
		if r.status != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
			!strings.HasPrefix(r.stderr, "quiver import: "+cut+": damaged bbolt database (bbolt panicked: ") {
			t.Errorf("import of a damaged bbolt file: %v", r)
		}
		if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("import left %s behind", dst)
		}
	})
	t.Run("export", func(t *testing.T) {
		// A leaf of bucket many whose header names another page.
		src, _ := corruptLeaf(t, newTestDB(t), 8)
		dst := filepath.Join(t.TempDir(), "dst.bolt")
		r := quiverRun("export", "--to-bbolt", "--tx-max-size", "1", "--no-sync", src, dst)
		if r.status != 1 || r.stdout != "" || !regexp.MustCompile(`^quiver export: `+regexp.QuoteMeta(src)+`: damaged database: corrupt page [0-9]+: header names page [0-9]+\n$`).MatchString(r.stderr) {
			t.Errorf("export of a damaged quiver file: %v", r)
		}
		if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("export left %s behind", dst)
		}
	})
}

// TestMigrateInterrupted runs a migration whose context is done, as an
// interrupt makes it: it stops and removes DST.
func TestMigrateInterrupted(t *testing.T) {
	src := newBoltDB(t, 0)
	dst := filepath.Join(t.TempDir(), "dst.db")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	err := runMigrate(ctx, &stdout, &stderr, bboltFormat{}, quiverFormat{}, src, dst, &migrateOptions{txMaxSize: 1, timeout: time.Second})
	if !errors.Is(err, errInterrupted) || stdout.Len() > 0 || stderr.Len() > 0 {
		t.Errorf("error %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an interrupted import left %s behind", dst)
	}
}

// TestDigest checks that the hash tells apart contents that hold the same
// bytes in another shape.
func TestDigest(t *testing.T) {
	type event struct {
		kind     byte // 'b', 'k', 'e'
		a, b     string
		sequence uint64
	}
	sum := func(events ...event) uint64 {
		var d digest
		d.reset()
		for _, e := range events {
			switch e.kind {
			case 'b':
				_ = d.enter([]byte(e.a), e.sequence)
			case 'k':
				_ = d.key([]byte(e.a), []byte(e.b))
			case 'e':
				_ = d.leave()
			}
		}
		return d.sum()
	}
	base := []event{{'b', "a", "", 0}, {'k', "k", "v", 0}, {'e', "", "", 0}}
	if sum(base...) != sum(slices.Clone(base)...) {
		t.Fatal("the same contents hash differently")
	}
	for _, other := range [][]event{
		{{'b', "a", "", 1}, {'k', "k", "v", 0}, {'e', "", "", 0}},                                      // sequence
		{{'b', "a", "", 0}, {'k', "kv", "", 0}, {'e', "", "", 0}},                                      // key/value boundary
		{{'b', "ak", "", 0}, {'k', "", "v", 0}, {'e', "", "", 0}},                                      // name/key boundary
		{{'b', "a", "", 0}, {'b', "k", "", 0}, {'e', "", "", 0}, {'e', "", "", 0}},                     // a bucket, not a key
		{{'b', "a", "", 0}, {'b', "b", "", 0}, {'k', "k", "v", 0}, {'e', "", "", 0}, {'e', "", "", 0}}, // nesting
		{{'b', "a", "", 0}, {'b', "b", "", 0}, {'e', "", "", 0}, {'k', "k", "v", 0}, {'e', "", "", 0}}, // an empty bucket
		{{'b', "a", "", 0}, {'k', "k", "v", 0}, {'k', "l", "", 0}, {'e', "", "", 0}},                   // an empty value
		{{'b', "a", "", 0}, {'e', "", "", 0}, {'k', "k", "v", 0}},                                      // where a bucket ends
	} {
		if sum(other...) == sum(base...) {
			t.Errorf("%v and %v hash the same", base, other)
		}
	}
}
