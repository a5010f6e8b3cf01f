package mvcc

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverdb/quiver"
)

// EventType says what an Event did.
type EventType int

const (
	EventPut EventType = iota
	EventDelete
)

// Event is one change a watcher sees. A put's KV is the key as written; a
// delete's KV holds the key and ModRevision, the revision of the delete.
// Its byte slices are shared: do not modify them.
type Event struct {
	Type EventType
	KV   KeyValue
}

// WatchID names a watcher in its stream.
type WatchID int64

// WatchResponse is what a WatchStream delivers.
type WatchResponse struct {
	WatchID WatchID
	// Events, in revision order.
	Events []Event
	// Revision is the store's revision when the response was made. A
	// response without events is a progress notification: the watcher has
	// seen everything up to Revision.
	Revision int64
	// CompactRevision is set when the watcher's next revision was
	// compacted before it could be delivered: the watcher is canceled, and
	// no events are lost silently.
	CompactRevision int64
}

// ErrWatchStreamClosed: Watch on a closed stream.
var ErrWatchStreamClosed = errors.New("mvcc: watch stream closed")

// WatchStream multiplexes watchers onto one channel, as etcd's: a client
// with many watchers pays for one channel, not one each.
type WatchStream struct {
	s      *Store
	ch     chan WatchResponse
	nextID WatchID
	ws     map[WatchID]*watcher // guarded by the hub's lock
	closed bool                 // guarded by the hub's lock
}

// watcher is one watch: keys [key, end) (see Range), from revision next on.
type watcher struct {
	id       WatchID
	stream   *WatchStream
	key, end []byte
	// next is the first revision not delivered yet. A synced watcher gets
	// events as batches commit; an unsynced one is caught up from the
	// engine by the hub's goroutine.
	next   int64
	synced bool
}

func (w *watcher) matches(key []byte) bool { return inRange(key, w.key, w.end) }

// hub routes committed events to watchers.
type hub struct {
	s        *Store
	mu       sync.Mutex
	rev      int64                 // the last revision notified
	single   map[string][]*watcher // watchers of one key
	ranges   map[*watcher]struct{} // watchers of a range
	unsynced map[*watcher]struct{}
	streams  map[*WatchStream]struct{} // nil once the store is closed
	count    atomic.Int64              // watchers, for a cheap check in notify
	behind   atomic.Int64              // times a watcher fell behind a full stream
	kick     chan struct{}
	quit     chan struct{}
	done     chan struct{}
}

// catchUpChunk bounds the revisions one catch-up read scans, and
// retryInterval how soon a watcher whose stream was full is tried again.
const (
	catchUpChunk  = 1000
	retryInterval = 10 * time.Millisecond
)

func (h *hub) init(s *Store, rev int64) {
	h.s, h.rev = s, rev
	h.single, h.ranges, h.unsynced = map[string][]*watcher{}, map[*watcher]struct{}{}, map[*watcher]struct{}{}
	h.streams = map[*WatchStream]struct{}{}
	h.kick, h.quit, h.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go h.loop()
}

func (h *hub) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// NewWatchStream returns a new stream; close it when done. The stream of
// a closed store is closed.
func (s *Store) NewWatchStream() *WatchStream {
	ws := &WatchStream{s: s, ch: make(chan WatchResponse, 128), ws: map[WatchID]*watcher{}}
	h := &s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams == nil {
		ws.closeLocked()
	} else {
		h.streams[ws] = struct{}{}
	}
	return ws
}

// Chan is where the stream's responses arrive. It is closed by Close (of
// the stream or of the store).
func (ws *WatchStream) Chan() <-chan WatchResponse { return ws.ch }

