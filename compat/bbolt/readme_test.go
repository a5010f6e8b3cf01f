package bbolt_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiverdb/quiver"
)

// TestReadmeExample builds the bbolt program of the README ("A bbolt
// program, unchanged") the way a user would: in a module of its own whose
// go.mod requires go.etcd.io/bbolt v1.5.0 and has the README's replace
// line, resolved through a module proxy. The proxy is a directory this
// test writes (GOPROXY=file://...) holding this repository's files as the
// versions the line and compat/bbolt's go.mod name, in front of the
// module cache's downloads; the module cache is the test's own, so nothing
// of this stays. The program's output must be the README's, and the file
// it wrote quiver's.
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
	program, output, replace := readmeExample(t, string(readme))
	version := quiverRequired(t)
	if !strings.HasSuffix(replace, " "+version) {
		t.Fatalf("the README's replace line %q does not name the version %s that compat/bbolt's go.mod requires of quiver", replace, version)
	}

	proxy := filepath.Join(t.TempDir(), "proxy")
	files := trackedFiles(t, root)
	publish(t, proxy, "github.com/quiverdb/quiver", version, root, files, "")
	publish(t, proxy, "github.com/quiverdb/quiver/compat/bbolt", version, root, files, "compat/bbolt/")

	dir := t.TempDir()
	modcache := filepath.Join(t.TempDir(), "modcache")
	gomod := "module example.com/boltprogram\n\ngo 1.26.0\n\nrequire go.etcd.io/bbolt v1.5.0\n\n" + replace + "\n"
	// The public dependencies' checksums, which the go command would
	// otherwise fetch from sum.golang.org, as they are in this module.
	sums, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"go.mod": gomod, "go.sum": string(sums), "main.go": program} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	downloads, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOMODCACHE="+modcache,
		"GOPROXY=file://"+proxy+",file://"+filepath.Join(strings.TrimSpace(string(downloads)), "cache", "download"),
		"GONOSUMDB=github.com/quiverdb/quiver")
	t.Cleanup(func() {
		// The module cache is read-only on disk; go clean empties it.
		cmd := exec.Command("go", "clean", "-modcache")
		cmd.Env = env
		_ = cmd.Run()
	})
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
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
	if got := run("go", "list", "-m", "-f", "{{.Replace}}", "go.etcd.io/bbolt"); strings.TrimSpace(got) != "github.com/quiverdb/quiver/compat/bbolt "+version {
		t.Fatalf("go.etcd.io/bbolt resolves to %q", got)
	}
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

// quiverRequired is the version of quiver that this module's go.mod
// requires: the one a program replacing bbolt with it gets.
func quiverRequired(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require"))
		if len(f) >= 2 && f[0] == "github.com/quiverdb/quiver" {
			return f[1]
		}
	}
	t.Fatal("go.mod does not require github.com/quiverdb/quiver")
	return ""
}

// trackedFiles lists the repository's files as git has them (build
// output and scratch files left out), relative to root.
func trackedFiles(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git ls-files: %v (the test needs the repository's git checkout)", err)
	}
	return strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
}

// publish writes module path at version into the file proxy: its list,
// .info, .mod and .zip, the zip holding the files under sub (a directory
// of root with a trailing slash, or "" for root) but none of a nested
// module's.
func publish(t *testing.T, proxy, path, version, root string, files []string, sub string) {
	t.Helper()
	nested := map[string]bool{} // directories of other modules, with a trailing slash
	for _, f := range files {
		if d, ok := strings.CutSuffix(f, "go.mod"); ok && d != sub && strings.HasPrefix(d, sub) && (d == "" || strings.HasSuffix(d, "/")) {
			nested[d] = true
		}
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var gomod []byte
files:
	for _, f := range files {
		rel, ok := strings.CutPrefix(f, sub)
		if !ok {
			continue
		}
		for d := range nested {
			if strings.HasPrefix(f, d) {
				continue files
			}
		}
		body, err := os.ReadFile(filepath.Join(root, f))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not yet in git
		}
		if err != nil {
			t.Fatal(err)
		}
		if rel == "go.mod" {
			gomod = body
		}
		w, err := zw.Create(path + "@" + version + "/" + rel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if gomod == nil {
		t.Fatalf("%s: no go.mod under %q", path, sub)
	}
	d := filepath.Join(proxy, filepath.FromSlash(path), "@v")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		"list":            []byte(version + "\n"),
		version + ".info": []byte(`{"Version":"` + version + `","Time":"2026-12-01T00:00:00Z"}`),
		version + ".mod":  gomod,
		version + ".zip":  buf.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(d, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readmeExample returns the Go block after the bbolt-example marker, the
// first plain block after it (what the program prints), and the replace
// line of the README's migration section.
func readmeExample(t *testing.T, readme string) (program, output, replace string) {
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
	for _, line := range strings.Split(readme, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "replace go.etcd.io/bbolt => github.com/quiverdb/quiver/compat/bbolt ") {
			return program, output, l
		}
	}
	t.Fatal("README.md has no replace line for go.etcd.io/bbolt")
	return
}
