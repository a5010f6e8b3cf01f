// Package mmap maps a quiver file read-only and hands the mapping out in
// epochs, and takes the file lock.
//
// A mapping is created with a virtual reservation much larger than the file
// (on 64-bit Linux a MAP_SHARED read-only mapping may extend past the end of
// the file, and pages added later by ftruncate and pwrite become visible
// through it), so a growing file rarely needs a new mapping. When it does,
// the database makes a new Epoch; readers keep the epoch they pinned and the
// old mapping is unmapped when its last user releases it. The writer never
// waits for readers and readers never wait for the writer.
//
// Touching a page of a mapping past the end of the file raises SIGBUS: users
// read only pages below the high-water mark of the meta they pinned, which
// the file always covers.
//
// Platforms: Linux (fdatasync), macOS (F_FULLFSYNC) and the BSDs (fsync).
// Windows is not supported yet.
package mmap
