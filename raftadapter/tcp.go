package raftadapter

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The TCP transport's wire format. A connection carries messages one way,
// from the dialing node to the listening one. It opens with a header:
//
//	magic "QRAF" | version (1 byte) | kind (1) | cluster id (8) | sender id (8)
//
// A connection of kind 'M' then carries frames, each a 4-byte big-endian
// length and a protobuf-encoded raftpb.Message of that length. A
// connection of kind 'S' carries one snapshot, on its own stream so that
// it never holds up the messages: a frame with the MsgSnap, then the
// database image in chunks (a 4-byte length, at most the frame limit, and
// the bytes), a zero length, and the image's 64-bit xxhash; the receiver
// answers one status byte (0: handled) and a 2-byte length and message
// explaining a refusal. A connection of kind 'Q' carries one request of
// Ask, a frame, and its answer: a status byte and a frame. A header of another cluster or version, a frame
// longer than the maximum, a message that does not decode or is not
// addressed to the receiver, a snapshot whose hash does not match closes
// that connection (the error is logged); the transport goes on. The cluster id is not authentication: raft
// trusts its peers (it stops the process on a well-formed message that
// contradicts its log), so the peer port must be reachable by members
// only (loopback, a private network, or TLS with client certificates).
const (
	tcpMagic   = "QRAF"
	tcpVersion = 2
	headerSize = 4 + 1 + 1 + 8 + 8

	kindMessages = 'M'
	kindSnapshot = 'S'
	kindQuery    = 'Q' // one request and its answer (Asker)

	snapshotChunk = 1 << 20
)

// DefaultMaxFrame is the default largest message a TCPTransport accepts.
const DefaultMaxFrame = 16 << 20

// TCPConfig configures a TCPTransport.
type TCPConfig struct {
	// ID is this node's raft id; ClusterID must be the same on every
	// member (a connection from another cluster is refused).
	ID, ClusterID uint64
	// Listen is the address to accept peers on, e.g. "127.0.0.1:2380"
	// (":0" style addresses pick a free port; see Addr).
	Listen string
	// Peers maps the other members' ids to their addresses.
	Peers map[uint64]string
	// MaxFrame bounds one message (default DefaultMaxFrame); it must
	// exceed the nodes' largest message (MemoryBudget/64 by default).
	MaxFrame int
	// DialTimeout and WriteTimeout bound a connection attempt and one
	// write (defaults 1 s and 5 s); IdleTimeout closes a connection that
	// receives nothing for that long (default 30 s; raft's heartbeats keep
	// a live one busy).
	DialTimeout, WriteTimeout, IdleTimeout time.Duration
	// SnapshotTimeout bounds how long a sender waits for the receiver to
	// verify and install a snapshot once it has it all (default 5 min).
	SnapshotTimeout time.Duration
	// Logger receives the transport's errors; nil discards them.
	Logger raft.Logger
	// TLS, if set, secures every connection both ways: the listener
	// serves with it (set ClientAuth and ClientCAs to demand a peer's
	// certificate) and dials use it as a client (RootCAs verify the
	// peer; ServerName defaults to the host dialed).
	TLS *tls.Config
}

// TCPTransport is the Transport of a real cluster: raft messages over TCP.
type TCPTransport struct {
	cfg TCPConfig
	ln  net.Listener

	mu     sync.Mutex
	node   Receiver
	ask    AskHandler
	peers  map[uint64]*peer
	conns  map[net.Conn]struct{} // accepted, for Close
	closed bool
	wg     sync.WaitGroup

	rejected atomic.Int64 // connections closed for bad input
}

// peer is the outgoing side towards one member: a bounded queue drained
// by one goroutine that keeps a connection.
type peer struct {
	id    uint64
	addr  string
	queue chan *pb.Message
	stop  chan struct{}

	mu   sync.Mutex
	conn net.Conn // the open connection, closed by stopPeer to end a blocked write
}

// stopPeer stops p's sending goroutine, ending a write it is blocked in.
// The transport's mutex is held.
func stopPeer(p *peer) {
	close(p.stop)
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Close()
	}
	p.mu.Unlock()
}

