package main

// White-box tests: package main cannot be imported, so the tests run the
// tool in-process through run and execute.

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func init() { minReadTime = 20 * time.Millisecond }

// runBench runs quiver bench with args in-process and returns its error.
func runBench(args []string, stdout, stderr io.Writer) error {
	_, err := execute(append([]string{"bench"}, args...), stdout, stderr)
	return err
}

var (
	resultLine = regexp.MustCompile(`^# (Write|Read)\t([0-9]+)\(ops\)\t[0-9.]+[a-zµ]+\t\([0-9.]+[a-zµ]+/op\)\t\(([0-9]+) op/sec\)$`)
	goBenchRe  = regexp.MustCompile(`^(BenchmarkWrite|BenchmarkRead) *\t *([0-9]+)\t *[0-9.]+ ns/op$`)
)

func TestBench(t *testing.T) {
	for _, engine := range []string{"quiver", "bbolt"} {
		for _, mode := range [][]string{
			{"--write-mode", "seq", "--read-mode", "seq"},
			{"--write-mode", "rnd", "--read-mode", "rnd"},
			{"--write-mode", "seq-nest", "--read-mode", "rnd"},
			{"--write-mode", "rnd-nest", "--read-mode", "seq"},
		} {
			t.Run(engine+"/"+mode[1]+"-"+mode[3], func(t *testing.T) {
				args := append([]string{"--engine", engine, "--count", "200", "--batch-size", "50",
					"--path", filepath.Join(t.TempDir(), "bench.db")}, mode...)
				var stdout, stderr bytes.Buffer
				if err := runBench(args, &stdout, &stderr); err != nil {
					t.Fatalf("bench %v: %v\nstderr:\n%s", args, err, stderr.String())
				}
				lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
				if len(lines) != 2 || !strings.HasSuffix(stdout.String(), "\n\n") {
					t.Fatalf("want two result lines and a blank line, got %q", stdout.String())
				}
				for i, want := range []string{"Write", "Read"} {
					m := resultLine.FindStringSubmatch(lines[i])
					if m == nil || m[1] != want {
						t.Fatalf("line %d = %q, want the # %s line", i+1, lines[i], want)
					}
					if want == "Write" && m[2] != "200" {
						t.Errorf("wrote %s keys, want 200", m[2])
					}
					if m[2] == "0" || m[3] == "0" {
						t.Errorf("%s: no operations counted: %q", want, lines[i])
					}
				}
			})
		}
	}
}

func TestBenchGoBenchOutput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"--engine", "bbolt", "--freelist", "hashmap", "--count", "100", "--gobench-output", "--no-sync"}
	if err := runBench(args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "engine: bbolt-hashmap" {
		t.Fatalf("want an engine line and two benchmark lines, got %q", stdout.String())
	}
	for i, want := range []string{"BenchmarkWrite", "BenchmarkRead"} {
		m := goBenchRe.FindStringSubmatch(lines[i+1])
		if m == nil || m[1] != want {
			t.Fatalf("line %q: want a %s line", lines[i+1], want)
		}
	}
}

func TestBenchWorkKeepsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kept.db")
	var stdout, stderr bytes.Buffer
	if err := runBench([]string{"--count", "10", "--work", "--path", path}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "work: "+path) {
		t.Errorf("stderr does not name the kept file: %q", stderr.String())
	}
	// The kept file is a quiver database that a second run reopens.
	if err := runBench([]string{"--count", "10", "--work", "--path", path}, &stdout, &stderr); err != nil {
		t.Errorf("rerun on the kept file: %v", err)
	}
}

func TestBenchBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--count", "ten"},
		{"--count", "0"},
		{"--count", "10", "--batch-size", "3"},
		{"--batch-size", "-5"},
		{"--write-mode", "sideways"},
		{"--read-mode", "backwards"},
		{"--profile-mode", "x"},
		{"--key-size", "2"},
		{"--value-size", "-1"},
		{"--fill-percent", "2"},
		{"--fill-percent", "NaN"},
		{"--page-size", "1000"},
		{"--initial-mmap-size", "-1"},
		{"--engine", "lmdb"},
		{"--freelist", "list"},
		{"--engine", "quiver", "--freelist", "slab"}, // not a freelist quiver has
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		err := runBench(args, &stdout, &stderr)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("bench %q: error %v, want a usage error", args, err)
		}
		if stdout.Len() > 0 {
			t.Errorf("bench %q printed %q", args, stdout.String())
		}
	}
}

func TestRunExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		out    string // expected in stdout or stderr
	}{
		{nil, 2, "Usage:"},
		{[]string{"help"}, 0, "bench"},
		{[]string{"help", "bench"}, 0, "-write-mode"},
		{[]string{"bench", "-h"}, 0, "--count"},
		{[]string{"help", "nope"}, 2, "unknown command"},
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"bench", "--count", "x"}, 2, "invalid argument"}, // pflag's wording
		{[]string{"bench", "-count", "x"}, 2, "invalid argument"},  // one dash, as Go's flag package
		{[]string{"bench", "--count", "5", "--path", "/nonexistent/dir/db"}, 1, "no such file"},
	} {
		var stdout, stderr bytes.Buffer
		status := run(tc.args, &stdout, &stderr)
		if status != tc.status {
			t.Errorf("quiver %q: exit status %d, want %d\nstdout: %s\nstderr: %s", tc.args, status, tc.status, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("quiver %q: output does not contain %q:\nstdout: %s\nstderr: %s", tc.args, tc.out, stdout.String(), stderr.String())
		}
	}
}
