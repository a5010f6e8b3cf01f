package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// result is one measurement: operations done in a time, with each one's
// latency.
type result struct {
	ops    int
	errors int
	dur    time.Duration
	lat    []time.Duration
}

func (r result) perSec() float64 { return float64(r.ops) / r.dur.Seconds() }

// add is r and o together: o measured after r, on the same engine.
func (r result) add(o result) result {
	return result{ops: r.ops + o.ops, errors: r.errors + o.errors, dur: r.dur + o.dur, lat: append(r.lat, o.lat...)}
}

// pct is the p-th percentile latency in milliseconds.
func (r result) pct(p float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(p/100*float64(len(s))))].Microseconds()) / 1000
}

// clients opens n clientv3 clients on the endpoints (each its own
// connection, as separate processes' clients would have).
func clients(n int, eps []string) ([]*clientv3.Client, func(), error) {
	var cs []*clientv3.Client
	closeAll := func() {
		for _, c := range cs {
			c.Close()
		}
	}
	for i := 0; i < n; i++ {
		// Spread the clients over the members, as a load balancer would.
		rot := append(slices.Clone(eps[i%len(eps):]), eps[:i%len(eps)]...)
		c, err := newClient(rot...)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cs = append(cs, c)
	}
	return cs, closeAll, nil
}

// drive runs op from n clients for d and measures it.
func drive(eps []string, n int, d time.Duration, op func(c *clientv3.Client, r *rand.Rand) error) (result, error) {
	cs, closeAll, err := clients(n, eps)
	if err != nil {
		return result{}, err
	}
	defer closeAll()
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			var lat []time.Duration
			errs := 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := op(c, r); err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.ops += len(lat)
			res.errors += errs
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.dur = time.Since(start)
	return res, nil
}

const keySpace = 100000

func putOp(value string) func(c *clientv3.Client, r *rand.Rand) error {
	return func(c *clientv3.Client, r *rand.Rand) error {
		x, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Put(x, fmt.Sprintf("p%07d", r.IntN(keySpace)), value)
		return err
	}
}

const rangeKeys = 1000

// fillRange writes the keys the range benchmarks read.
func fillRange(cli *clientv3.Client, value string) error {
	for i := 0; i < rangeKeys; i++ {
		x, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cli.Put(x, fmt.Sprintf("r%04d", i), value)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func rangeOp(serializable bool) func(c *clientv3.Client, r *rand.Rand) error {
	return func(c *clientv3.Client, r *rand.Rand) error {
		x, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		opts := []clientv3.OpOption{}
		if serializable {
			opts = append(opts, clientv3.WithSerializable())
		}
		g, err := c.Get(x, fmt.Sprintf("r%04d", r.IntN(rangeKeys)), opts...)
		if err == nil && len(g.Kvs) != 1 {
			err = fmt.Errorf("range: %d keys", len(g.Kvs))
		}
		return err
	}
}

// watchFanout opens watchers watches on one key over conns clients, puts
// puts values to it, and measures how long until every watcher has every
// event (ops: events delivered; lat: each event's delay after its put
// was acknowledged).
func watchFanout(eps []string, watchers, conns, puts int) (result, error) {
	cs, closeAll, err := clients(conns, eps)
	if err != nil {
		return result{}, err
	}
	defer closeAll()
	writer, err := newClient(eps...)
	if err != nil {
		return result{}, err
	}
	defer writer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	acked := make([]atomic.Int64, puts) // unix nanoseconds of each put's ack
	var got atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	created := make(chan struct{}, watchers)
	base := int64(0)
	x, c0 := context.WithTimeout(ctx, 10*time.Second)
	p, err := writer.Put(x, "w", "start")
	c0()
	if err != nil {
		return result{}, err
	}
	base = p.Header.Revision
	for i := 0; i < watchers; i++ {
		wc := cs[i%len(cs)].Watch(ctx, "w", clientv3.WithRev(base+1), clientv3.WithCreatedNotify())
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			var mine []time.Duration
			for resp := range wc {
				if resp.Created {
					created <- struct{}{}
					continue
				}
				now := time.Now().UnixNano()
				for _, ev := range resp.Events {
					i := int(ev.Kv.ModRevision - base - 1)
					if i >= 0 && i < puts {
						if a := acked[i].Load(); a > 0 {
							mine = append(mine, time.Duration(max(now-a, 0)))
						}
						n++
					}
				}
				if n >= puts {
					break
				}
			}
			got.Add(int64(n))
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	for i := 0; i < watchers; i++ {
		select {
		case <-created:
		case <-ctx.Done():
			return result{}, fmt.Errorf("watch fan-out: %d of %d watches created", i, watchers)
		}
	}
	start := time.Now()
	for i := 0; i < puts; i++ {
		x, c := context.WithTimeout(ctx, 10*time.Second)
		_, err := writer.Put(x, "w", strings.Repeat("v", 256))
		c()
		if err != nil {
			return result{}, err
		}
		acked[i].Store(time.Now().UnixNano())
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return result{}, fmt.Errorf("watch fan-out: %d of %d events delivered in 5 min", got.Load(), watchers*puts)
	}
	return result{ops: int(got.Load()), dur: time.Since(start), lat: lat}, nil
}
