//go:build race

package raftadapter

// raceEnabled: the race detector is on (its shadow memory swells RSS).
const raceEnabled = true
