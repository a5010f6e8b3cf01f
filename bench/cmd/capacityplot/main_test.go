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

// TestStyles checks that no two lines look alike, however many there are,
// and that a hot-set line is dashed while its uniform companion is solid.
func TestStyles(t *testing.T) {
	seen := map[[2]string]int{}
	for k := 0; k < 4*len(colors); k++ {
		c, dash := style(k, false)
		if prev, ok := seen[[2]string{c, dash}]; ok {
			t.Errorf("lines %d and %d share colour %s and dash %q", prev, k, c, dash)
		}
		seen[[2]string{c, dash}] = k
	}
	if _, dash := style(0, false); dash != "" {
		t.Errorf("the first uniform line is dashed %q, want solid", dash)
	}
	if _, dash := style(1, true); dash == "" {
		t.Error("a hot-set line is solid, want dashed")
	}
}

// TestOnlyRuns checks -runs: the figure of one run holds both engines of
// that run and nothing of the others, the hot-set row as a line of its own.
func TestOnlyRuns(t *testing.T) {
	rs := []result{
		{Engine: "quiver-hashmap", Label: "run 1", Target: 1, FileSize: 2, LiveBytes: 1, P50: 1, P99: 2, OpenTime: 1, Alloc: 1},
		{Engine: "quiver-hashmap", Label: "run 2", Target: 1, FileSize: 2, LiveBytes: 1, P50: 1, P99: 2, OpenTime: 1, Alloc: 1},
		{Engine: "quiver-hashmap", Label: "run 2", Target: 1, FileSize: 2, LiveBytes: 1, P50: 1, P99: 2, OpenTime: 1, Alloc: 1, HotKeys: 0.1, HotOps: 0.9},
		{Engine: "bbolt-array", Label: "run 2", Target: 1, FileSize: 2, LiveBytes: 1, P50: 1, P99: 2, OpenTime: 1, Alloc: 1},
	}
	got := onlyRuns(rs, []string{" run 2"})
	if len(got) != 3 {
		t.Fatalf("onlyRuns kept %d results, want the 3 of run 2", len(got))
	}
	var b bytes.Buffer
	draw(&b, got)
	svg := b.String()
	for _, name := range []string{"quiver-hashmap, run 2", "quiver-hashmap, run 2, 90% of ops in 10% of keys", "bbolt-array, run 2"} {
		if n := strings.Count(svg, ">"+name+"</text>"); n != 1 {
			t.Errorf("legend has %q %d times, want once", name, n)
		}
	}
	if strings.Contains(svg, "run 1") {
		t.Error("the figure of run 2 shows run 1")
	}
	if n := strings.Count(svg, "stroke-dasharray"); n != len(panels)+1 {
		t.Errorf("%d dashed lines, want the hot-set line in %d panels and the legend", n, len(panels))
	}
}
