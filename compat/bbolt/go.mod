module go.etcd.io/bbolt

go 1.26.0

require github.com/quiverdb/quiver v0.1.0

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

// For development in this repository; a program that replaces bbolt with
// this module requires a tagged quiver release instead (replace directives
// of a dependency are ignored).
replace github.com/quiverdb/quiver => ../..
