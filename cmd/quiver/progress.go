package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress shows how far a long command has come, on a terminal only:
// redirected output stays free of carriage returns.
type progress struct {
	w     io.Writer // nil: disabled
	total int       // 0: unknown
	last  time.Time
	n     int
}

// newProgress returns a progress line on w if w is a terminal.
func newProgress(w io.Writer) *progress {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return &progress{w: w}
	}
	return &progress{}
}

func (p *progress) enabled() bool { return p.w != nil }

// update records n items done and redraws the line at most ten times a
// second.
func (p *progress) update(n int) {
	if p.w == nil {
		return
	}
	p.n = n
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	if p.total > 0 {
		fmt.Fprintf(p.w, "\rcopied %d of %d keys and buckets (%d%%)", p.n, p.total, p.n*100/p.total)
	} else {
		fmt.Fprintf(p.w, "\rcopied %d keys and buckets", p.n)
	}
}

// done ends the line: the final count when ok, erased otherwise so that
// the error starts a clean line.
func (p *progress) done(ok bool) {
	if p.w == nil {
		return
	}
	if ok {
		p.draw()
		fmt.Fprintln(p.w)
	} else {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
