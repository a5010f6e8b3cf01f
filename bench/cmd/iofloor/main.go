// Command iofloor measures what this machine's disk charges for the
// write patterns a copy-on-write commit can choose between, with no engine
// in the way: the floor under issue 20's random-load and single-put
// targets. On a file of -file-mib (written and synced first), each round
// writes -pages 4 KB pages and then calls fdatasync, placed as:
//
//   - scattered: pages anywhere in the file, sorted, one pwrite each (what
//     a commit of random keys does when its pages go wherever the freelist
//     has them);
//   - clustered: pages among the 4× as many consecutive pages of one
//     region (a region 25% free), sorted, one pwrite per run of adjacent
//     pages;
//   - sequential: the same bytes as one run, one pwrite;
//   - gap-filled: the clustered pages written as one run from the first
//     to the last, the pages between them rewritten unchanged;
//   - single page: one 4 KB pwrite (the single-put commit's floor);
//   - small commit, scattered: 4 pages anywhere (a single-put commit's
//     leaf, branch, record and meta, each where a free page was);
//   - small commit, one run + meta: 3 adjacent pages and page 0 (the
//     best a commit can do: its pages as one run, the meta apart).
//
// The patterns take turns round by round, so that drift of the shared
// disk falls on all of them alike; it prints each pattern's p50 and mean
// of the pwrite phase and the fdatasync phase, in milliseconds.
//
//	go run ./cmd/iofloor -dir /var/tmp -rounds 30
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

type pattern struct {
	name        string
	write, sync []time.Duration
	pages       func(r *rand.Rand) [][2]int64 // runs: first page, count
}

func main() {
	dir := flag.String("dir", os.TempDir(), "directory of the scratch file (on the disk to measure)")
	fileMiB := flag.Int("file-mib", 200, "scratch file size in MiB")
	pages := flag.Int("pages", 1150, "pages per commit (a random-load commit of 1000 puts rewrites ~1,150)")
	rounds := flag.Int("rounds", 20, "rounds of each pattern")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	flag.Parse()
	fmt.Printf("seed %d\n", *seed)
	if err := run(*dir, int64(*fileMiB)<<20, *pages, *rounds, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "iofloor:", err)
		os.Exit(1)
	}
}

// runsOf turns sorted page ids into runs of adjacent pages.
func runsOf(ids []int64) [][2]int64 {
	var runs [][2]int64
	for _, id := range ids {
		if n := len(runs); n > 0 && runs[n-1][0]+runs[n-1][1] == id {
			runs[n-1][1]++
			continue
		}
		runs = append(runs, [2]int64{id, 1})
	}
	return runs
}

// pick returns n distinct page ids of [lo, lo+span), sorted.
func pick(r *rand.Rand, lo, span int64, n int) []int64 {
	seen := make(map[int64]bool, n)
	ids := make([]int64, 0, n)
	for len(ids) < n {
		id := lo + r.Int64N(span)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func run(dir string, size int64, n, rounds int, seed uint64) error {
	f, err := os.CreateTemp(dir, "iofloor-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	filePages := size / pageSize
	if int64(4*n) > filePages {
		return fmt.Errorf("a %d-byte file is too small for %d pages a round", size, n)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk, off); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, 20))
	buf := make([]byte, 4*n*pageSize)
	for i := range buf {
		buf[i] = byte(i * 13)
	}
	patterns := []*pattern{
		{name: "scattered", pages: func(r *rand.Rand) [][2]int64 { return runsOf(pick(r, 0, filePages, n)) }},
		{name: "clustered (region 25% free)", pages: func(r *rand.Rand) [][2]int64 {
			return runsOf(pick(r, r.Int64N(filePages-int64(4*n)), int64(4*n), n))
		}},
		{name: "gap-filled (the clustered span)", pages: func(r *rand.Rand) [][2]int64 {
			ids := pick(r, r.Int64N(filePages-int64(4*n)), int64(4*n), n)
			return [][2]int64{{ids[0], ids[len(ids)-1] - ids[0] + 1}}
		}},
		{name: "sequential", pages: func(r *rand.Rand) [][2]int64 { return [][2]int64{{r.Int64N(filePages - int64(n)), int64(n)}} }},
		{name: "single page", pages: func(r *rand.Rand) [][2]int64 { return [][2]int64{{r.Int64N(filePages), 1}} }},
		{name: "small commit, 4 scattered pages", pages: func(r *rand.Rand) [][2]int64 { return runsOf(pick(r, 0, filePages, 4)) }},
		{name: "small commit, a 3-page run and the meta", pages: func(r *rand.Rand) [][2]int64 {
			return [][2]int64{{0, 1}, {1 + r.Int64N(filePages-4), 3}}
		}},
	}
	fd := int(f.Fd())
	for round := 0; round < rounds; round++ {
		for _, p := range patterns {
			runs := p.pages(r)
			t0 := time.Now()
			for _, run := range runs {
				if _, err := f.WriteAt(buf[:run[1]*pageSize], run[0]*pageSize); err != nil {
					return err
				}
			}
			t1 := time.Now()
			if err := unix.Fdatasync(fd); err != nil {
				return err
			}
			p.write = append(p.write, t1.Sub(t0))
			p.sync = append(p.sync, time.Since(t1))
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	stat := func(ds []time.Duration) (p50, mean float64) {
		s := slices.Clone(ds)
		slices.Sort(s)
		var sum time.Duration
		for _, d := range s {
			sum += d
		}
		return ms(s[len(s)/2]), ms(sum) / float64(len(s))
	}
	fmt.Printf("%d pages of 4 KB a round (single page and small commits: as named), %d rounds, %d MiB file in %s\n\n", n, rounds, size>>20, dir)
	fmt.Println("| pattern | pwrite p50 ms | pwrite mean | fdatasync p50 ms | fdatasync mean | total p50 ms |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, p := range patterns {
		w50, wm := stat(p.write)
		s50, sm := stat(p.sync)
		tot := make([]time.Duration, len(p.write))
		for i := range tot {
			tot[i] = p.write[i] + p.sync[i]
		}
		t50, _ := stat(tot)
		fmt.Printf("| %s | %.3f | %.3f | %.3f | %.3f | %.3f |\n", p.name, w50, wm, s50, sm, t50)
	}
	return nil
}
