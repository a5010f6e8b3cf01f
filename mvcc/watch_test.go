package mvcc

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// change is a write as the test made it, the model of the events.
type change struct {
	rev int64
	key string
	del bool
	val string
}

func (c change) String() string {
	if c.del {
		return fmt.Sprintf("%d:-%s", c.rev, c.key)
	}
	return fmt.Sprintf("%d:%s=%s", c.rev, c.key, c.val)
}

func eventString(ev Event) string {
	if ev.Type == EventDelete {
		return fmt.Sprintf("%d:-%s", ev.KV.ModRevision, ev.KV.Key)
	}
	return fmt.Sprintf("%d:%s=%s", ev.KV.ModRevision, ev.KV.Key, ev.KV.Value)
}

// writeChanges makes n puts and deletes over keys k0..k9 and returns them.
func writeChanges(t *testing.T, s *Store, n int, seed int) []change {
	t.Helper()
	var out []change
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%d", (i*7+seed)%10)
		if i%4 == 3 {
			cnt, rev, err := s.DeleteRange([]byte(k), nil)
			if err != nil {
				t.Fatal(err)
			}
			if cnt == 1 {
				out = append(out, change{rev: rev, key: k, del: true})
			}
			continue
		}
		v := fmt.Sprint(seed, "-", i)
		rev, err := s.Put([]byte(k), []byte(v), 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, change{rev: rev, key: k, val: v})
	}
	return out
}

// expect returns the changes a watcher of [key, end) from start sees.
func expect(changes []change, key, end string, single bool, start int64) string {
	var out []string
	for _, c := range changes {
		in := c.key == key
		if !single {
			in = c.key >= key && (end == "" || c.key < end)
		}
		if in && c.rev >= start {
			out = append(out, c.String())
		}
	}
	return strings.Join(out, " ")
}

// collect reads the stream until every watcher in want has as many events
// as expected, or a timeout.
func collect(t *testing.T, ws *WatchStream, want map[WatchID]string) map[WatchID]string {
	t.Helper()
	got := map[WatchID][]string{}
	count := func(s string) int {
		if s == "" {
			return 0
		}
		return len(strings.Split(s, " "))
	}
	done := func() bool {
		for id, w := range want {
			if len(got[id]) < count(w) {
				return false
			}
		}
		return true
	}
	timeout := time.After(10 * time.Second)
	for !done() {
		select {
		case r, ok := <-ws.Chan():
			if !ok {
				t.Fatal("stream closed")
			}
			if r.CompactRevision != 0 {
				t.Fatalf("watcher %d compacted at %d", r.WatchID, r.CompactRevision)
			}
			for _, ev := range r.Events {
				got[r.WatchID] = append(got[r.WatchID], eventString(ev))
			}
		case <-timeout:
			t.Fatalf("timed out; got %v", got)
		}
	}
	out := map[WatchID]string{}
	for id, evs := range got {
		out[id] = strings.Join(evs, " ")
	}
	return out
}

// TestWatch watches single keys and ranges, from the next revision and
// from past ones (caught up from the engine), while writes go on; each
// watcher must see exactly the changes in its range, in order.
func TestWatch(t *testing.T) {
	s, _ := openTest(t, "", nil)
	past := writeChanges(t, s, 60, 1)
	ws := s.NewWatchStream()
	defer ws.Close()
	type spec struct {
		key, end string
		single   bool
		start    int64
	}
	specs := []spec{
		{"k3", "", true, 0},
		{"k3", "", true, 5},
		{"k2", "k6", false, 0},
		{"k2", "k6", false, 1},
		{"k0", "", false, 30}, // every key from k0 on
		{"k9", "", true, s.Rev() + 5},
	}
	ids := map[WatchID]spec{}
	for _, sp := range specs {
		var end []byte
		if !sp.single {
			end = []byte(sp.end)
		}
		id, err := ws.Watch([]byte(sp.key), end, sp.start)
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = sp
	}
	live := writeChanges(t, s, 80, 2)
	all := append(past, live...)
	want := map[WatchID]string{}
	for id, sp := range ids {
		start := sp.start
		if start == 0 {
			start = live[0].rev
		}
		want[id] = expect(all, sp.key, sp.end, sp.single, start)
	}
	got := collect(t, ws, want)
	for id, w := range want {
		if got[id] != w {
			t.Errorf("watcher %+v:\ngot  %s\nwant %s", ids[id], got[id], w)
		}
	}
}

// TestWatchSlowConsumer lets a stream's channel fill while writes go on, so
// that its watchers fall behind and are caught up from the engine: no
// event may be lost or repeated.
func TestWatchSlowConsumer(t *testing.T) {
	s, _ := openTest(t, "", nil)
	ws := s.NewWatchStream()
	defer ws.Close()
	want := map[WatchID]string{}
	var ids []WatchID
	for i := 0; i < 10; i++ {
		id, err := ws.Watch([]byte(fmt.Sprintf("k%d", i)), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	all, err := ws.Watch([]byte("k"), []byte{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads: 128 responses fill the channel long before the end.
	changes := writeChanges(t, s, 1000, 3)
	for i, id := range ids {
		want[id] = expect(changes, fmt.Sprintf("k%d", i), "", true, 1)
	}
	want[all] = expect(changes, "k", "", false, 1)
	got := collect(t, ws, want)
	if s.hub.behind.Load() == 0 {
		t.Error("no watcher fell behind: the test did not fill the stream")
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("watcher %d: %d events, want %d\ngot  %.300s\nwant %.300s", id, len(strings.Fields(got[id])), len(strings.Fields(w)), got[id], w)
		}
	}
}

func TestWatchCompactedAndProgress(t *testing.T) {
	s, _ := openTest(t, "", nil)
	writeChanges(t, s, 40, 4)
	<-must[<-chan struct{}](t)(s.Compact(20))
	ws := s.NewWatchStream()
	id, err := ws.Watch([]byte("k1"), nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ws.Chan():
		if r.WatchID != id || r.CompactRevision != 20 {
			t.Fatalf("watch below the compaction: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no compacted response")
	}
	id, _ = ws.Watch([]byte("k1"), nil, 0)
	ws.RequestProgress(id)
	select {
	case r := <-ws.Chan():
		if r.WatchID != id || len(r.Events) != 0 || r.Revision != s.Rev() {
			t.Fatalf("progress: %+v (store at %d)", r, s.Rev())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no progress response")
	}
	if _, err := ws.Watch(nil, nil, 0); err == nil {
		t.Fatal("watch of an empty key")
	}
	ws.Close()
	if _, err := ws.Watch([]byte("a"), nil, 0); err == nil {
		t.Fatal("watch on a closed stream")
	}
	// Closing the store closes its streams.
	ws = s.NewWatchStream()
	s.Close()
	if _, ok := <-ws.Chan(); ok {
		t.Fatal("stream open after the store closed")
	}
}
