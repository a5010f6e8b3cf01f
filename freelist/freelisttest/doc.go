// Package freelisttest is the conformance suite every freelist.Freelist
// implementation passes, run through freelist.Tracker so that the shared
// bookkeeping (pending frees, release against readers, rollback) is tested
// over each implementation.
package freelisttest
