package server

import (
	"fmt"
	"time"

	"github.com/quiverdb/quiver/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// DefaultProgressNotifyInterval is etcd's default interval of progress
// notifications to watchers that asked for them.
const DefaultProgressNotifyInterval = 10 * time.Minute

// watchServer is etcd's Watch service: each gRPC stream is one mvcc
// WatchStream. One goroutine reads the client's requests; another does
// everything else (creating and canceling watchers, sending their events),
// so that a watcher's "created" always goes out before its events.
type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// watcherInfo is what the stream remembers of a watcher.
type watcherInfo struct {
	clientID       int64
	prevKV         bool
	noPut, noDel   bool
	fragment       bool
	progressNotify bool
}

func (w *watchServer) Watch(stream pb.Watch_WatchServer) error {
	s := w.s
	ws := s.store.NewWatchStream()
	defer ws.Close()
	reqc := make(chan *pb.WatchRequest, 16)
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reqc <- req:
			case <-stream.Context().Done():
				return
			}
		}
	}()
	watchers := map[mvcc.WatchID]*watcherInfo{}
	byClient := map[int64]mvcc.WatchID{}
	var nextClientID int64
	ticker := time.NewTicker(s.cfg.ProgressNotifyInterval)
	defer ticker.Stop()
	send := func(r *pb.WatchResponse) error {
		if r.Header == nil {
			r.Header = s.header(s.store.Rev())
		}
		return stream.Send(r)
	}
	for {
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case err := <-errc:
			return err // io.EOF: the client closed its side
		case <-ticker.C:
			for id, wi := range watchers {
				if wi.progressNotify {
					ws.RequestProgress(id)
				}
			}
		case req := <-reqc:
			switch {
			case req.GetCreateRequest() != nil:
				cr := req.GetCreateRequest()
				// A watch from the current revision starts after every
				// write answered before it.
				if err := s.fence(stream.Context()); err != nil {
					return err
				}
				clientID := cr.WatchId
				if clientID == 0 { // AUTO_WATCH_ID: the server picks
					for {
						nextClientID++
						if _, taken := byClient[nextClientID]; !taken {
							break
						}
					}
					clientID = nextClientID
				}
				fail := func(reason string) error {
					return send(&pb.WatchResponse{WatchId: clientID, Created: true, Canceled: true, CancelReason: reason})
				}
				if _, taken := byClient[clientID]; taken {
					// Not under the live watcher's id: the client would
					// take it as that one's end.
					if err := send(&pb.WatchResponse{WatchId: -1, Created: true, Canceled: true, CancelReason: fmt.Sprintf("watch id %d is in use", clientID)}); err != nil {
						return err
					}
					continue
				}
				if cr.StartRevision < 0 {
					if err := fail(fmt.Sprintf("start revision %d is negative", cr.StartRevision)); err != nil {
						return err
					}
					continue
				}
				id, err := ws.Watch(cr.Key, rangeEnd(cr.Key, cr.RangeEnd), cr.StartRevision)
				if err != nil {
					if err := fail(toGRPC(err).Error()); err != nil {
						return err
					}
					continue
				}
				wi := &watcherInfo{clientID: clientID, prevKV: cr.PrevKv, fragment: cr.Fragment, progressNotify: cr.ProgressNotify}
				for _, f := range cr.Filters {
					switch f {
					case pb.WatchCreateRequest_NOPUT:
						wi.noPut = true
					case pb.WatchCreateRequest_NODELETE:
						wi.noDel = true
					}
				}
				watchers[id], byClient[clientID] = wi, id
				if err := send(&pb.WatchResponse{WatchId: clientID, Created: true}); err != nil {
					return err
				}
			case req.GetCancelRequest() != nil:
				cid := req.GetCancelRequest().WatchId
				id, ok := byClient[cid]
				if !ok {
					continue
				}
				ws.Cancel(id)
				delete(watchers, id)
				delete(byClient, cid)
				if err := send(&pb.WatchResponse{WatchId: cid, Canceled: true}); err != nil {
					return err
				}
			case req.GetProgressRequest() != nil:
				// Each synced watcher gets a progress notification through
				// the stream's channel, after the events it has been sent
				// (a watcher still catching up gets its events instead);
				// a stream without watchers, etcd's answer at once.
				if len(watchers) == 0 {
					if err := send(&pb.WatchResponse{WatchId: -1}); err != nil {
						return err
					}
				}
				for id := range watchers {
					ws.RequestProgress(id)
				}
			}
		case r, ok := <-ws.Chan():
			if !ok {
				return nil
			}
			wi := watchers[r.WatchID]
			if wi == nil {
				continue // canceled meanwhile
			}
			if r.CompactRevision > 0 {
				delete(watchers, r.WatchID)
				delete(byClient, wi.clientID)
				if err := send(&pb.WatchResponse{WatchId: wi.clientID, Canceled: true, CompactRevision: r.CompactRevision, Header: s.header(r.Revision)}); err != nil {
					return err
				}
				continue
			}
			events := s.events(r.Events, wi)
			if len(r.Events) > 0 && len(events) == 0 {
				continue // all filtered away
			}
			for _, out := range fragments(&pb.WatchResponse{WatchId: wi.clientID, Events: events, Header: s.header(r.Revision)}, wi.fragment, s.cfg.MaxRequestBytes) {
				if err := send(out); err != nil {
					return err
				}
			}
		}
	}
}

// events converts a watcher's events, filtered, with their previous
// values when asked (the key at the revision before the event).
func (s *Server) events(evs []mvcc.Event, wi *watcherInfo) []*mvccpb.Event {
	out := make([]*mvccpb.Event, 0, len(evs))
	for _, ev := range evs {
		if ev.Type == mvcc.EventPut && wi.noPut || ev.Type == mvcc.EventDelete && wi.noDel {
			continue
		}
		e := &mvccpb.Event{Kv: kvOf(ev.KV, false)}
		if ev.Type == mvcc.EventDelete {
			e.Type = mvccpb.DELETE
		}
		if wi.prevKV {
			if res, err := s.store.Range(ev.KV.Key, nil, mvcc.RangeOptions{Rev: ev.KV.ModRevision - 1}); err == nil && len(res.KVs) > 0 {
				e.PrevKv = kvOf(res.KVs[0], false)
			}
		}
		out = append(out, e)
	}
	return out
}

// fragments splits r into responses of at most limit bytes when the
// watcher asked for fragments (all but the last marked Fragment), as etcd
// does; otherwise r whole.
func fragments(r *pb.WatchResponse, fragment bool, limit int) []*pb.WatchResponse {
	if !fragment || proto.Size(r) <= limit || len(r.Events) < 2 {
		return []*pb.WatchResponse{r}
	}
	var out []*pb.WatchResponse
	cur := &pb.WatchResponse{WatchId: r.WatchId, Header: r.Header}
	size := proto.Size(cur)
	for _, ev := range r.Events {
		n := proto.Size(ev) + 8
		if len(cur.Events) > 0 && size+n > limit {
			cur.Fragment = true
			out = append(out, cur)
			cur = &pb.WatchResponse{WatchId: r.WatchId, Header: r.Header}
			size = proto.Size(cur)
		}
		cur.Events = append(cur.Events, ev)
		size += n
	}
	return append(out, cur)
}
