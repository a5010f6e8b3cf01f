package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

// TestReadCommands runs every command that reads on the test database and
// checks its output.
func TestReadCommands(t *testing.T) {
	path := newTestDB(t)
	large := fmt.Sprintf("<redacted len:%d sha256:%x>\n", len(largeValue), sha256.Sum256(largeValue))
	for _, tc := range []struct {
		name string
		args []string
		// want is the whole stdout when check is nil.
		want  string
		check func(t *testing.T, stdout string)
	}{
		{name: "buckets", args: []string{"buckets", path}, want: "00ff62\nblobs\nempty\nmany\nusers\n"},
		{name: "buckets/nested", args: []string{"buckets", path, "users"}, want: "sessions\n"},
		{name: "buckets/deeper", args: []string{"buckets", path, "users", "sessions"}, want: "2024\n"},
		{name: "keys", args: []string{"keys", path, "users"}, want: "alice\nbob\nsessions\n"},
		{name: "keys/nested", args: []string{"keys", path, "users", "sessions", "2024"}, want: "jan\n"},
		{name: "keys/empty bucket", args: []string{"keys", path, "empty"}, want: ""},
		{name: "keys/hex", args: []string{"keys", "--parse-format", "hex", "--format", "hex", path, "00ff62"}, want: "0001fe\n656d707479\n"},
		{name: "keys/auto", args: []string{"keys", "--parse-format", "hex", path, "00ff62"}, want: "0001fe\nempty\n"},
		{name: "keys/ascii-encoded", args: []string{"keys", "--parse-format", "ascii-encoded", "-f", "ascii-encoded", path, `"\x00\xffb"`}, want: "\"\\x00\\x01\\xfe\"\n\"empty\"\n"},
		{name: "keys/bytes", args: []string{"keys", "--format", "bytes", path, "users"}, want: "alice\nbob\nsessions\n"},
		{name: "keys/one dash", args: []string{"keys", "-format", "hex", path, "users", "sessions"}, want: "32303234\n7331\n"},
		{name: "keys/many", args: []string{"keys", path, "many"}, check: func(t *testing.T, out string) {
			ls := lines(out)
			if len(ls) != manyKeys || ls[0] != "key00000" || ls[manyKeys-1] != fmt.Sprintf("key%05d", manyKeys-1) || !slices.IsSorted(ls) {
				t.Errorf("got %d keys from %q to %q, want %d sorted", len(ls), ls[0], ls[len(ls)-1], manyKeys)
			}
		}},
		{name: "get", args: []string{"get", path, "users", "alice"}, want: "Alice Liddell\n"},
		{name: "get/nested", args: []string{"get", path, "users", "sessions", "2024", "jan"}, want: "1\n"},
		{name: "get/binary", args: []string{"get", "--parse-format", "hex", "--format", "hex", path, "00ff62", "0001fe"}, want: "deadbeef\n"},
		{name: "get/auto binary", args: []string{"get", "--parse-format", "hex", path, "00ff62", "0001fe"}, want: "deadbeef\n"},
		{name: "get/empty value", args: []string{"get", "--parse-format", "ascii-encoded", path, `"\x00\xffb"`, "empty"}, want: "\n"},
		{name: "get/large", args: []string{"get", "-f", "redacted", path, "blobs", "large"}, want: large},
		{name: "get/large bytes", args: []string{"get", "--format", "bytes", path, "blobs", "large"}, want: string(largeValue) + "\n"},
		{name: "check", args: []string{"check", path}, want: "OK\n"},
		{name: "info", args: []string{"info", path}, check: checkInfo},
		{name: "stats", args: []string{"stats", path}, check: func(t *testing.T, out string) {
			for _, want := range []string{
				"Aggregate statistics for 5 buckets\n",
				fmt.Sprintf("\tNumber of keys/value pairs: %d\n", 6+2+1+manyKeys),
				"\tTotal number of buckets: 7\n",
				"\tTotal number of empty buckets: 1 (14%)\n",
				"\tMeta pages: 2 ",
				"\tNumber of pending pages: 0\n",
				"\tNumber of free spans: ",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q", want)
				}
			}
			// The per-bucket table has a line per top-level bucket.
			if !regexp.MustCompile(`(?m)^ +2000 +1 +[0-9]+ +[1-9][0-9]* +[0-9]+ +0 +[0-9]+%  many$`).MatchString(out) {
				t.Errorf("no line for bucket many")
			}
			if strings.Contains(out, "Problem") {
				t.Errorf("problems reported")
			}
		}},
		{name: "stats/prefix", args: []string{"stats", path, "u"}, check: func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "Aggregate statistics for 1 buckets\n") || !strings.Contains(out, "\tNumber of keys/value pairs: 6\n") {
				t.Errorf("not the statistics of users alone")
			}
		}},
		{name: "inspect", args: []string{"inspect", path}, check: checkInspect},
		{name: "pages", args: []string{"pages", path}, check: func(t *testing.T, out string) { checkPages(t, path, out) }},
		{name: "page/meta", args: []string{"page", path, "0", "1"}, check: func(t *testing.T, out string) {
			for _, want := range []string{"Page ID:    0\n", "Page ID:    1\n", "Page Type:  meta", "Page Size:  4096 bytes\n", "\n=====", "(ok)\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q", want)
				}
			}
		}},
		{name: "page/all", args: []string{"page", "--all", path}, check: func(t *testing.T, out string) {
			for _, want := range []string{"Page Type:  leaf", "Page Type:  branch", "Page Type:  freelist", "Page Type:  commit",
				"alice: Alice Liddell\n", "sessions: <bucket root=", "key00000: " + string(manyValue(0)) + "\n", "<pgid="} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q", want)
				}
			}
			if strings.Contains(out, "Error") {
				t.Errorf("errors reported")
			}
		}},
		{name: "dump", args: []string{"dump", path, "0", "1"}, check: func(t *testing.T, out string) {
			ls := lines(out)
			line := regexp.MustCompile(`^[0-9a-f]{7}( [0-9a-f]{4}){8}$`)
			if !line.MatchString(ls[0]) || !strings.HasPrefix(ls[0], "0000000 ") {
				t.Errorf("first line %q", ls[0])
			}
			if !slices.Contains(ls, "0000080 *") || !slices.Contains(ls, "===============================================") {
				t.Errorf("no skipped run or no separator")
			}
			if !slices.ContainsFunc(ls, func(l string) bool { return strings.HasPrefix(l, "0000ff0 ") }) ||
				!slices.ContainsFunc(ls, func(l string) bool { return strings.HasPrefix(l, "0001000 ") && line.MatchString(l) }) {
				t.Errorf("page 0 does not end at 0xff0 or page 1 does not start at 0x1000")
			}
		}},
		{name: "version", args: []string{"version"}, check: func(t *testing.T, out string) {
			if !regexp.MustCompile(`^quiver Version: .+\n(VCS Revision: .*\n)?Go Version: go.+\nGo OS/Arch: .+/.+\n$`).MatchString(out) {
				t.Errorf("not the version lines")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := quiverRun(tc.args...)
			if r.status != 0 || r.stderr != "" {
				t.Fatalf("quiver %q: %v", tc.args, r)
			}
			if tc.check != nil {
				tc.check(t, r.stdout)
				if t.Failed() {
					t.Logf("quiver %q:\n%s", tc.args, r.stdout)
				}
			} else if r.stdout != tc.want {
				t.Errorf("quiver %q:\n got %q\nwant %q", tc.args, r.stdout, tc.want)
			}
		})
	}
}

