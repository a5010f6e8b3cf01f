package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSeries(t *testing.T) {
	for _, c := range []struct {
		r    result
		want string
	}{
		{result{Engine: "bbolt-array"}, "bbolt-array"},
		{result{Engine: "bbolt-array", Grow: "mixed"}, "bbolt-array"},
		{result{Engine: "quiver-hashmap", Grow: "bulk"}, "quiver-hashmap (bulk growth)"},
		{result{Engine: "quiver-hashmap", Grow: "bulk", Label: "run 2"}, "quiver-hashmap (bulk growth), run 2"},
	} {
		if got := c.r.series(); got != c.want {
			t.Errorf("series of %+v = %q, want %q", c.r, got, c.want)
		}
	}
}

// TestReadAndDraw reads JSON lines as cmd/capacity writes them and checks
// that each labelled run becomes a line of its own in every panel, and that
// sizes an engine gave up on are left out.
func TestReadAndDraw(t *testing.T) {
	lines := []string{
		`{"engine":"quiver-hashmap","target_gib":1,"grow":"bulk","label":"run 1","file_bytes":2e9,"live_bytes":1e9,"p50_ns":1e6,"p99_ns":4e6,"open_ns":1e7,"alloc_ns":2e4}`,
		`{"engine":"quiver-hashmap","target_gib":4,"grow":"bulk","label":"run 1","file_bytes":8e9,"live_bytes":5e9,"p50_ns":1e6,"p99_ns":6e6,"open_ns":2e7,"alloc_ns":2e4}`,
		``,
		`{"engine":"quiver-hashmap","target_gib":1,"grow":"bulk","label":"run 2","file_bytes":2e9,"live_bytes":1e9,"p50_ns":1e6,"p99_ns":5e6,"open_ns":1e7,"alloc_ns":2e4}`,
		`{"engine":"bbolt-array","target_gib":1,"grow":"bulk","label":"run 2","file_bytes":2e9,"live_bytes":1.5e9,"p50_ns":3e6,"p99_ns":1.3e7,"open_ns":5e6,"alloc_ns":1e5}`,
		`{"engine":"bbolt-array","target_gib":4,"grow":"bulk","label":"run 2","gave_up":true,"file_bytes":3e9}`,
	}
	path := filepath.Join(t.TempDir(), "capacity.json")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("read %d results, want 4 (a blank line and a gave-up size skipped)", len(rs))
	}
	var b bytes.Buffer
	draw(&b, rs)
	svg := b.String()
	for _, name := range []string{"quiver-hashmap (bulk growth), run 1", "quiver-hashmap (bulk growth), run 2", "bbolt-array (bulk growth), run 2"} {
		if n := strings.Count(svg, ">"+name+"</text>"); n != 1 {
			t.Errorf("legend has %q %d times, want once", name, n)
		}
	}
	if n, want := strings.Count(svg, "<polyline"), 3*len(panels); n != want {
		t.Errorf("%d polylines, want %d (3 series in %d panels)", n, want, len(panels))
	}
	if !strings.HasSuffix(strings.TrimSpace(svg), "</svg>") {
		t.Error("the SVG is not closed")
	}

	if _, err := read(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("reading a missing file succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := read(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("reading a malformed line: %v, want an error naming the file", err)
	}
}
