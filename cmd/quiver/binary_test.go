package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
)

// TestBinary builds the tool and runs it, as an operator would, against
// files that are not databases, damaged ones and a locked one: each
// command fails with one line on stderr and status 1, and never with a
// panic or a stack trace.
func TestBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the tool with")
	}
	bin := filepath.Join(t.TempDir(), "quiver")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	runBin := func(args ...string) result {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		status := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{status, stdout.String(), stderr.String()}
	}

	good := newTestDB(t)
	if r := runBin("check", good); r.status != 0 || r.stdout != "OK\n" {
		t.Fatalf("check of a good database: %v", r)
	}

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	subdir := filepath.Join(dir, "dir.db")
	if err := os.Mkdir(subdir, 0o700); err != nil {
		t.Fatal(err)
	}
	locked := copyFile(t, good)
	holder, err := quiver.Open(locked, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()

	// Every command that opens a database, with the arguments after PATH.
	commands := [][]string{
		{"info"}, {"check"}, {"buckets"}, {"keys", "users"}, {"get", "users", "alice"},
		{"put", "users", "k", "v"}, {"delete", "users", "alice"}, {"stats"}, {"inspect"},
		{"pages"}, {"page", "0"}, {"dump", "0"}, {"compact"},
	}
	for _, f := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.db"), "missing.db: no such file"},
		{"empty", write("empty.db", nil), "empty.db: not a quiver database (empty file"},
		{"text", write("text.db", []byte(strings.Repeat("a line of text, not a database\n", 200))), "text.db: not a quiver database (bad magic"},
		{"short text", write("short.db", []byte("hello\n")), "short.db: not a quiver database (file is 6 bytes)"},
		{"zeros", write("zeros.db", make([]byte, 64<<10)), "zeros.db: not a quiver database (bad magic"},
		{"directory", subdir, "dir.db: is a directory, not a quiver database"},
		{"locked", locked, ": locked by another process that has it open for writing (waited 100ms; see --timeout)"},
	} {
		for _, c := range commands {
			args := append([]string{c[0], f.path}, c[1:]...)
			if c[0] == "compact" {
				args = []string{"compact", "-o", filepath.Join(t.TempDir(), "out.db"), f.path}
			}
			args = append(args, "--timeout", "100ms")
			r := runBin(args...)
			if r.status != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
				!strings.HasPrefix(r.stderr, "quiver "+c[0]+": ") || !strings.Contains(r.stderr, f.want) {
				t.Errorf("%s: quiver %q: want one line with %q on stderr and status 1, got %v", f.name, args, f.want, r)
			}
		}
	}

	// A truncated database is damaged rather than foreign: check counts
	// it as a problem, page and dump read what is left.
	truncated := write("truncated.db", goodBytes[:len(goodBytes)/3])
	for _, c := range [][]string{{"info"}, {"keys", "users"}, {"stats"}, {"pages"}} {
		r := runBin(append([]string{c[0], truncated}, c[1:]...)...)
		if r.status != 1 || r.stdout != "" || !regexp.MustCompile(`^quiver \w+: .*truncated.db: damaged database: corrupt page [01]: meta of tx [0-9]+ needs [0-9]+ pages, the file has [0-9]+ bytes\n$`).MatchString(r.stderr) {
			t.Errorf("truncated: quiver %q: %v", c, r)
		}
	}
	if r := runBin("check", truncated); r.status != 1 || r.stderr != "" ||
		!regexp.MustCompile(`^.*truncated.db: damaged database: corrupt page [01]: meta of tx [0-9]+ needs [0-9]+ pages, the file has [0-9]+ bytes\n1 errors found\n$`).MatchString(r.stdout) {
		t.Errorf("truncated: check: %v", r)
	}
	if r := runBin("dump", truncated, "0"); r.status != 0 || !strings.HasPrefix(r.stderr, "warning: ") || !strings.HasPrefix(r.stdout, "0000000 ") {
		t.Errorf("truncated: dump: %v", r)
	}
	if r := runBin("page", truncated, "0"); r.status != 0 || !strings.Contains(r.stdout, "Txn ID:     6\n") {
		t.Errorf("truncated: page: %v", r)
	}

	t.Run("corrupt leaf", func(t *testing.T) {
		// Bytes flipped in the body of a leaf: reads check page headers,
		// not checksums, so only check (and page) see the damage.
		path, id := corruptLeaf(t, good, 2048)
		r := runBin("check", path)
		ls := lines(r.stdout)
		if r.status != 1 || r.stderr != "" || ls[len(ls)-1] != fmt.Sprintf("%d errors found", len(ls)-1) ||
			!strings.Contains(r.stdout, fmt.Sprintf("corrupt page %d: checksum mismatch", id)) {
			t.Errorf("check: %v", r)
		}
		if r := runBin("keys", path, "users"); r.status != 0 || r.stdout != "alice\nbob\nsessions\n" {
			t.Errorf("keys users: %v", r)
		}
		if r := runBin("page", path, fmt.Sprint(id)); r.status != 1 || !strings.Contains(r.stdout, "checksum mismatch") {
			t.Errorf("page: %v", r)
		}
		if r := runBin("pages", path); r.status != 1 || !regexp.MustCompile(fmt.Sprintf(`(?m)^%d +corrupt`, id)).MatchString(r.stdout) {
			t.Errorf("pages: %v", r)
		}
		if r := runBin("dump", path, fmt.Sprint(id)); r.status != 0 || r.stderr != "" {
			t.Errorf("dump: %v", r)
		}
	})
	t.Run("corrupt header", func(t *testing.T) {
		// A leaf whose header names another page: reading it fails.
		path, id := corruptLeaf(t, good, 8)
		r := runBin("check", path)
		if r.status != 1 || r.stderr != "" || !strings.Contains(r.stdout, fmt.Sprintf("corrupt page %d: header names page", id)) ||
			!regexp.MustCompile(`\n[0-9]+ errors found\n$`).MatchString(r.stdout) {
			t.Errorf("check: %v", r)
		}
		want := regexp.MustCompile(fmt.Sprintf(`^quiver \w+: %s: damaged database: corrupt page %d: header names page [0-9]+\n$`, regexp.QuoteMeta(path), id))
		for _, args := range [][]string{{"keys", path, "many"}, {"get", path, "many", "key01000"}, {"inspect", path}, {"stats", path}} {
			// keys prints the keys before the damaged page.
			if r := runBin(args...); r.status != 1 || (r.stdout != "" && args[0] != "keys") || !want.MatchString(r.stderr) {
				t.Errorf("%q: %v", args, r)
			}
		}
	})

	if r := runBin("version"); r.status != 0 || !strings.HasPrefix(r.stdout, "quiver Version: ") {
		t.Errorf("version: %v", r)
	}
	if r := runBin(); r.status != 2 || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("no arguments: %v", r)
	}
}

