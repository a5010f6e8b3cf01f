//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing where the kernel has no parent-death signal:
// the test's cleanups kill its members.
func dieWithParent(*exec.Cmd) {}
