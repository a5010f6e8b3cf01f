package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quiverdb/quiver/internal/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// emfileListener returns a temporary accept error (EMFILE, as when the
// process is out of file descriptors) first, then real connections.
type emfileListener struct {
	net.Listener
	once sync.Once
}

func (l *emfileListener) Accept() (net.Conn, error) {
	var first bool
	l.once.Do(func() { first = true })
	if first {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestSplitListenerSurvivesAcceptErrors: an accept error that is not the
// listener's closing (EMFILE: the process out of descriptors, as a client
// opening many connections can cause) is waited out, as http.Server and
// grpc.Server do, not the end of the client port.
func TestSplitListenerSurvivesAcceptErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newSplitListener(&emfileListener{Listener: ln}, nil)
	defer s.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			_, _ = c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	done := make(chan error, 1)
	go func() {
		c, err := s.httpL.Accept()
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("one temporary accept error (EMFILE) closed the client port: Accept: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
	}
}

// TestSplitListenerShortHTTP1Request: an HTTP/1.0 request shorter than
// HTTP/2's preface ("GET / HTTP/1.0\r\n\r\n", 18 bytes) is answered at
// once: the sniffer stops at the first byte that differs from the
// preface, as etcd's cmux does, rather than wait for 24 bytes.
func TestSplitListenerShortHTTP1Request(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newSplitListener(ln, nil)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go hs.Serve(s.httpL)
	defer hs.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("a short HTTP/1.0 request got no answer in %v (%v): it waits for the sniff timeout", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("answer %q after %v", line, time.Since(start))
}

// TestAskAnswerGarbage: answer (the AskHandler) given short, garbage
// or truncated requests returns errors and does not panic.
func TestAskAnswerGarbage(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.servers[0]
	x := ctx(t)
	for s.node.Status().Lead != s.cfg.ID {
		if x.Err() != nil {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := [][]byte{nil, {}, {'T'}, {'X'}, {'T', 0xff}, {'T', 0x08}, {'T', 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}}
	for i := 0; i < 2000; i++ {
		b := make([]byte, 1+rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		b[0] = 'T'
		inputs = append(inputs, b)
	}
	for _, in := range inputs {
		_, _ = s.answer(x, 7, in)
	}
}

// TestAlarmSemantics: under NOSPACE a transaction that only deletes is
// taken (etcd's cost is 0); deactivating an alarm that is not raised
// answers with no alarms; while CORRUPT is raised every KV request is
// refused with etcd's ErrCorrupt, and cleared, writes go on.
func TestAlarmSemantics(t *testing.T) {
	c := newTestCluster(t, 1)
	cli := client(t, c.addrs...)
	x := ctx(t)
	m := pb.NewMaintenanceClient(cli.ActiveConnection())
	must[*clientv3.PutResponse](t)(cli.Put(x, "a", "1"))
	resp, err := m.Alarm(x, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 12345, Alarm: pb.AlarmType_NOSPACE})
	if err != nil || len(resp.Alarms) != 0 {
		t.Fatalf("deactivating an alarm not raised: %v, %v", resp, err)
	}
	if _, err := m.Alarm(x, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(x).Then(clientv3.OpDelete("a"), clientv3.OpGet("a")).Commit(); err != nil {
		t.Fatalf("a delete-only txn under NOSPACE: %v", err)
	}
	if _, err := m.Alarm(x, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Alarm(x, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_CORRUPT}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(x, "b", "2"); !errors.Is(err, rpctypes.ErrCorrupt) {
		t.Fatalf("a put while CORRUPT is raised: %v", err)
	}
	if _, err := cli.Get(x, "a"); !errors.Is(err, rpctypes.ErrCorrupt) {
		t.Fatalf("a range while CORRUPT is raised: %v", err)
	}
	if _, err := m.Alarm(x, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_CORRUPT}); err != nil {
		t.Fatal(err)
	}
	must[*clientv3.PutResponse](t)(cli.Put(x, "b", "2"))
}

// TestRunClosesSniffingConns: a connection still being sniffed (part of
// a preface sent) when Run stops is closed, and its goroutine done, by
// the time Run returns, not left until sniffTimeout after the database
// is closed.
func TestRunClosesSniffingConns(t *testing.T) {
	dir := t.TempDir()
	peer, cl := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := memberConfig(dir, "http", "m1", "tok", "m1=http://"+peer, peer, cl)
	ready := make(chan struct{})
	cfg.Ready = func(_, _ []string) { close(ready) }
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(rctx, cfg) }()
	<-ready
	c, err := net.Dial("tcp", cl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("PRI * HTTP/2.0")) // part of the preface
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("Run returned in %v", time.Since(start))
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection accepted on the client port is still open 2 s after Run returned")
	}
}

// TestRunStopsWithStreams: a single member (TLS or not) with an
// open watch and a lease keep-alive stream stops within the 2 s grace and
// Run returns nil.
func TestRunStopsWithStreams(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			dir := t.TempDir()
			peer, cl := testutil.FreeAddr(t), testutil.FreeAddr(t)
			cfg := memberConfig(dir, scheme, "m1", "tok", "m1="+scheme+"://"+peer, peer, cl)
			var tcfg *tls.Config
			if scheme == "https" {
				certs := testutil.NewCerts(t, dir)
				info := TLSInfo{CertFile: certs.Cert, KeyFile: certs.Key, TrustedCAFile: certs.CA}
				cfg.ClientTLS, cfg.PeerTLS = info, info
				pool := x509.NewCertPool()
				pemCA, _ := os.ReadFile(certs.CA)
				pool.AppendCertsFromPEM(pemCA)
				tcfg = &tls.Config{RootCAs: pool}
			}
			rctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Run(rctx, cfg) }()
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cl}, DialTimeout: 5 * time.Second, TLS: tcfg, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			putEventually(t, cli, "k", "v")
			x := ctx(t)
			wch := cli.Watch(x, "k")
			l := must[*clientv3.LeaseGrantResponse](t)(cli.Grant(x, 60))
			_, _ = cli.KeepAlive(x, l.ID)
			must[*clientv3.PutResponse](t)(cli.Put(x, "k", "v2"))
			<-wch
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return in 15 s")
			}
			t.Logf("Run returned in %v", time.Since(start))
		})
	}
}
