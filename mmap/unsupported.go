//go:build !unix

package mmap

// quiver runs on Unix systems only (Linux, macOS, the BSDs): it maps its
// file with mmap(2), locks it with flock(2) and syncs it with fdatasync(2)
// or F_FULLFSYNC. On other systems this reference stops the build with a
// message that says so, rather than with the missing functions.
var _ = quiver_is_supported_on_unix_systems_only
