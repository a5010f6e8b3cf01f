// Package invariants tells whether quiver's costly internal consistency
// checks run. They do in builds with the "invariants" tag (go test -tags
// invariants ./..., which CI runs), as pebble's internal/invariants: a
// double free in the freelist, a page handed out while a snapshot can
// still reach it, or keys out of order after a split then panic at the
// point of the fault instead of corrupting the file silently. Without the
// tag Enabled is a false constant and the checks compile away.
package invariants