func checkInfo(t *testing.T, out string) {
	want := regexp.MustCompile(`^Page Size: 4096
File Size: [0-9]+ bytes \([0-9]+ pages\)
Txid: 6 \(meta page 0\)
High Water: [0-9]+ pages \([0-9]+ bytes\)
Root: page [0-9]+
Freelist Type: hashmap .*
Freelist Checkpoint: page [0-9]+ \([0-9]+ pages, written by tx [0-9]+\)
Commit Records: [0-9]+ chained since the checkpoint \([0-9]+ pages\)
Free Pages: [0-9]+ in [0-9]+ spans \([0-9]+ bytes\)
$`)
	if !want.MatchString(out) {
		t.Errorf("info does not match %s", want)
	}
}

func checkInspect(t *testing.T, out string) {
	var root bucketTree
	if err := json.Unmarshal([]byte(out), &root); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range root.Buckets {
		names = append(names, b.Name)
	}
	if root.Name != "root" || !slices.Equal(names, []string{"00ff62", "blobs", "empty", "many", "users"}) {
		t.Fatalf("root %q with buckets %q", root.Name, names)
	}
	blobs, many, users := root.Buckets[1], root.Buckets[3], root.Buckets[4]
	if blobs.KeyN != 1 || blobs.ValueBytes != int64(len(largeValue)) {
		t.Errorf("blobs: %+v", blobs)
	}
	if many.KeyN != manyKeys || many.KeyBytes != 8*manyKeys || many.ValueBytes != 64*manyKeys {
		t.Errorf("many: %+v", many)
	}
	if users.KeyN != 2 || users.Sequence != 41 || len(users.Buckets) != 1 {
		t.Fatalf("users: %+v", users)
	}
	sessions := users.Buckets[0]
	if sessions.Name != "sessions" || sessions.KeyN != 1 || sessions.Sequence != 3 ||
		len(sessions.Buckets) != 1 || sessions.Buckets[0].Name != "2024" || sessions.Buckets[0].KeyN != 1 {
		t.Errorf("sessions: %+v", sessions)
	}
}

