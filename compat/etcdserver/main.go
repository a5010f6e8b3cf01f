// Command etcdserver is etcd v3.7.3's server, etcdmain unchanged, built
// twice from this one source file: with go.mod it runs on quiver (bbolt
// replaced by ../bbolt, quiver's compat module); with bbolt.mod
// (go build -modfile=bbolt.mod) it runs on bbolt v1.5.0 itself. The two
// binaries take the same flags as etcd, and are what this module's tests
// start as clusters and what the benchmarks in ../../bench/serve compare.
//
//	go build -o etcd-quiver .
//	go build -modfile=bbolt.mod -o etcd-bbolt .
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
