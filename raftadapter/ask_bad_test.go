package raftadapter

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestTCPAskRefusesBadAnswers: an answer announcing a 4 GiB frame, or a
// truncated one, gives Ask an error; it neither panics nor allocates what
// the length announces.
func TestTCPAskRefusesBadAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answers := [][]byte{
		{0, 0xff, 0xff, 0xff, 0xff},
		{1, 0x7f, 0xff, 0xff, 0xff},
		{0, 0, 0, 0x10, 0, 'x'},
		{0, 0},
		{},
	}
	go func() {
		for _, a := range answers {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, _ = io.Copy(io.Discard, c)
			_, _ = c.Write(a)
			c.Close()
		}
	}()
	tr, err := NewTCPTransport(TCPConfig{ID: 1, ClusterID: testClusterID, Listen: "127.0.0.1:0", Peers: map[uint64]string{2: ln.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for range answers {
		x, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := tr.Ask(x, 2, []byte("q"))
		cancel()
		if err == nil {
			t.Fatalf("a bad answer was taken: %q", got)
		}
		t.Log(err)
	}
}
