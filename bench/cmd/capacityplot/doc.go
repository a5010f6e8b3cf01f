// Command capacityplot draws the results of cmd/capacity as an SVG image:
// one panel per measure (commit p99, commit p50, open time, file size over
// live data), size on the x axis (log scale), one line per engine and run,
// each in a colour of its own (dotted for a run's hot-set measurement).
// -runs draws only the runs with those labels: the default figure compares
// quiver and bbolt measured in the same run.
//
//	go run ./cmd/capacityplot -in capacity.json -out ../docs/capacity.svg -runs run2
package main
