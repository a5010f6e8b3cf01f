// Package fuzz holds fuzz targets and property tests that span packages.
//
// Run a target for longer with, for example:
//
//	go test ./fuzz -run '^$' -fuzz FuzzFreelistDifferential -fuzztime 10m
//
// The default test run executes each target's seed corpus.
package fuzz