// corruptLeaf copies the database at src, makes two more commits elsewhere
// (so that the engine opens the newest state, whose commit record does not
// list the page) and flips eight bytes at offset off of a leaf page of
// bucket many. It returns the copy and the page.
func corruptLeaf(t *testing.T, src string, off int64) (string, page.Pgid) {
	path := copyFile(t, src)
	db, err := quiver.Open(path, 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err := db.Update(func(tx *quiver.Tx) error {
			return tx.Bucket([]byte("users")).Put([]byte("bob"), fmt.Appendf(nil, "Bob %d", i))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var leaf page.Pgid
	var ps int
	err = db.View(func(tx *quiver.Tx) error {
		m := tx.Meta()
		ps = int(m.PageSize)
		// The leaf holding key01000 of many: find it through the branch
		// page at the bucket's root.
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		root := tx.Bucket([]byte("many")).Root()
		p := data[int(root)*ps:]
		if page.Flags(p) != page.FlagBranch {
			return fmt.Errorf("the root of many is a %s page", page.FlagName(page.Flags(p)))
		}
		for i := range page.Count(p) {
			child, key, _ := page.BranchElem(p, i)
			if bytes.Compare(key, manyKey(1000)) <= 0 {
				leaf = child
			}
		}
		if page.TxidOf(data[int(leaf)*ps:])+1 >= page.Txid(m.Txid) {
			return fmt.Errorf("leaf %d was written by one of the last two commits", leaf)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off += int64(leaf) * int64(ps)
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xa5
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	return path, leaf
}
