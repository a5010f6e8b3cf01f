package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// next waits for the next response of a watch.
func next(t *testing.T, wc clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-wc:
		if !ok {
			t.Fatal("the watch channel closed")
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no watch response in 10 s")
	}
	return clientv3.WatchResponse{}
}

// evs renders events as TYPE key=value(prev).
func evs(r clientv3.WatchResponse) string {
	var b strings.Builder
	for _, e := range r.Events {
		fmt.Fprintf(&b, "%s %s=%s", e.Type, e.Kv.Key, e.Kv.Value)
		if e.PrevKv != nil {
			fmt.Fprintf(&b, "(%s)", e.PrevKv.Value)
		}
		b.WriteByte(' ')
	}
	return strings.TrimSpace(b.String())
}

// collect reads responses until it has n events.
func collect(t *testing.T, wc clientv3.WatchChan, n int) string {
	t.Helper()
	var all []string
	for count := 0; count < n; {
		r := next(t, wc)
		if len(r.Events) == 0 {
			continue
		}
		count += len(r.Events)
		all = append(all, evs(r))
	}
	return strings.Join(all, " ")
}

// TestWatch drives the Watch service with clientv3: live events with
// previous values, a watch from a past revision, filters, progress
// requests and cancel, through a member that is not the leader too.
func TestWatch(t *testing.T) {
	c := newTestCluster(t, 3)
	cli := client(t, c.addrs...)
	x := ctx(t)
	live := cli.Watch(x, "w/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	noPut := clientv3.NewWatcher(client(t, c.addrs[2])).Watch(x, "w/", clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithCreatedNotify())
	for _, wc := range []clientv3.WatchChan{live, noPut} {
		if r := next(t, wc); !r.Created {
			t.Fatalf("the first response is not the creation: %+v", r)
		}
	}
	first := must[*clientv3.PutResponse](t)(cli.Put(x, "w/a", "1"))
	must[*clientv3.PutResponse](t)(cli.Put(x, "w/a", "2"))
	must[*clientv3.PutResponse](t)(cli.Put(x, "other", "x"))
	must[*clientv3.DeleteResponse](t)(cli.Delete(x, "w/a"))
	want := "PUT w/a=1 PUT w/a=2(1) DELETE w/a=(2)"
	if got := collect(t, live, 3); got != want {
		t.Fatalf("live watch: %q, want %q", got, want)
	}
	if got := collect(t, noPut, 1); got != "DELETE w/a=" {
		t.Fatalf("watch without puts: %q", got)
	}
	// From a past revision: the history, in order.
	past := cli.Watch(x, "w/a", clientv3.WithRev(first.Header.Revision))
	if got := collect(t, past, 3); got != "PUT w/a=1 PUT w/a=2 DELETE w/a=" {
		t.Fatalf("watch from revision %d: %q", first.Header.Revision, got)
	}
	// A progress request: a notification at the current revision.
	prog := cli.Watch(x, "p", clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	if r := next(t, prog); !r.Created {
		t.Fatalf("the first response is not the creation: %+v", r)
	}
	if err := cli.RequestProgress(x); err != nil {
		t.Fatal(err)
	}
	if r := next(t, prog); !r.IsProgressNotify() || r.Header.Revision < first.Header.Revision+3 {
		t.Fatalf("progress: %+v", r)
	}
	// Cancel: the channel closes.
	cctx, cancel := context.WithCancel(x)
	gone := cli.Watch(cctx, "g")
	cancel()
	select {
	case _, ok := <-gone:
		for ok {
			_, ok = <-gone
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a canceled watch did not close")
	}
}

// TestWatchFragments: events over the size limit go in fragments, all but
// the last marked, none lost; without the option, whole.
func TestWatchFragments(t *testing.T) {
	r := &pb.WatchResponse{WatchId: 3}
	for i := 0; i < 10; i++ {
		r.Events = append(r.Events, &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte(fmt.Sprint(i)), Value: make([]byte, 100)}})
	}
	parts := fragments(r, true, 350)
	n := 0
	for i, p := range parts {
		n += len(p.Events)
		if p.Fragment != (i < len(parts)-1) || p.WatchId != 3 {
			t.Fatalf("part %d of %d: fragment %v, watch %d", i, len(parts), p.Fragment, p.WatchId)
		}
	}
	if len(parts) < 3 || n != 10 {
		t.Fatalf("%d parts, %d events", len(parts), n)
	}
	if whole := fragments(r, false, 350); len(whole) != 1 || len(whole[0].Events) != 10 {
		t.Fatal("split without the option")
	}
}
