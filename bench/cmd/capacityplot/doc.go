// Command capacityplot draws the results of cmd/capacity as an SVG image:
// one panel per measure (commit p99, commit p50, open time, file size over
// live data), size on the x axis (log scale), one line per engine.
//
//	go run ./cmd/capacityplot -in capacity.json -out ../docs/capacity.svg
package main
