package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestBadInputOnClientPort: garbage, a truncated HTTP/2 preface and an
// HTTP/1 request for nothing on a member's client port are answered or
// closed; the member goes on serving.
func TestBadInputOnClientPort(t *testing.T) {
	c := newTestCluster(t, 1)
	cli := client(t, c.addrs...)
	x := ctx(t)
	must[*clientv3.PutResponse](t)(cli.Put(x, "k", "v"))
	for name, data := range map[string][]byte{
		"garbage":            bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1024),
		"truncated preface":  []byte("PRI * HTTP/2.0\r\n\r\nSM"),
		"http/1 for nothing": []byte("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"),
	} {
		conn, err := net.Dial("tcp", c.addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(data)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("%s: the connection was neither answered nor closed: %v", name, err)
		}
		conn.Close()
	}
	if g := must[*clientv3.GetResponse](t)(cli.Get(x, "k")); kvs(g) != "k=v" {
		t.Fatalf("after bad input: %s", kvs(g))
	}
}

// TestManyWatches: one client opens 10,000 watches on one stream; all are
// created, a put reaches every one, and the server's heap stays bounded.
func TestManyWatches(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	c := newTestCluster(t, 1)
	cli := client(t, c.addrs...)
	x := ctx(t)
	var chans []clientv3.WatchChan
	for i := 0; i < n; i++ {
		chans = append(chans, cli.Watch(x, fmt.Sprintf("w%05d", i%100), clientv3.WithCreatedNotify()))
	}
	for i, wc := range chans {
		if r := next(t, wc); !r.Created {
			t.Fatalf("watch %d: %+v", i, r)
		}
	}
	must[*clientv3.PutResponse](t)(cli.Put(x, "w00007", "v"))
	got := 0
	for i, wc := range chans {
		if i%100 != 7 {
			continue
		}
		if r := next(t, wc); len(r.Events) != 1 {
			t.Fatalf("watch %d: %+v", i, r)
		}
		got++
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d watches, %d got the put; heap in use %d MiB (client and server)", n, got, ms.HeapInuse>>20)
	if ms.HeapInuse > 512<<20 {
		t.Fatalf("heap in use %d MiB with %d watches", ms.HeapInuse>>20, n)
	}
}
