// Command raftmemplot draws the memory samples of the raftadapter
// large-value scenario as an SVG image: one panel per measure (Go's
// HeapInuse, RssAnon, RssFile), one line per member, and the limit the
// test holds the leader to. Produce the samples with
//
//	QUIVER_RAFT_LARGE=1 QUIVER_RAFT_MEMCSV=/tmp/raftmem go test -run TestProcessLargeValues -v ./raftadapter
//
// (each member writes /tmp/raftmem.<id>.csv: seconds, heap, anon, file
// bytes), then, from the bench directory:
//
//	go run ./cmd/raftmemplot -out ../docs/raftmem.svg -limit 192 /tmp/raftmem.*.csv
package main

import (
	"bufio"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sample is one line of a member's CSV.
type sample struct{ t, heap, anon, file float64 } // seconds, MiB

type series struct {
	name    string
	samples []sample
}

var colors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}

func main() {
	out := flag.String("out", "raftmem.svg", "SVG file to write")
	limit := flag.Float64("limit", 0, "the leader's limit in MiB, drawn on the heap and RssAnon panels (0: none)")
	title := flag.String("title", defaultTitle, "the figure's title")
	flag.Parse()
	if err := run(*out, *title, *limit, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "raftmemplot:", err)
		os.Exit(1)
	}
}

// defaultTitle names the scenario the command was written for.
const defaultTitle = "raftadapter, 2 MiB values rewritten, a follower stopped: memory of each member over time"

func run(out, title string, limit float64, files []string) error {
	if len(files) == 0 {
		return fmt.Errorf("no CSV files given")
	}
	var all []series
	for _, f := range files {
		s, err := readCSV(f)
		if err != nil {
			return err
		}
		if len(s.samples) > 0 {
			all = append(all, s)
		}
	}
	if len(all) == 0 {
		return fmt.Errorf("no samples in %v", files)
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := draw(w, title, all, limit); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func readCSV(path string) (series, error) {
	f, err := os.Open(path)
	if err != nil {
		return series{}, err
	}
	defer f.Close()
	s := series{name: strings.TrimSuffix(filepath.Base(path), ".csv")}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ",")
		if len(fields) == 1 && fields[0] == "" {
			continue
		}
		if len(fields) != 4 {
			return s, fmt.Errorf("%s:%d: %d fields, want 4", path, line, len(fields))
		}
		var v [4]float64
		for i, x := range fields {
			if v[i], err = strconv.ParseFloat(x, 64); err != nil || math.IsNaN(v[i]) || v[i] < 0 {
				return s, fmt.Errorf("%s:%d: field %d %q is not a non-negative number", path, line, i+1, x)
			}
		}
		s.samples = append(s.samples, sample{v[0], v[1] / (1 << 20), v[2] / (1 << 20), v[3] / (1 << 20)})
	}
	return s, sc.Err()
}

type panel struct {
	title string
	value func(sample) float64
	limit bool
}

var panels = []panel{
	{"Go heap (HeapInuse), MiB", func(s sample) float64 { return s.heap }, true},
	{"RssAnon, MiB", func(s sample) float64 { return s.anon }, true},
	{"RssFile (the mapped file), MiB", func(s sample) float64 { return s.file }, false},
}

func draw(w io.Writer, title string, all []series, limit float64) error {
	const width, ph, left, top, gap = 760, 200, 60, 30, 50
	height := top + len(panels)*(ph+gap) + 20*len(all)
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(w, `<text x="%d" y="18" font-size="13">%s</text>`+"\n", left, html.EscapeString(title))
	tmax := 0.0
	for _, s := range all {
		tmax = max(tmax, s.samples[len(s.samples)-1].t)
	}
	tmax = math.Max(tmax, 1)
	for pi, p := range panels {
		y0 := top + pi*(ph+gap)
		vmax := 1.0
		for _, s := range all {
			for _, x := range s.samples {
				vmax = max(vmax, p.value(x))
			}
		}
		if p.limit && limit > 0 {
			vmax = max(vmax, limit)
		}
		vmax *= 1.1
		px := func(t float64) float64 { return left + t/tmax*(width-left-20) }
		py := func(v float64) float64 { return float64(y0+ph) - v/vmax*ph }
		fmt.Fprintf(w, `<text x="%d" y="%d">%s</text>`+"\n", left, y0-6, p.title)
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0, width-left-20, ph)
		for i := 0; i <= 4; i++ {
			v := vmax * float64(i) / 4
			fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-4, py(v)+4, v)
		}
		fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%.0f s</text>`+"\n", width-20, y0+ph+14, tmax)
		if p.limit && limit > 0 {
			fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#000" stroke-dasharray="4 3"/>`+"\n", left, py(limit), width-20, py(limit))
			fmt.Fprintf(w, `<text x="%d" y="%.1f">limit %.0f MiB</text>`+"\n", left+4, py(limit)-3, limit)
		}
		for si, s := range all {
			// At most ~600 points a line: each keeps the highest value
			// of the samples it stands for, so peaks stay visible.
			step := max(1, len(s.samples)/600)
			var b strings.Builder
			for i := 0; i < len(s.samples); i += step {
				x := s.samples[i]
				v := p.value(x)
				for _, y := range s.samples[i:min(i+step, len(s.samples))] {
					v = max(v, p.value(y))
				}
				if i > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "%.1f,%.1f", px(x.t), py(v))
			}
			fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.2" points="%s"/>`+"\n", colors[si%len(colors)], b.String())
		}
	}
	ly := top + len(panels)*(ph+gap)
	for si, s := range all {
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", left, ly+si*20, colors[si%len(colors)], left+18, ly+si*20+5, s.name)
	}
	_, err := fmt.Fprintln(w, "</svg>")
	return err
}
