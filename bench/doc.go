// Package bench compares quiver with bbolt on the same workloads: the
// benchmarks in bench_test.go (sequential and random writes, reads, the
// fragmented workload of BenchmarkFragmented) and the capacity harness of
// cmd/capacity drive every engine through one small Engine interface.
//
// The package is its own module so that the comparison engines stay out of
// quiver's go.mod.
package bench
