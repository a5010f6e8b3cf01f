package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// The client port serves gRPC and plain HTTP (/health, /metrics) on one
// listener, as etcd's does. Without TLS, a connection that opens with
// HTTP/2's preface goes to gRPC's own HTTP/2 transport, much faster than
// gRPC under net/http (grpc.Server.ServeHTTP); others go to the HTTP
// server. With TLS every connection goes to the HTTP server, which hands
// gRPC requests to grpc.Server.ServeHTTP, as etcd's does: HTTP/2 clients
// of /health and /metrics (Prometheus, curl) negotiate h2 too, and which
// a connection carries shows only in its requests.

// http2Preface opens every HTTP/2 connection with prior knowledge (h2c).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// sniffTimeout bounds how long a new connection may take to show what it
// speaks (its TLS handshake, or its first bytes).
const sniffTimeout = 10 * time.Second

// splitListener accepts connections on ln and hands each to grpcL or
// httpL once it has shown what it speaks. With tlsCfg, connections are
// TLS, offered h2 and http/1.1.
type splitListener struct {
	ln           net.Listener
	tlsCfg       *tls.Config
	grpcL, httpL *chanListener
	once         sync.Once
	done         chan struct{}
	wg           sync.WaitGroup

	mu       sync.Mutex
	sniffing map[net.Conn]struct{} // accepted, not yet handed on
}

func newSplitListener(ln net.Listener, tlsCfg *tls.Config) *splitListener {
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.NextProtos = []string{"h2", "http/1.1"}
	}
	s := &splitListener{ln: ln, tlsCfg: tlsCfg, done: make(chan struct{}), sniffing: map[net.Conn]struct{}{}}
	s.grpcL = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: s.done, close: s.Close}
	s.httpL = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: s.done, close: s.Close}
	s.wg.Add(1)
	go s.accept()
	return s
}

// accept accepts until the listener is closed. Other errors (a process
// out of descriptors) are waited out, with a growing pause, as net/http
// and gRPC do: they must not take the port down.
func (s *splitListener) accept() {
	defer s.wg.Done()
	pause := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				s.shut()
				return
			}
			select {
			case <-s.done:
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 5 * time.Millisecond
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.sniffing[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.route(c)
		}()
	}
}

// route finds what c speaks and hands it on; a connection that shows
// nothing in time, or fails its handshake, is closed.
func (s *splitListener) route(raw net.Conn) {
	c := raw
	handOn := func() {
		s.mu.Lock()
		delete(s.sniffing, raw)
		s.mu.Unlock()
	}
	_ = c.SetDeadline(time.Now().Add(sniffTimeout))
	var grpc bool
	if s.tlsCfg != nil {
		tc := tls.Server(c, s.tlsCfg)
		ctx, cancel := context.WithTimeout(context.Background(), sniffTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			handOn()
			c.Close()
			return
		}
		c = tc
	} else {
		// Byte by byte: a request that differs from the preface early
		// (any HTTP/1 request) is routed at once, however short.
		br := bufio.NewReaderSize(c, len(http2Preface))
		grpc = true
		for n := 1; n <= len(http2Preface); n++ {
			head, err := br.Peek(n)
			if !bytes.HasPrefix([]byte(http2Preface), head) {
				grpc = false
				break
			}
			if err != nil {
				if len(head) == 0 {
					handOn()
					c.Close()
					return
				}
				grpc = false // a prefix of the preface, then the end
				break
			}
		}
		c = &peekedConn{Conn: c, r: br}
	}
	_ = c.SetDeadline(time.Time{})
	handOn()
	to := s.httpL
	if grpc {
		to = s.grpcL
	}
	select {
	case to.conns <- c:
	case <-s.done:
		c.Close()
	}
}

// Close stops accepting and closes the connections not yet handed on
// (those handed on are their servers'), then waits for its goroutines.
func (s *splitListener) Close() error {
	err := s.shut()
	s.wg.Wait()
	return err
}

// shut is Close without the wait (for the accepting goroutine itself).
func (s *splitListener) shut() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		close(s.done)
		for c := range s.sniffing {
			c.Close()
		}
		s.mu.Unlock()
		err = s.ln.Close()
	})
	return err
}

// chanListener is one side of a splitListener.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	close func() error
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { return l.close() }
func (l *chanListener) Addr() net.Addr { return l.addr }

// peekedConn reads first what was peeked of it.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
