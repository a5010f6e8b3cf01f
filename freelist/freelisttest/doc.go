// Package freelisttest is the conformance suite every freelist.Index
// implementation passes, run through freelist.Freelist so that the shared
// bookkeeping (pending frees, release against readers, rollback) is tested
// over each implementation.
package freelisttest
