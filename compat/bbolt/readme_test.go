package bbolt_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
)

// TestReadmeExample builds the bbolt program of the README ("A bbolt
// program, unchanged") in a module of its own whose go.mod requires
// go.etcd.io/bbolt v1.5.0 and replaces it with this module, runs it, and
// compares what it prints with the output the README shows; the file it
// wrote must be quiver's.
func TestReadmeExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program: not in -short")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	program, output := readmeExample(t, string(readme))

	dir := t.TempDir()
	gomod := "module example.com/boltprogram\n\ngo 1.26.0\n\nrequire go.etcd.io/bbolt v1.5.0\n\n" +
		"replace go.etcd.io/bbolt => " + filepath.Join(root, "compat", "bbolt") + "\n\n" +
		// Inside the repository quiver comes from its directory too; from
		// the proxy, the compat module's own require names its version.
		"replace github.com/quiverdb/quiver => " + root + "\n"
	for name, body := range map[string]string{"go.mod": gomod, "main.go": program} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
		}
		return string(out)
	}
	run("go", "mod", "tidy")
	run("go", "build", "-o", "prog", ".")
	path := filepath.Join(dir, "my.db")
	if got := run(filepath.Join(dir, "prog"), path); got != output {
		t.Errorf("the program printed\n%s\nthe README shows\n%s", got, output)
	}

	db, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the program's file is not quiver's: %v", err)
	}
	defer db.Close()
	if err := db.View(func(tx *quiver.Tx) error {
		if v := tx.Bucket([]byte("widgets")).Get([]byte("cog")); string(v) != "3" {
			t.Errorf("widgets/cog is %q in the file, want 3", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// readmeExample returns the Go block after the bbolt-example marker and
// the first plain block after it (what the program prints).
func readmeExample(t *testing.T, readme string) (program, output string) {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- bbolt-example")
	if !ok {
		t.Fatal("README.md has no bbolt-example marker")
	}
	block := func(s, fence string) (body, rest string) {
		_, after, ok := strings.Cut(s, fence+"\n")
		if !ok {
			t.Fatalf("README.md: no %q block after the bbolt-example marker", fence)
		}
		body, rest, ok = strings.Cut(after, "```\n")
		if !ok {
			t.Fatal("README.md: an unterminated block after the bbolt-example marker")
		}
		return body, rest
	}
	program, rest = block(rest, "```go")
	output, _ = block(rest, "\n```")
	return program, output
}
