package raftadapter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Asker is a transport that also carries requests between members besides
// raft's messages: what a state machine must ask the leader rather than
// the log (etcd's followers ask the leader a lease's time to live). Both
// transports of this package are Askers.
type Asker interface {
	// Ask sends req to member to and returns its answer, or the error
	// its handler gave.
	Ask(ctx context.Context, to uint64, req []byte) ([]byte, error)
	// HandleAsk sets what answers the other members' requests.
	HandleAsk(fn AskHandler)
}

// AskHandler answers a request from member from.
type AskHandler func(ctx context.Context, from uint64, req []byte) ([]byte, error)

// ErrNoHandler: the member asked has no AskHandler.
var ErrNoHandler = errors.New("raftadapter: the member asked answers no requests")

// askTimeout bounds how long a handler may take to answer a request that
// came over TCP.
const askTimeout = 10 * time.Second

var (
	_ Asker = (*TCPTransport)(nil)
	_ Asker = endpoint{}
)

// HandleAsk implements Asker.
func (t *TCPTransport) HandleAsk(fn AskHandler) {
	t.mu.Lock()
	t.ask = fn
	t.mu.Unlock()
}

// Ask implements Asker: one connection of kind 'Q' per request, carrying
// a frame of the request; the answer is a status byte (0: the answer
// follows, 1: an error message follows) and a frame.
func (t *TCPTransport) Ask(ctx context.Context, to uint64, req []byte) ([]byte, error) {
	if len(req) > t.cfg.MaxFrame {
		return nil, fmt.Errorf("raftadapter: a %d-byte request exceeds the %d-byte frame limit", len(req), t.cfg.MaxFrame)
	}
	t.mu.Lock()
	p, closed := t.peers[to], t.closed
	t.mu.Unlock()
	if closed {
		return nil, errors.New("raftadapter: the transport is closed")
	}
	if p == nil {
		return nil, fmt.Errorf("raftadapter: no address for node %d", to)
	}
	c, err := t.dial(ctx, p.addr)
	if err != nil {
		return nil, fmt.Errorf("raftadapter: asking %d: %w", to, err)
	}
	if !t.track(c) {
		c.Close()
		return nil, errors.New("raftadapter: the transport is closed")
	}
	defer t.untrack(c)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(askTimeout + t.cfg.WriteTimeout))
	}
	w := bufio.NewWriter(c)
	_, _ = w.Write(t.header(kindQuery))
	_, _ = w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(req))))
	_, _ = w.Write(req)
	if err := w.Flush(); err != nil {
		return nil, t.askErr(ctx, to, err)
	}
	r := bufio.NewReader(c)
	var status [1]byte
	if _, err := io.ReadFull(r, status[:]); err != nil {
		return nil, t.askErr(ctx, to, err)
	}
	body, err := t.readQueryFrame(r)
	if err != nil {
		return nil, t.askErr(ctx, to, err)
	}
	if status[0] != 0 {
		return nil, fmt.Errorf("raftadapter: node %d: %s", to, body)
	}
	return body, nil
}

func (t *TCPTransport) askErr(ctx context.Context, to uint64, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("raftadapter: asking %d: %w", to, err)
}

// readQueryFrame reads a 4-byte length and that many bytes, at most the
// frame limit.
func (t *TCPTransport) readQueryFrame(r *bufio.Reader) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(l[:]))
	if n > t.cfg.MaxFrame {
		return nil, fmt.Errorf("a %d-byte frame exceeds the %d-byte limit", n, t.cfg.MaxFrame)
	}
	// Grown as the bytes arrive, not by what the length announces.
	var buf []byte
	chunk := make([]byte, min(n, 64<<10))
	for len(buf) < n {
		k, err := io.ReadFull(r, chunk[:min(len(chunk), n-len(buf))])
		buf = append(buf, chunk[:k]...)
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// answerQuery reads one request from a connection of kind 'Q' and writes
// the handler's answer.
func (t *TCPTransport) answerQuery(c net.Conn, r *bufio.Reader, from uint64) error {
	req, err := t.readQueryFrame(r)
	if err != nil {
		return fmt.Errorf("a request from %d: %w", from, err)
	}
	t.mu.Lock()
	fn := t.ask
	t.mu.Unlock()
	var resp []byte
	if fn == nil {
		err = ErrNoHandler
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
		resp, err = fn(ctx, from, req)
		cancel()
	}
	status := byte(0)
	if err != nil {
		status, resp = 1, []byte(err.Error())
	}
	_ = c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	w := bufio.NewWriter(c)
	_ = w.WriteByte(status)
	_, _ = w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(resp))))
	_, _ = w.Write(resp)
	if err := w.Flush(); err != nil {
		return err
	}
	return io.EOF // one request a connection: done
}

// HandleAsk implements Asker.
func (e endpoint) HandleAsk(fn AskHandler) {
	e.nw.mu.Lock()
	if e.nw.ask == nil {
		e.nw.ask = map[uint64]AskHandler{}
	}
	e.nw.ask[e.from] = fn
	e.nw.mu.Unlock()
}

// Ask implements Asker: the handler of member to answers, unless a
// partition separates the members or to is detached.
func (e endpoint) Ask(ctx context.Context, to uint64, req []byte) ([]byte, error) {
	nw := e.nw
	nw.mu.Lock()
	fn, attached := nw.ask[to], nw.nodes[to] != nil
	cut := nw.group[e.from] != nw.group[to]
	nw.mu.Unlock()
	switch {
	case !attached:
		return nil, fmt.Errorf("raftadapter: node %d is not on the network", to)
	case cut:
		return nil, fmt.Errorf("raftadapter: node %d is partitioned from %d", to, e.from)
	case fn == nil:
		return nil, ErrNoHandler
	}
	return fn(ctx, e.from, append([]byte(nil), req...))
}
