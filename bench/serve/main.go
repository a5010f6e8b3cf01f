// Command serve compares `quiver serve` with etcd v3.7.3 (embedded), side
// by side in one run on one machine: each engine's members run in child
// processes of this program on 127.0.0.1, and one load generator
// (clientv3, loopback) drives both.
//
//	go run . -members 1,3 -clients 1,16,64 -duration 5s
//	go run . -scenario large -updates 5000 -csv /tmp/servemem
//	go run . -scenario grow -engines etcd-bbolt,etcd-quiver \
//		-etcd-bin etcd-bbolt=/tmp/etcd-bbolt,etcd-quiver=/tmp/etcd-quiver
//
// The first measures put throughput and latency (256-byte values),
// linearizable and serializable range throughput, and watch fan-out; the
// second is the large-value scenario of issue 18 (a 1 MiB value rewritten
// while a follower is stopped, the leader's memory sampled), whose CSV
// files ../cmd/raftmemplot draws. The third is issue 19's: etcd's backend
// grown to several GB, fragmented, then measured (see grow.go); with
// -etcd-bin it compares etcd's own server on bbolt and on quiver, built
// by ../../compat/etcdserver. Its module is its own, so that the
// engine's module never depends on etcd's server.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	if raw := os.Getenv(memberEnv); raw != "" {
		var spec memberSpec
		if err := json.Unmarshal([]byte(raw), &spec); err != nil {
			fmt.Fprintln(os.Stderr, "member spec:", err)
			os.Exit(2)
		}
		if err := runMember(spec); err != nil {
			fmt.Fprintf(os.Stderr, "%s member %s: %v\n", spec.Engine, spec.Name, err)
			os.Exit(1)
		}
		return
	}
	scenario := flag.String("scenario", "throughput", "throughput, large or grow")
	engines := flag.String("engines", "etcd,quiver", "engines to compare, in order")
	members := flag.String("members", "1,3", "cluster sizes")
	clientCounts := flag.String("clients", "1,16,64", "client counts of the put benchmark")
	duration := flag.Duration("duration", 5*time.Second, "length of each throughput measurement, per engine")
	measures := flag.String("measures", "put,range,watch", "throughput: the measurements to run")
	rounds := flag.Int("rounds", 5, "throughput: rounds each measurement is cut into, alternating between the engines")
	watchers := flag.Int("watchers", 1000, "watchers of the fan-out benchmark")
	watchPuts := flag.Int("watch-puts", 100, "puts the fan-out watchers receive")
	updates := flag.Int("updates", 5000, "updates of the 1 MiB value (large scenario)")
	csv := flag.String("csv", "", "large scenario: write the leader's memory samples to PREFIX.<engine>.csv")
	dir := flag.String("dir", "", "directory for the members' data (default: a temporary one, removed after)")
	bins := flag.String("etcd-bin", "", "more engines, as NAME=PATH,...: etcd server binaries (../../compat/etcdserver builds etcd on quiver and on bbolt)")
	growBytes := flag.Int64("grow-bytes", 4<<30, "grow scenario: bytes of values written before fragmenting")
	flag.Parse()
	for _, b := range strings.Split(*bins, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		name, path, ok := strings.Cut(b, "=")
		if !ok || name == "" || path == "" {
			fmt.Fprintf(os.Stderr, "bad -etcd-bin %q: want NAME=PATH\n", b)
			os.Exit(2)
		}
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintln(os.Stderr, "-etcd-bin:", err)
			os.Exit(2)
		}
		etcdBinaries[name] = path
	}
	ints := func(s string) []int {
		var out []int
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				fmt.Fprintf(os.Stderr, "bad count %q\n", f)
				os.Exit(2)
			}
			out = append(out, n)
		}
		return out
	}
	data := *dir
	if data != "" {
		if err := os.MkdirAll(data, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	} else {
		d, err := os.MkdirTemp("", "servebench")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer os.RemoveAll(d)
		data = d
	}
	var err error
	switch *scenario {
	case "throughput":
		err = throughput(strings.Split(*engines, ","), ints(*members), ints(*clientCounts), *duration, max(1, *rounds), strings.Split(*measures, ","), *watchers, *watchPuts, data)
	case "large":
		err = large(strings.Split(*engines, ","), *updates, *csv, data)
	case "grow":
		err = grow(strings.Split(*engines, ","), *growBytes, *duration, *csv, data)
	default:
		err = fmt.Errorf("unknown -scenario %q", *scenario)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve bench:", err)
		if *dir == "" {
			_ = os.RemoveAll(data) // os.Exit skips the deferred removal
		}
		os.Exit(1)
	}
}

