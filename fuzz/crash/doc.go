// Package crash simulates power cuts under a quiver database. A Recorder is
// used as Options.OpenFile: it passes every call to the real file and
// records each write, truncate and sync. Image then builds, for any point
// of that history, the file a power cut there could leave: everything up to
// the last sync is kept; each later write is kept, dropped, or torn at a
// sector boundary, and each later truncate kept or dropped, chosen by a
// seeded random source.
package crash
