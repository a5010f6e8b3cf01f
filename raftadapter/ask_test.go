package raftadapter

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTCPAsk: a request over TCP reaches the other member's handler and
// its answer, or its error, comes back; a member with no handler, an
// unknown member, an oversized request and another cluster's request are
// refused with errors; garbage in place of a request closes the
// connection only.
func TestTCPAsk(t *testing.T) {
	newT := func(id, cluster uint64, peers map[uint64]string) *TCPTransport {
		tr, err := NewTCPTransport(TCPConfig{ID: id, ClusterID: cluster, Listen: "127.0.0.1:0", Peers: peers, MaxFrame: 1 << 10})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	b := newT(2, testClusterID, nil)
	a := newT(1, testClusterID, map[uint64]string{2: b.Addr()})
	other := newT(3, testClusterID+1, map[uint64]string{2: b.Addr()})
	x, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Ask(x, 2, []byte("hi")); err == nil || !strings.Contains(err.Error(), ErrNoHandler.Error()) {
		t.Fatalf("asking a member with no handler: %v", err)
	}
	b.HandleAsk(func(_ context.Context, from uint64, req []byte) ([]byte, error) {
		if string(req) == "fail" {
			return nil, errors.New("refused on purpose")
		}
		return append([]byte{byte(from)}, bytes.ToUpper(req)...), nil
	})
	got, err := a.Ask(x, 2, []byte("hello"))
	if err != nil || string(got) != "\x01HELLO" {
		t.Fatalf("answer %q, %v", got, err)
	}
	if _, err := a.Ask(x, 2, []byte("fail")); err == nil || !strings.Contains(err.Error(), "refused on purpose") {
		t.Fatalf("the handler's error came back as %v", err)
	}
	if _, err := a.Ask(x, 9, []byte("x")); err == nil {
		t.Fatal("asking an unknown member succeeded")
	}
	if _, err := a.Ask(x, 2, make([]byte, 2<<10)); err == nil {
		t.Fatal("an oversized request was sent")
	}
	if _, err := other.Ask(x, 2, []byte("x")); err == nil {
		t.Fatal("another cluster's request was answered")
	}
	// A request frame announcing more than the limit closes the connection.
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(append(a.header(kindQuery), 0xff, 0xff, 0xff, 0xff))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _ := c.Read(make([]byte, 1)); n != 0 {
		t.Fatal("an oversized request frame was answered")
	}
	c.Close()
	if got, err := a.Ask(x, 2, []byte("again")); err != nil || string(got) != "\x01AGAIN" {
		t.Fatalf("after bad input: %q, %v", got, err)
	}
}