// checkPages checks that the pages table lists every page below the high
// water mark once, spans included, and shows each kind of page.
func checkPages(t *testing.T, path, out string) {
	ls := lines(out)
	if ls[0] != "ID       TYPE       ITEMS  OVRFLW" || ls[1] != "======== ========== ====== ======" {
		t.Fatalf("header %q", ls[:2])
	}
	db, err := quiver.Open(path, 0, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var hw int
	_ = db.View(func(tx *quiver.Tx) error { hw = int(tx.Meta().HighWater); return nil })
	db.Close()

	row := regexp.MustCompile(`^([0-9]+) +([a-z]+) +([0-9]*) *([0-9]*) *$`)
	kinds := map[string]int{}
	next, maxOverflow := 0, 0
	for _, l := range ls[2:] {
		m := row.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("row %q", l)
		}
		id, _ := strconv.Atoi(m[1])
		ov, _ := strconv.Atoi(m[4])
		if id != next {
			t.Fatalf("row %q: want page %d next", l, next)
		}
		kinds[m[2]]++
		maxOverflow = max(maxOverflow, ov)
		next = id + ov + 1
	}
	if next != hw {
		t.Errorf("the table ends at page %d, the high water mark is %d", next, hw)
	}
	for _, k := range []string{"meta", "freelist", "commit", "branch", "leaf", "free"} {
		if kinds[k] == 0 {
			t.Errorf("no %s page", k)
		}
	}
	if kinds["meta"] != 2 || kinds["unreachable"]+kinds["corrupt"] > 0 {
		t.Errorf("kinds %v", kinds)
	}
	if maxOverflow < len(largeValue)/4096 {
		t.Errorf("largest overflow %d pages: where is the large value?", maxOverflow)
	}
}

