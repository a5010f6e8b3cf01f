module github.com/quiverdb/quiver/bench

go 1.26.0

toolchain go1.26.8

require (
	github.com/quiverdb/quiver v0.0.0-00010101000000-000000000000
	github.com/schollz/progressbar/v3 v3.18.0
	go.etcd.io/bbolt v1.5.0
	go.etcd.io/raft/v3 v3.7.0
	golang.org/x/sys v0.49.0
	google.golang.org/protobuf v1.36.11
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/google/btree v1.1.3 // indirect
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	golang.org/x/term v0.28.0 // indirect
)

replace github.com/quiverdb/quiver => ../