// Watch watches keys [key, end) (see Range for end) from revision
// startRev on; 0 means from the next revision. A startRev already
// committed is caught up from the store's history first; events come in
// revision order, none lost or repeated. If startRev is below the
// compacted revision, the watcher gets one response with CompactRevision
// set and is canceled.
func (ws *WatchStream) Watch(key, end []byte, startRev int64) (WatchID, error) {
	if err := checkRange(key, end); err != nil {
		return 0, err
	}
	h := &ws.s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if ws.closed {
		return 0, ErrWatchStreamClosed
	}
	ws.nextID++
	w := &watcher{id: ws.nextID, stream: ws, key: bytes.Clone(key), end: bytes.Clone(end), next: startRev}
	if end != nil && len(end) == 0 {
		w.end = []byte{}
	}
	if startRev <= 0 || startRev > h.rev {
		w.next = max(startRev, h.rev+1)
		w.synced = true
	} else {
		h.unsynced[w] = struct{}{}
		h.poke()
	}
	ws.ws[w.id] = w
	if w.end == nil {
		h.single[string(w.key)] = append(h.single[string(w.key)], w)
	} else {
		h.ranges[w] = struct{}{}
	}
	h.count.Add(1)
	return w.id, nil
}

// Cancel ends watcher id; responses already queued may still arrive.
func (ws *WatchStream) Cancel(id WatchID) {
	h := &ws.s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := ws.ws[id]; w != nil {
		h.remove(w)
	}
}

// RequestProgress asks for a progress notification of watcher id: a
// response without events giving the revision it has seen everything up
// to. A watcher still catching up gets none (its events will come).
func (ws *WatchStream) RequestProgress(id WatchID) {
	h := &ws.s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := ws.ws[id]; w != nil && w.synced && !ws.closed {
		select {
		case ws.ch <- WatchResponse{WatchID: id, Revision: h.rev}:
		default: // a full stream has events coming anyway
		}
	}
}

// Close cancels the stream's watchers and closes its channel.
func (ws *WatchStream) Close() {
	h := &ws.s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	ws.closeLocked()
}

func (ws *WatchStream) closeLocked() {
	if ws.closed {
		return
	}
	for _, w := range ws.ws {
		ws.s.hub.remove(w)
	}
	ws.closed = true
	close(ws.ch)
	delete(ws.s.hub.streams, ws)
}

// remove unregisters w. h.mu held.
func (h *hub) remove(w *watcher) {
	if _, ok := w.stream.ws[w.id]; !ok {
		return
	}
	delete(w.stream.ws, w.id)
	if w.end == nil {
		ws := h.single[string(w.key)]
		for i, x := range ws {
			if x == w {
				ws[i] = ws[len(ws)-1]
				ws[len(ws)-1] = nil
				ws = ws[:len(ws)-1]
				break
			}
		}
		if len(ws) == 0 {
			delete(h.single, string(w.key))
		} else {
			h.single[string(w.key)] = ws
		}
	} else {
		delete(h.ranges, w)
	}
	delete(h.unsynced, w)
	h.count.Add(-1)
}

