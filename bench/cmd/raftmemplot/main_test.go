package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "raftmem.3.csv")
	if err := os.WriteFile(good, []byte("0.0,1048576,2097152,0\n\n1.5,3145728,4194304,8388608\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := readCSV(good)
	if err != nil || len(s.samples) != 2 || s.name != "raftmem.3" || s.samples[1].heap != 3 || s.samples[1].file != 8 {
		t.Fatalf("readCSV: %+v, %v", s, err)
	}
	var b bytes.Buffer
	if err := draw(&b, "etcd <on> quiver", []series{s}, 192); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ">etcd &lt;on&gt; quiver</text>") {
		t.Fatal("the title is not drawn, escaped")
	}
	if n := strings.Count(b.String(), "<polyline"); n != 3 || !strings.Contains(b.String(), "limit 192 MiB") {
		t.Fatalf("%d lines drawn, limit shown: %v", n, strings.Contains(b.String(), "limit 192 MiB"))
	}
	for name, data := range map[string]string{"short": "1,2,3\n", "text": "1,a,2,3\n", "negative": "1,-2,3,4\n"} {
		p := filepath.Join(dir, name+".csv")
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readCSV(p); err == nil {
			t.Fatalf("%s: a malformed line was accepted", name)
		}
	}
	if err := run(filepath.Join(dir, "out.svg"), defaultTitle, 0, nil); err == nil {
		t.Fatal("no files: no error")
	}
}