var _ Transport = (*TCPTransport)(nil)

// NewTCPTransport listens on cfg.Listen and returns the transport. Attach
// a node to deliver what it receives.
func NewTCPTransport(cfg TCPConfig) (*TCPTransport, error) {
	if cfg.ID == 0 {
		return nil, errors.New("raftadapter: TCPConfig needs an ID")
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.SnapshotTimeout <= 0 {
		cfg.SnapshotTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	t := &TCPTransport{cfg: cfg, ln: ln, peers: map[uint64]*peer{}, conns: map[net.Conn]struct{}{}}
	for id, addr := range cfg.Peers {
		t.AddPeer(id, addr)
	}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// dial connects to a peer, with TLS if the transport has it.
func (t *TCPTransport) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	if t.cfg.TLS == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	cfg := t.cfg.TLS.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg.ServerName = host
	}
	td := tls.Dialer{NetDialer: &d, Config: cfg}
	return td.DialContext(ctx, "tcp", addr)
}

// Addr returns the address the transport listens on.
func (t *TCPTransport) Addr() string { return t.ln.Addr().String() }

// Receiver takes the messages a transport receives: a Node, or a raft
// loop of one's own.
type Receiver interface {
	Step(m *pb.Message) error
	StepSnapshot(ctx context.Context, m *pb.Message, image io.Reader) error
}

var _ Receiver = (*Node)(nil)

// Attach makes n the receiver of incoming messages.
func (t *TCPTransport) Attach(n Receiver) {
	t.mu.Lock()
	t.node = n
	t.mu.Unlock()
}

// Rejected returns the number of connections closed for bad input.
func (t *TCPTransport) Rejected() int64 { return t.rejected.Load() }

// AddPeer adds (or moves) member id at addr.
func (t *TCPTransport) AddPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if p := t.peers[id]; p != nil {
		if p.addr == addr {
			return
		}
		stopPeer(p)
	}
	p := &peer{id: id, addr: addr, queue: make(chan *pb.Message, 1024), stop: make(chan struct{})}
	t.peers[id] = p
	t.wg.Add(1)
	go t.sendLoop(p)
}

// RemovePeer stops sending to member id.
func (t *TCPTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		stopPeer(p)
		delete(t.peers, id)
	}
}

// Send implements Transport: each message is queued for its peer; a full
// queue or an unknown peer drops it (raft retries).
func (t *TCPTransport) Send(msgs []*pb.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		p := t.peers[m.GetTo()]
		if p == nil {
			continue
		}
		select {
		case p.queue <- m:
		default:
		}
	}
}

// Close stops the transport: the listener, every connection and the
// sending goroutines.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for id, p := range t.peers {
		stopPeer(p)
		delete(t.peers, id)
	}
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	err := t.ln.Close()
	t.wg.Wait()
	return err
}

func (t *TCPTransport) sendLoop(p *peer) {
	defer t.wg.Done()
	var conn net.Conn
	var w *bufio.Writer
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	backoff := 10 * time.Millisecond
	for {
		var m *pb.Message
		select {
		case <-p.stop:
			return
		case m = <-p.queue:
		}
		select {
		case <-p.stop: // both were ready: stopping wins
			return
		default:
		}
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), t.cfg.DialTimeout)
			c, err := t.dial(ctx, p.addr)
			cancel()
			if err != nil {
				// Drop the message; raft resends. Back off a little so a
				// dead peer costs no busy loop.
				select {
				case <-p.stop:
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			backoff = 10 * time.Millisecond
			p.mu.Lock()
			select {
			case <-p.stop:
				p.mu.Unlock()
				c.Close()
				return
			default:
			}
			p.conn = c
			p.mu.Unlock()
			conn, w = c, bufio.NewWriterSize(c, 64<<10)
			_, _ = w.Write(t.header(kindMessages))
		}
		err := t.writeFrame(conn, w, m)
		// Write what else is queued in the same flush.
		for err == nil && len(p.queue) > 0 {
			err = t.writeFrame(conn, w, <-p.queue)
		}
		if err == nil {
			_ = conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
			err = w.Flush()
		}
		if err != nil {
			t.cfg.Logger.Warningf("raftadapter: sending to %d at %s: %v", p.id, p.addr, err)
			conn.Close()
			conn = nil
		}
	}
}