// notify delivers the events of a committed batch, revisions up to top,
// to the synced watchers. Called by the committer, in commit order.
func (h *hub) notify(writes []pending, top int64) {
	if h.count.Load() == 0 {
		// No watchers: skip decoding the events, unless one registered
		// since the load (count changes under h.mu); it starts after the
		// old h.rev, so it needs these events.
		h.mu.Lock()
		if h.count.Load() == 0 {
			h.rev = top
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
	evs := make([]Event, 0, len(writes))
	for i := range writes {
		r, _ := revOfKey(writes[i].key[:])
		if ev, ok := eventOf(writes[i].rec, r); ok {
			evs = append(evs, ev)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = top
	per := map[*watcher][]Event{}
	var order []*watcher
	add := func(w *watcher, ev Event) {
		if !w.synced || ev.KV.ModRevision < w.next {
			return
		}
		if _, seen := per[w]; !seen {
			order = append(order, w)
		}
		per[w] = append(per[w], ev)
	}
	for _, ev := range evs {
		for _, w := range h.single[string(ev.KV.Key)] {
			add(w, ev)
		}
		for w := range h.ranges {
			if w.matches(ev.KV.Key) {
				add(w, ev)
			}
		}
	}
	for _, w := range order {
		events := per[w]
		select {
		case w.stream.ch <- WatchResponse{WatchID: w.id, Events: events, Revision: top}:
			w.next = top + 1
		default:
			// A slow consumer: catch it up from the engine later.
			w.synced, w.next = false, events[0].KV.ModRevision
			h.unsynced[w] = struct{}{}
			h.behind.Add(1)
			h.poke()
		}
	}
}

// eventOf decodes the record of revision r into an event.
func eventOf(rec []byte, r Revision) (Event, bool) {
	kv, tomb, err := decodeRecord(rec, r)
	if err != nil {
		return Event{}, false
	}
	if tomb {
		return Event{Type: EventDelete, KV: KeyValue{Key: kv.Key, ModRevision: r.Main}}, true
	}
	kv.Value = nonNil(kv.Value)
	return Event{Type: EventPut, KV: kv}, true
}

// loop catches up unsynced watchers from the engine.
func (h *hub) loop() {
	defer close(h.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-h.kick:
		case <-retry.C:
		}
		h.mu.Lock()
		ws := make([]*watcher, 0, len(h.unsynced))
		for w := range h.unsynced {
			ws = append(ws, w)
		}
		h.mu.Unlock()
		blocked := false
		for _, w := range ws {
			if !h.catchUp(w) {
				blocked = true
			}
		}
		h.mu.Lock()
		if len(h.unsynced) > 0 {
			if blocked {
				retry.Reset(retryInterval)
			} else {
				h.poke()
			}
		}
		h.mu.Unlock()
	}
}

// catchUp sends w the events of up to catchUpChunk revisions from its next
// one, read from the engine. It returns false if w's stream was full.
func (h *hub) catchUp(w *watcher) bool {
	s := h.s
	h.mu.Lock()
	next := w.next
	_, live := w.stream.ws[w.id]
	h.mu.Unlock()
	if !live {
		return true
	}
	var events []Event
	last := next - 1
	compacted := int64(0)
	err := s.db.View(func(tx *quiver.Tx) error {
		// Checked after the snapshot is taken: a compaction that deletes
		// revisions from next on has raised the compacted revision before
		// its first deletion commits.
		if c := s.CompactRev(); next < c {
			compacted = c
			return nil
		}
		c := tx.Bucket(revBucket).Cursor()
		var kb [revKeyLen]byte
		revs := 0
		for k, v := c.Seek(putRevKey(kb[:], Revision{Main: next})); k != nil; k, v = c.Next() {
			r, ok := revOfKey(k)
			if !ok {
				return errBadRecord
			}
			if r.Main != last {
				if revs == catchUpChunk {
					break
				}
				revs++
				last = r.Main
			}
			ev, ok := eventOf(bytes.Clone(v), r)
			if ok && w.matches(ev.KV.Key) {
				events = append(events, ev)
			}
		}
		return nil
	})
	if err != nil {
		return true // the engine failed; the store reports it elsewhere
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, live := w.stream.ws[w.id]; !live || w.stream.closed {
		return true
	}
	if compacted > 0 {
		select {
		case w.stream.ch <- WatchResponse{WatchID: w.id, Revision: h.rev, CompactRevision: compacted}:
			h.remove(w)
			return true
		default:
			return false
		}
	}
	if len(events) > 0 {
		select {
		case w.stream.ch <- WatchResponse{WatchID: w.id, Events: events, Revision: max(h.rev, last)}:
		default:
			return false
		}
	}
	w.next = last + 1
	if w.next > h.rev {
		w.synced = true
		delete(h.unsynced, w)
	}
	return true
}

// stop ends the hub's goroutine and closes every stream.
func (h *hub) stop() {
	close(h.quit)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for ws := range h.streams {
		ws.closeLocked()
	}
	h.streams = nil
}
