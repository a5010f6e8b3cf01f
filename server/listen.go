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
}

func newSplitListener(ln net.Listener, tlsCfg *tls.Config) *splitListener {
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
		tlsCfg.NextProtos = []string{"h2", "http/1.1"}
	}
	s := &splitListener{ln: ln, tlsCfg: tlsCfg, done: make(chan struct{})}
	s.grpcL = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: s.done, close: s.Close}
	s.httpL = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: s.done, close: s.Close}
	s.wg.Add(1)
	go s.accept()
	return s
}

func (s *splitListener) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			s.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.route(c)
		}()
	}
}

// route finds what c speaks and hands it on; a connection that shows
// nothing in time, or fails its handshake, is closed.
func (s *splitListener) route(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(sniffTimeout))
	var grpc bool
	if s.tlsCfg != nil {
		tc := tls.Server(c, s.tlsCfg)
		ctx, cancel := context.WithTimeout(context.Background(), sniffTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.Close()
			return
		}
		c = tc
	} else {
		br := bufio.NewReaderSize(c, len(http2Preface))
		head, err := br.Peek(len(http2Preface))
		if err != nil && len(head) == 0 {
			c.Close()
			return
		}
		grpc = bytes.Equal(head, []byte(http2Preface))
		c = &peekedConn{Conn: c, r: br}
	}
	_ = c.SetDeadline(time.Time{})
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

// Close stops accepting; connections already handed on are their
// servers'.
func (s *splitListener) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
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