// TestWriteCommands edits a database with put and delete and reads the
// changes back.
func TestWriteCommands(t *testing.T) {
	path := newTestDB(t)
	steps := []struct {
		args   []string
		status int
		out    string // stdout, or with status != 0 what stderr contains
	}{
		{[]string{"put", path, "users", "carol", "Carol"}, 0, ""},
		{[]string{"get", path, "users", "carol"}, 0, "Carol\n"},
		{[]string{"put", path, "users", "carol", "Caroline"}, 0, ""}, // replaces
		{[]string{"get", path, "users", "carol"}, 0, "Caroline\n"},
		{[]string{"put", path, "users", "sessions", "2024", "feb", "2"}, 0, ""},
		{[]string{"keys", path, "users", "sessions", "2024"}, 0, "feb\njan\n"},
		// Binary keys and values, in hex and quoted.
		{[]string{"put", "--parse-format", "hex", path, "00ff62", "ff00", "0001"}, 0, ""},
		{[]string{"get", "--parse-format", "ascii-encoded", "-f", "ascii-encoded", path, `"\x00\xffb"`, `"\xff\x00"`}, 0, "\"\\x00\\x01\"\n"},
		// Missing buckets only with --create.
		{[]string{"put", path, "new", "deep", "k", "v"}, 1, "bucket new not found"},
		{[]string{"put", "--create", path, "new", "deep", "k", "v"}, 0, ""},
		{[]string{"get", path, "new", "deep", "k"}, 0, "v\n"},
		{[]string{"put", path, "users", "sessions", "v"}, 1, "users/sessions is a bucket, not a key"},
		{[]string{"put", "-c", path, "users", "alice", "k", "v"}, 1, "a key is in the way"},
		{[]string{"put", path, "users", "alice", "k", "v"}, 1, "users/alice is a key, not a bucket"},
		// Delete.
		{[]string{"delete", path, "users", "carol"}, 0, ""},
		{[]string{"get", path, "users", "carol"}, 1, "users/carol: key not found"},
		{[]string{"delete", path, "users", "carol"}, 1, "key not found"},
		{[]string{"delete", path, "users", "sessions"}, 1, "is a bucket; delete it with --bucket"},
		{[]string{"delete", "--bucket", path, "users", "sessions"}, 0, ""},
		{[]string{"keys", path, "users"}, 0, "alice\nbob\n"},
		{[]string{"delete", "--bucket", path, "users", "alice"}, 1, "users/alice is a key, not a bucket"},
		{[]string{"delete", "--bucket", path, "new"}, 0, ""},
		{[]string{"delete", "--bucket", path, "new"}, 1, "bucket new not found"},
		{[]string{"buckets", path}, 0, "00ff62\nblobs\nempty\nmany\nusers\n"},
		// Reading errors.
		{[]string{"get", path, "users", "nobody"}, 1, "key not found"},
		{[]string{"get", path, "nobucket", "k"}, 1, "bucket nobucket not found"},
		{[]string{"keys", path, "users", "alice"}, 1, "users/alice is a key, not a bucket"},
		{[]string{"get", path, "users", "alice", "x"}, 1, "users/alice is a key, not a bucket"},
		{[]string{"put", t.TempDir() + "/absent.db", "b", "k", "v"}, 1, "absent.db: no such file"},
	}
	for _, s := range steps {
		r := quiverRun(s.args...)
		if r.status != s.status {
			t.Fatalf("quiver %q: %v", s.args, r)
		}
		if s.status == 0 && (r.stdout != s.out || r.stderr != "") {
			t.Fatalf("quiver %q: want stdout %q, got %v", s.args, s.out, r)
		}
		if s.status != 0 && (!strings.Contains(r.stderr, s.out) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "") {
			t.Fatalf("quiver %q: want one line on stderr with %q, got %v", s.args, s.out, r)
		}
	}
}

func TestPutCreatesDatabase(t *testing.T) {
	path := t.TempDir() + "/new.db"
	if r := quiverRun("put", "--create", path, "a", "b", "k", "v"); r.status != 0 {
		t.Fatal(r)
	}
	if r := quiverRun("get", path, "a", "b", "k"); r.stdout != "v\n" {
		t.Fatal(r)
	}
	checkDB(t, path)
}