// header is the header of a connection of kind.
func (t *TCPTransport) header(kind byte) []byte {
	hdr := make([]byte, 0, headerSize)
	hdr = append(hdr, tcpMagic...)
	hdr = append(hdr, tcpVersion, kind)
	hdr = binary.BigEndian.AppendUint64(hdr, t.cfg.ClusterID)
	return binary.BigEndian.AppendUint64(hdr, t.cfg.ID)
}

func (t *TCPTransport) writeFrame(conn net.Conn, w *bufio.Writer, m *pb.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > t.cfg.MaxFrame {
		return fmt.Errorf("a %d-byte message exceeds the %d-byte frame limit", len(b), t.cfg.MaxFrame)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b)))
	if _, err := w.Write(l[:]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (t *TCPTransport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return // closed
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serve(c)
	}
}

// serve reads one incoming connection until it ends or breaks the rules.
func (t *TCPTransport) serve(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
		c.Close()
	}()
	if err := t.read(c); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.rejected.Add(1)
		}
		t.cfg.Logger.Warningf("raftadapter: connection from %s closed: %v", c.RemoteAddr(), err)
	}
}

// read reads one connection until it ends (io.EOF) or fails; it never
// returns nil.
func (t *TCPTransport) read(c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	_ = c.SetReadDeadline(time.Now().Add(t.cfg.IdleTimeout))
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("a short header: %w", err)
		}
		return err
	}
	if string(hdr[:4]) != tcpMagic || hdr[4] != tcpVersion {
		return fmt.Errorf("not a quiver raft connection (header %q)", hdr[:5])
	}
	kind := hdr[5]
	if kind != kindMessages && kind != kindSnapshot && kind != kindQuery {
		return fmt.Errorf("a connection of unknown kind %q", kind)
	}
	if cid := binary.BigEndian.Uint64(hdr[6:]); cid != t.cfg.ClusterID {
		return fmt.Errorf("cluster id %x, this cluster is %x", cid, t.cfg.ClusterID)
	}
	from := binary.BigEndian.Uint64(hdr[14:])
	if kind == kindQuery {
		return t.answerQuery(c, r, from)
	}
	var frame bytes.Buffer
	for {
		m, err := t.readMessage(c, r, from, &frame)
		if err != nil {
			return err
		}
		if kind == kindSnapshot {
			return t.receiveSnapshot(c, r, m)
		}
		if m.GetType() == pb.MessageType_MsgSnap {
			return fmt.Errorf("a snapshot from %d without its stream", from)
		}
		if node := t.attached(); node != nil {
			_ = node.Step(m)
		}
	}
}

func (t *TCPTransport) attached() Receiver {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.node
}

// readMessage reads one frame from r, a connection of from, into frame and
// decodes it.
func (t *TCPTransport) readMessage(c net.Conn, r *bufio.Reader, from uint64, frame *bytes.Buffer) (*pb.Message, error) {
	_ = c.SetReadDeadline(time.Now().Add(t.cfg.IdleTimeout))
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("a truncated frame length: %w", err)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(l[:]))
	if n > t.cfg.MaxFrame {
		return nil, fmt.Errorf("a %d-byte frame from %d exceeds the %d-byte limit", n, from, t.cfg.MaxFrame)
	}
	// The buffer grows with the bytes that arrive, not with the length a
	// peer announces.
	frame.Reset()
	if _, err := io.CopyN(frame, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("a truncated %d-byte frame from %d: %w", n, from, err)
	}
	m := &pb.Message{}
	if err := proto.Unmarshal(frame.Bytes(), m); err != nil {
		return nil, fmt.Errorf("a frame from %d that does not decode: %w", from, err)
	}
	if m.GetTo() != t.cfg.ID || m.GetFrom() != from {
		return nil, fmt.Errorf("a message from %d to %d on the connection of %d to %d", m.GetFrom(), m.GetTo(), from, t.cfg.ID)
	}
	return m, nil
}
