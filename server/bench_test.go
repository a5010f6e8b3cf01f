package server

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkServe measures a one-member server through clientv3 over
// loopback, client and server in this process: puts of 256 bytes and
// serializable and linearizable gets, from 16 goroutines. bench/serve
// compares the server with etcd's; this is for profiles.
func BenchmarkServe(b *testing.B) {
	for _, op := range []string{"put", "get-serializable", "get-linearizable"} {
		b.Run(op, func(b *testing.B) {
			c := newTestCluster(b, 1, func(cfg *Config) { cfg.TickInterval = 0 })
			cli := client(b, c.addrs...)
			x := ctx(b)
			value := strings.Repeat("v", 256)
			for i := 0; i < 1000; i++ {
				if _, err := cli.Put(x, fmt.Sprintf("k%04d", i), value); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := fmt.Sprintf("k%04d", n.Add(1)%1000)
					var err error
					switch op {
					case "put":
						_, err = cli.Put(x, k, value)
					case "get-serializable":
						_, err = cli.Get(x, k, clientv3.WithSerializable())
					default:
						_, err = cli.Get(x, k)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