func TestPutValueFile(t *testing.T) {
	path := newTestDB(t)
	file := t.TempDir() + "/value"
	value := append(slices.Clone(largeValue), 0, 1, 2, 0xff)
	if err := os.WriteFile(file, value, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := quiverRun("put", "--value-file", file, path, "blobs", "file"); r.status != 0 {
		t.Fatal(r)
	}
	r := quiverRun("get", "--format", "bytes", path, "blobs", "file")
	if r.status != 0 || r.stdout != string(value)+"\n" {
		t.Fatalf("got %d bytes back, want %d", len(r.stdout)-1, len(value))
	}
	// With --value-file, a VALUE argument would be a key of a bucket.
	if r := quiverRun("put", "--value-file", file, path, "blobs", "file", "extra"); r.status != 1 || !strings.Contains(r.stderr, "blobs/file is a key, not a bucket") {
		t.Fatal(r)
	}
}

// TestLocked runs commands on a database another handle holds: readers
// share the lock with readers, and wait --timeout for a writer, then fail
// in one line.
func TestLocked(t *testing.T) {
	path := newTestDB(t)
	ro, err := quiver.Open(path, 0, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := quiverRun("keys", "--timeout", "50ms", path, "users"); r.status != 0 || r.stdout != "alice\nbob\nsessions\n" {
		t.Errorf("a reader beside a reader: %v", r)
	}
	if r := quiverRun("put", "--timeout", "50ms", path, "users", "x", "y"); r.status != 1 || !strings.Contains(r.stderr, "locked by another process") {
		t.Errorf("a writer beside a reader: %v", r)
	}
	ro.Close()

	rw, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	for _, args := range [][]string{
		{"info", path},
		{"check", path},
		{"keys", path, "users"},
		{"put", path, "users", "x", "y"},
		{"compact", "-o", t.TempDir() + "/out.db", path},
		{"compact", "--in-place", path},
	} {
		start := time.Now()
		r := quiverRun(append([]string{args[0], "--timeout=50ms"}, args[1:]...)...)
		if r.status != 1 || r.stdout != "" || r.stderr != fmt.Sprintf("quiver %s: %s: locked by another process that has it open for writing (waited 50ms; see --timeout)\n", args[0], path) {
			t.Errorf("quiver %q: %v", args, r)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("quiver %q took %v", args, d)
		}
	}
}

// TestBadUsage runs wrong command lines: each prints what is wrong and the
// command's usage on stderr, nothing on stdout, and exits with status 2.
func TestBadUsage(t *testing.T) {
	path := newTestDB(t)
	for _, args := range [][]string{
		{"info"},
		{"info", path, path},
		{"buckets"},
		{"keys", path},
		{"get", path, "users"},
		{"put", path, "users", "k"},
		{"put", path, "users", "", "v"},
		{"delete", path, "users"},
		{"delete", path, "users", ""},
		{"check"},
		{"stats", path, "a", "b"},
		{"inspect"},
		{"pages"},
		{"page", path},
		{"page", "--all", path, "1"},
		{"page", path, "x"},
		{"dump", path},
		{"dump", path, "-1"},
		{"compact", path},
		{"compact", "-o", t.TempDir() + "/x.db"},
		{"compact", "-o", t.TempDir() + "/x.db", "--tx-max-size", "0", path},
		{"compact", "-o", t.TempDir() + "/x.db", "--in-place", path},
		{"compact", "--in-place"},
		{"version", "extra"},
		{"keys", "--format", "nope", path, "users"},
		{"keys", "--no-such-flag", path, "users"},
		{"get", "--parse-format", "auto", path, "users", "alice"},
		{"get", "--parse-format", "hex", path, "zz", "alice"},
		{"get", "--parse-format", "ascii-encoded", path, `"\q"`, "alice"},
		{"info", "--timeout", "soon", path},
		{"serve", "--backend-batch-interval", "-1ms"},
		{"serve", "--backend-batch-interval", "soon"},
		{"serve", "--max-request-bytes", "0"},
	} {
		r := quiverRun(args...)
		if r.status != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "quiver "+args[0]+": ") || !strings.Contains(r.stderr, "\nUsage:\n  quiver "+args[0]) {
			t.Errorf("quiver %q: want status 2 and the usage: %v", args, r)
		}
	}
}

// TestHelp checks that help lists every command and describes each.
func TestHelp(t *testing.T) {
	r := quiverRun("help")
	if r.status != 0 {
		t.Fatal(r)
	}
	root := newRootCommand()
	for _, c := range root.Commands() {
		if !regexp.MustCompile(`(?m)^  ` + c.Name() + ` +` + regexp.QuoteMeta(c.Short) + `$`).MatchString(r.stdout) {
			t.Errorf("help does not list %s", c.Name())
		}
		if c.Name() == "help" {
			continue
		}
		h := quiverRun("help", c.Name())
		if h.status != 0 || !strings.Contains(h.stdout, "Usage:\n  quiver "+c.Name()) || c.Long == "" || c.Example == "" {
			t.Errorf("help %s: %v", c.Name(), h)
		}
	}
	for _, want := range []string{"info", "buckets", "keys", "get", "put", "delete", "check", "stats", "inspect", "pages", "page", "dump", "compact", "import", "export", "bench", "version"} {
		if c, _, err := root.Find([]string{want}); err != nil || c.Name() != want {
			t.Errorf("no command %s", want)
		}
	}
}
