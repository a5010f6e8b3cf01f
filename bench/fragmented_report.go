package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteFragmentedTable writes results as a Markdown table, one row per
// engine, followed by the ratios of each quiver engine to bbolt with the
// same freelist type: commit figures against bbolt-<type>, open times
// against bbolt-<type>-nofls (which rebuilds its freelist at open).
func WriteFragmentedTable(w io.Writer, results []*FragmentedResult) error {
	var b strings.Builder
	b.WriteString("| engine | p50 µs | p99 µs | max µs | bytes/commit | freelist bytes/commit: mean, p50, max | alloc µs/commit | spill µs/commit | free pages | file MB (÷ live) | open ms | cold open ms | load, fragment, steady s |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		c := &r.Commits
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f, %d, %d | %s | %s | %d | %.1f (%.2f) | %s | %s | %.1f, %.1f, %.1f |\n",
			r.Engine, us(c.P50), us(c.P99), us(c.Max), bytesOrNA(c.Bytes),
			c.FreelistBytes, c.FreelistBytesP50, c.FreelistBytesMax,
			usOrBlank(c.AllocTime), usOrBlank(c.SpillTime),
			r.FreePages, float64(r.FileSize)/1e6, float64(r.FileSize)/float64(max(r.LiveBytes, 1)),
			ms(r.OpenTime), ms(r.ColdOpenTime),
			r.LoadTime.Seconds(), r.FragmentTime.Seconds(), r.SteadyTime.Seconds())
	}
	byName := map[string]*FragmentedResult{}
	for _, r := range results {
		byName[r.Engine] = r
	}
	for _, r := range results {
		kind, ok := strings.CutPrefix(r.Engine, "quiver-")
		if !ok {
			continue
		}
		if o := byName["bbolt-"+kind]; o != nil {
			fmt.Fprintf(&b, "\n%s / bbolt-%s: p50 %s, p99 %s, bytes/commit %s, freelist bytes/commit %s",
				r.Engine, kind, ratio(float64(r.Commits.P50), float64(o.Commits.P50)),
				ratio(float64(r.Commits.P99), float64(o.Commits.P99)),
				ratio(r.Commits.Bytes, o.Commits.Bytes),
				ratio(r.Commits.FreelistBytes, o.Commits.FreelistBytes))
		}
		if o := byName["bbolt-"+kind+"-nofls"]; o != nil {
			fmt.Fprintf(&b, "\n%s / bbolt-%s-nofls: p50 %s, p99 %s, open %s, cold open %s",
				r.Engine, kind, ratio(float64(r.Commits.P50), float64(o.Commits.P50)),
				ratio(float64(r.Commits.P99), float64(o.Commits.P99)),
				ratio(float64(r.OpenTime), float64(o.OpenTime)),
				ratio(float64(r.ColdOpenTime), float64(o.ColdOpenTime)))
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/1e3) }

func usOrBlank(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", float64(d)/1e3)
}

func ms(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(d)/1e6)
}

func bytesOrNA(x float64) string {
	if x < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", x)
}

func ratio(a, b float64) string {
	if a < 0 || b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3g×", a/b)
}
