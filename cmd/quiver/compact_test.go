package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/quiverdb/quiver"
)

// shrink deletes nine keys of ten of bucket many and the large value, so
// that the file is mostly free pages.
func shrink(t *testing.T, path string) {
	t.Helper()
	db, err := quiver.Open(path, 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *quiver.Tx) error {
		many := tx.Bucket([]byte("many"))
		for i := range manyKeys {
			if i%10 != 0 {
				if err := many.Delete(manyKey(i)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket([]byte("blobs")).Delete([]byte("large"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

var compactLine = regexp.MustCompile(`^([0-9]+) -> ([0-9]+) bytes \(gain=([0-9]+\.[0-9]{2})x\)\n$`)

func TestCompact(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"default", nil},
		// A commit before every key: buckets are found again in each new
		// transaction, at every depth.
		{"commit per key", []string{"--tx-max-size", "1", "--no-sync"}},
		{"one transaction", []string{"--tx-max-size", "1000000000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newTestDB(t)
			shrink(t, src)
			want := contents(t, src)
			dst := filepath.Join(t.TempDir(), "compact.db")
			r := quiverRun(append(append([]string{"compact"}, tc.flags...), "-o", dst, src)...)
			if r.status != 0 || r.stderr != "" {
				t.Fatal(r)
			}
			m := compactLine.FindStringSubmatch(r.stdout)
			if m == nil {
				t.Fatalf("output %q", r.stdout)
			}
			srcFI, _ := os.Stat(src)
			dstFI, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if m[1] != strconv.FormatInt(srcFI.Size(), 10) || m[2] != strconv.FormatInt(dstFI.Size(), 10) {
				t.Errorf("sizes %s -> %s, files are %d and %d bytes", m[1], m[2], srcFI.Size(), dstFI.Size())
			}
			if gain := strconv.FormatFloat(float64(srcFI.Size())/float64(dstFI.Size()), 'f', 2, 64); m[3] != gain {
				t.Errorf("gain %s, want %s", m[3], gain)
			}
			if dstFI.Size()*4 > srcFI.Size() {
				t.Errorf("the copy is %d bytes, the source %d: want a quarter or less", dstFI.Size(), srcFI.Size())
			}
			if dstFI.Mode().Perm() != srcFI.Mode().Perm() {
				t.Errorf("the copy's mode is %v, the source's %v", dstFI.Mode(), srcFI.Mode())
			}
			if got := contents(t, dst); !slices.Equal(got, want) {
				t.Errorf("the copy differs from the source: %d entries, want %d", len(got), len(want))
			}
			checkDB(t, dst)
			// The copy is cut to its high water mark.
			r = quiverRun("info", dst)
			sizes := regexp.MustCompile(`File Size: ([0-9]+) bytes(?s:.*)High Water: [0-9]+ pages \(([0-9]+) bytes\)`).FindStringSubmatch(r.stdout)
			if sizes == nil {
				t.Fatal(r)
			}
			if sizes[1] != sizes[2] {
				t.Errorf("the copy is %s bytes, its high water mark at %s", sizes[1], sizes[2])
			}
			// A copy of the copy is the same size: nothing more to gain.
			again := filepath.Join(t.TempDir(), "again.db")
			if r := quiverRun("compact", "-o", again, dst); r.status != 0 || !compactLine.MatchString(r.stdout) {
				t.Fatal(r)
			}
			if fi, _ := os.Stat(again); fi.Size() > dstFI.Size() {
				t.Errorf("compacting the copy grew it from %d to %d bytes", dstFI.Size(), fi.Size())
			}
		})
	}
}

// TestCompactInPlace compacts a mostly free database where it is, and
// requires the same contents, a check that passes, the sizes printed, and
// no temporary file left.
func TestCompactInPlace(t *testing.T) {
	for _, flags := range [][]string{nil, {"--tx-max-size", "1", "--no-sync"}} {
		path := newTestDB(t)
		shrink(t, path)
		want := contents(t, path)
		before, _ := os.Stat(path)
		r := quiverRun(append(append([]string{"compact"}, flags...), "--in-place", path)...)
		if r.status != 0 || r.stderr != "" {
			t.Fatal(r)
		}
		after, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		wantLine := fmt.Sprintf("%s: %d -> %d bytes (gain=%.2fx)\n", path, before.Size(), after.Size(), float64(before.Size())/float64(after.Size()))
		if r.stdout != wantLine {
			t.Errorf("output %q, want %q", r.stdout, wantLine)
		}
		if after.Size()*2 > before.Size() {
			t.Errorf("compacted in place from %d to %d bytes: want half or less", before.Size(), after.Size())
		}
		if after.Mode().Perm() != before.Mode().Perm() {
			t.Errorf("mode %v, was %v", after.Mode(), before.Mode())
		}
		if got := contents(t, path); !slices.Equal(got, want) {
			t.Errorf("contents changed: %d entries, want %d", len(got), len(want))
		}
		checkDB(t, path)
		if _, err := os.Stat(path + ".compact"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("temporary file left: %v", err)
		}
	}
}

// TestCompactRefuses checks that compact writes only a new file and leaves
// none behind when it fails.
func TestCompactRefuses(t *testing.T) {
	src := newTestDB(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.db")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "text.db")
	if err := os.WriteFile(text, []byte("not a database at all, just some text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", existing, src}, existing + ": exists; compact writes a new file"},
		{[]string{"-o", src, src}, src + ": is the source; compact writes a new file"},
		{[]string{"-o", out, filepath.Join(dir, "missing.db")}, "missing.db: no such file"},
		{[]string{"-o", out, text}, text + ": not a quiver database"},
		{[]string{"-o", out, dir}, dir + ": is a directory, not a quiver database"},
		{[]string{"-o", filepath.Join(dir, "no", "such", "dir.db"), src}, "no such file or directory"},
	} {
		r := quiverRun(append([]string{"compact"}, tc.args...)...)
		if r.status != 1 || r.stdout != "" || !regexp.MustCompile(`^quiver compact: .*`+regexp.QuoteMeta(tc.want)+`.*\n$`).MatchString(r.stderr) {
			t.Errorf("compact %q: want one line with %q: %v", tc.args, tc.want, r)
		}
		if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("compact %q left %s behind", tc.args, out)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("compact changed an existing file")
	}
}