// throughput runs every measurement on every engine and cluster size and
// prints them as a Markdown table, each engine's figures side by side.
// The engines' clusters of one size run at once, and each measurement is
// cut into rounds that alternate between them (the first engine first in
// odd rounds, last in even ones), so that a slow spell of a shared
// machine falls on every engine alike; the spread of the rounds' ratios
// is printed beside their aggregate.
func throughput(engines []string, members, clientCounts []int, d time.Duration, rounds int, measures []string, watchers, watchPuts int, dir string) error {
	type row struct {
		name   string
		res    map[string]result
		ratios []float64 // engines[1]/engines[0], round by round
	}
	var rows []*row
	find := func(name string) *row {
		for _, r := range rows {
			if r.name == name {
				return r
			}
		}
		r := &row{name: name, res: map[string]result{}}
		rows = append(rows, r)
		return r
	}
	value := strings.Repeat("v", 256)
	for _, n := range members {
		err := func() error {
			eps := map[string][]string{}
			for _, engine := range engines {
				c, err := startCluster(engine, n, dir, 0)
				if err != nil {
					return err
				}
				defer c.removeData() // after stop: only the members' own directories
				defer c.stop()
				cli, err := newClient(c.endpoints()...)
				if err != nil {
					return err
				}
				defer cli.Close()
				if _, err := c.leader(cli); err != nil {
					return fmt.Errorf("%s: %w", engine, err)
				}
				if _, err := drive(c.endpoints(), 4, time.Second, putOp(value)); err != nil { // warm up
					return fmt.Errorf("%s: %w", engine, err)
				}
				if err := fillRange(cli, value); err != nil {
					return fmt.Errorf("%s: %w", engine, err)
				}
				eps[engine] = c.endpoints()
			}
			// measure runs op from k clients on every engine, in rounds.
			measure := func(name string, k int, op func(c *clientv3.Client, r *rand.Rand) error) error {
				row := find(name)
				for round := 0; round < rounds; round++ {
					order := slices.Clone(engines)
					if round%2 == 1 {
						slices.Reverse(order)
					}
					got := map[string]result{}
					for _, engine := range order {
						r, err := drive(eps[engine], k, d/time.Duration(rounds), op)
						if err != nil {
							return fmt.Errorf("%s: %w", engine, err)
						}
						got[engine] = r
						row.res[engine] = row.res[engine].add(r)
					}
					if len(engines) == 2 {
						row.ratios = append(row.ratios, got[engines[1]].perSec()/got[engines[0]].perSec())
					}
				}
				for _, engine := range engines {
					fmt.Fprintf(os.Stderr, "%s: %s %.0f/s\n", name, engine, row.res[engine].perSec())
				}
				return nil
			}
			for _, k := range clientCounts {
				if !slices.Contains(measures, "put") {
					break
				}
				if err := measure(fmt.Sprintf("put, %d member(s), %d client(s)", n, k), k, putOp(value)); err != nil {
					return err
				}
			}
			for _, ser := range []bool{false, true} {
				if !slices.Contains(measures, "range") {
					break
				}
				kind := map[bool]string{false: "linearizable", true: "serializable"}[ser]
				if err := measure(fmt.Sprintf("range %s, %d member(s), 16 clients", kind, n), 16, rangeOp(ser)); err != nil {
					return err
				}
			}
			for _, engine := range engines {
				if !slices.Contains(measures, "watch") {
					break
				}
				r, err := watchFanout(eps[engine], watchers, 10, watchPuts)
				if err != nil {
					return fmt.Errorf("%s: %w", engine, err)
				}
				find(fmt.Sprintf("watch fan-out, %d member(s), %d watchers × %d puts (events/s)", n, watchers, watchPuts)).res[engine] = r
				fmt.Fprintf(os.Stderr, "%s %d members: watch fan-out: %.0f events/s\n", engine, n, r.perSec())
			}
			return nil
		}()
		if err != nil {
			return fmt.Errorf("%d members: %w", n, err)
		}
	}
	fmt.Print("| measure |")
	for _, e := range engines {
		fmt.Printf(" %s ops/s | p50 ms | p99 ms |", e)
	}
	if len(engines) == 2 {
		fmt.Printf(" %s/%s | rounds' ratios, min–median–max |", engines[1], engines[0])
	}
	fmt.Print("\n|---|")
	for range engines {
		fmt.Print("---:|---:|---:|")
	}
	if len(engines) == 2 {
		fmt.Print("---:|---:|")
	}
	fmt.Println()
	for _, r := range rows {
		fmt.Printf("| %s |", r.name)
		for _, e := range engines {
			res := r.res[e]
			errs := ""
			if res.errors > 0 {
				errs = fmt.Sprintf(" (%d errors)", res.errors)
			}
			fmt.Printf(" %.0f%s | %.2f | %.2f |", res.perSec(), errs, res.pct(50), res.pct(99))
		}
		if len(engines) == 2 {
			a, b := r.res[engines[0]], r.res[engines[1]]
			fmt.Printf(" %.2f× |", b.perSec()/a.perSec())
			if len(r.ratios) > 0 {
				q := slices.Clone(r.ratios)
				slices.Sort(q)
				fmt.Printf(" %.2f–%.2f–%.2f |", q[0], q[len(q)/2], q[len(q)-1])
			} else {
				fmt.Print(" |")
			}
		}
		fmt.Println()
	}
	return nil
}

// large runs the large-value scenario on each engine and prints the
// leader's peaks.
func large(engines []string, updates int, csv, dir string) error {
	fmt.Println("| engine | updates | time s | leader peak heap MiB | leader peak RssAnon MiB | leader peak RssFile MiB |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, engine := range engines {
		start := time.Now()
		samples, err := largeValues(engine, dir, updates, csv)
		if err != nil {
			return err
		}
		var heap, anon, file int64
		for _, s := range samples {
			heap, anon, file = max(heap, s.heap), max(anon, s.anon), max(file, s.rss)
		}
		fmt.Printf("| %s | %d | %.0f | %d | %d | %d |\n", engine, updates, time.Since(start).Seconds(), heap>>20, anon>>20, file>>20)
	}
	return nil
}
