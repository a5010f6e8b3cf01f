package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

type result struct {
	Engine    string  `json:"engine"`
	Grow      string  `json:"grow"` // "" (older runs) is "mixed"
	Label     string  `json:"label"`
	Target    float64 `json:"target_gib"`
	GaveUp    bool    `json:"gave_up"`
	FileSize  float64 `json:"file_bytes"`
	LiveBytes float64 `json:"live_bytes"`
	P50       float64 `json:"p50_ns"`
	P99       float64 `json:"p99_ns"`
	OpenTime  float64 `json:"open_ns"`
	Alloc     float64 `json:"alloc_ns"`
	HotKeys   float64 `json:"hot_keys"`
	HotOps    float64 `json:"hot_ops"`
}

// series names the line a result belongs to: engine, growth mode and the
// run's label.
func (r result) series() string {
	s := r.Engine
	if r.Grow != "" && r.Grow != "mixed" {
		s += " (" + r.Grow + " growth)"
	}
	if r.Label != "" {
		s += ", " + r.Label
	}
	if r.HotKeys > 0 {
		s += fmt.Sprintf(", %g%% of ops in %g%% of keys", 100*r.HotOps, 100*r.HotKeys)
	}
	return s
}

// panel is one measure to plot.
type panel struct {
	title string
	unit  string
	log   bool
	value func(r result) float64
}

var panels = []panel{
	{"commit latency p99", "ms", true, func(r result) float64 { return r.P99 / 1e6 }},
	{"commit latency p50", "ms", true, func(r result) float64 { return r.P50 / 1e6 }},
	{"open time", "ms", true, func(r result) float64 { return r.OpenTime / 1e6 }},
	{"file size / live data", "×", false, func(r result) float64 { return r.FileSize / r.LiveBytes }},
	{"allocation (quiver) or spill (bbolt) per commit", "µs", true, func(r result) float64 { return r.Alloc / 1e3 }},
}

// colors gives each line its own colour while there are no more lines than
// colours; past that, lines reuse colours with a dash pattern of their own.
var colors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// style returns line k's colour and dash pattern ("" for solid). A hot-set
// line is dotted, so that it reads as the companion of its uniform line.
func style(k int, hot bool) (string, string) {
	dash := []string{"", "6,3", "2,2", "8,3,2,3"}[(k/len(colors))%4]
	if hot && dash == "" {
		dash = "2,2"
	}
	return colors[k%len(colors)], dash
}

func main() {
	in := flag.String("in", "capacity.json", "JSON lines written by cmd/capacity -out")
	out := flag.String("out", "capacity.svg", "SVG file to write")
	runs := flag.String("runs", "", "comma-separated run labels (cmd/capacity -label) to draw; empty: every run")
	flag.Parse()
	rs, err := read(*in)
	if err == nil && *runs != "" {
		rs = onlyRuns(rs, strings.Split(*runs, ","))
	}
	if err == nil && len(rs) == 0 {
		err = fmt.Errorf("%s has no results", *in)
	}
	if err == nil {
		var f *os.File
		if f, err = os.Create(*out); err == nil {
			draw(f, rs)
			err = f.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "capacityplot:", err)
		os.Exit(1)
	}
}

func read(path string) ([]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rs []result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !r.GaveUp && r.LiveBytes > 0 {
			rs = append(rs, r)
		}
	}
	return rs, sc.Err()
}

