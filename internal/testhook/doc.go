// Package testhook holds the hooks through which tests anywhere in the
// module step into the engine at points no public API exposes. Each hook
// is a package variable, nil outside tests; a test sets it, runs, and
// resets it. Tests that set hooks must not run in parallel.
package testhook

// Compact, if set, is called by DB.Compact at each stage with the
// database's path: "copy" (before the copy), "round" (before each
// catch-up round, writers running), "final" (before writers are blocked
// for the last round) and "switched" (after the switch to the new file).
// It runs on Compact's goroutine, so it may commit transactions, but not
// while holding a write transaction of its own at "final".
var Compact func(path, stage string)

// Open, if set, is called by Open with the path and the attempt's number
// (from 0) each time it has opened the file and is about to lock it.
// Open opens again when the file at the path was replaced while it
// waited for the lock.
var Open func(path string, attempt int)
