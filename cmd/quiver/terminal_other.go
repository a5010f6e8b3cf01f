//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package main

import "os"

// isTerminal reports false: progress is shown only where a terminal can
// be recognised.
func isTerminal(*os.File) bool { return false }
