// Package freelist tracks which pages of a quiver file are free.
//
// The free-span structure itself is the Freelist interface, of which there
// are two implementations: freelist/array (sorted page ids, first fit: the
// baseline bbolt users know) and freelist/hashmap (segregated spans).
// Everything the two share lives here in Tracker: pages freed by a
// transaction stay pending until no open reader can see them, allocations
// of the open writer are remembered so that a rollback restores the prior
// state exactly, and the free set is enumerated for the on-disk
// checkpoint.
//
// A Tracker is used by the single writer only; it is not safe for
// concurrent use.
package freelist