// onlyRuns keeps the results of the runs labelled in labels.
func onlyRuns(rs []result, labels []string) []result {
	var out []result
	for _, r := range rs {
		for _, l := range labels {
			if r.Label == strings.TrimSpace(l) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

const (
	panelW, panelH = 420, 260
	marginL        = 60
	marginB        = 40
	marginT        = 30
	cols           = 2
)

func draw(w io.Writer, rs []result) {
	byEngine := map[string][]result{}
	var engines []string
	for _, r := range rs {
		if _, ok := byEngine[r.series()]; !ok {
			engines = append(engines, r.series())
		}
		byEngine[r.series()] = append(byEngine[r.series()], r)
	}
	for _, e := range engines {
		sort.Slice(byEngine[e], func(i, j int) bool { return byEngine[e][i].Target < byEngine[e][j].Target })
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, r := range rs {
		xmin, xmax = math.Min(xmin, r.Target), math.Max(xmax, r.Target)
	}
	if xmax == xmin {
		xmin, xmax = xmin/2, xmax*2
	}
	rows := (len(panels) + cols - 1) / cols
	const perRow = 3 // legend entries a line
	legendRows := (len(engines) + perRow - 1) / perRow
	width, height := cols*(panelW+marginL), rows*(panelH+marginB+marginT)+14+18*legendRows
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, p := range panels {
		ox := float64((i%cols)*(panelW+marginL) + marginL)
		oy := float64((i/cols)*(panelH+marginB+marginT) + marginT)
		ymin, ymax := math.Inf(1), math.Inf(-1)
		for _, r := range rs {
			v := p.value(r)
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		}
		if p.log {
			ymin, ymax = math.Pow(10, math.Floor(math.Log10(ymin))), math.Pow(10, math.Ceil(math.Log10(ymax)))
		} else {
			ymin, ymax = 0, ymax*1.15
		}
		if ymax <= ymin {
			ymax = ymin + 1
		}
		sx := func(x float64) float64 {
			return ox + (math.Log2(x)-math.Log2(xmin))/(math.Log2(xmax)-math.Log2(xmin))*(panelW-20) + 10
		}
		sy := func(y float64) float64 {
			if p.log {
				return oy + panelH - (math.Log10(y)-math.Log10(ymin))/(math.Log10(ymax)-math.Log10(ymin))*panelH
			}
			return oy + panelH - (y-ymin)/(ymax-ymin)*panelH
		}
		fmt.Fprintf(w, `<text x="%.0f" y="%.0f" font-size="13" font-weight="bold">%s (%s)</text>`+"\n", ox, oy-10, p.title, p.unit)
		fmt.Fprintf(w, `<rect x="%.0f" y="%.0f" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", ox, oy, panelW, panelH)
		// y ticks
		var ticks []float64
		if p.log {
			for t := ymin; t <= ymax*1.0001; t *= 10 {
				ticks = append(ticks, t)
			}
		} else {
			for k := 0; k <= 4; k++ {
				ticks = append(ticks, ymin+(ymax-ymin)*float64(k)/4)
			}
		}
		for _, t := range ticks {
			y := sy(t)
			fmt.Fprintf(w, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`+"\n", ox, y, ox+panelW, y)
			fmt.Fprintf(w, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", ox-4, y+4, label(t))
		}
		// x ticks: the sizes measured
		seen := map[float64]bool{}
		for _, r := range rs {
			if seen[r.Target] {
				continue
			}
			seen[r.Target] = true
			x := sx(r.Target)
			fmt.Fprintf(w, `<text x="%.1f" y="%.0f" text-anchor="middle">%g GiB</text>`+"\n", x, oy+panelH+15, r.Target)
		}
		for k, e := range engines {
			var pts []string
			for _, r := range byEngine[e] {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(r.Target), sy(p.value(r))))
			}
			c, dash := style(k, byEngine[e][0].HotKeys > 0)
			fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), c, dashAttr(dash))
			for _, pt := range pts {
				xy := strings.Split(pt, ",")
				fmt.Fprintf(w, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], c)
			}
		}
	}
	// legend
	for k, e := range engines {
		x, y := marginL+(k%perRow)*300, height-18*legendRows+18*(k/perRow)+4
		c, dash := style(k, byEngine[e][0].HotKeys > 0)
		fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"%s/><text x="%d" y="%d">%s</text>`+"\n", x, y-3, x+16, y-3, c, dashAttr(dash), x+20, y, e)
	}
	fmt.Fprintln(w, "</svg>")
}

func dashAttr(dash string) string {
	if dash == "" {
		return ""
	}
	return ` stroke-dasharray="` + dash + `"`
}

func label(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.3g", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
