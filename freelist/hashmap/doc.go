// Package hashmap is the segregated freelist index: free spans kept in size
// classes, found in O(1) at any size and any fragmentation, coalesced with
// both neighbours in O(1) on free, and taken from low page ids first so
// that the file does not bloat.
//
// Structure:
//   - a span table (parallel arrays, slots recycled) holding each free
//     span's start, size and its links in one list: 20 bytes a span;
//   - one open-addressing table from a span's first and last page to its
//     slot, for coalescing (idTable, 8 bytes an entry);
//   - size classes: one per size for 1..exactSizes pages, then one per
//     power of two; a bitmask says which classes are non-empty;
//   - within a class, spans are listed per region of 2^regionShift pages
//     (list heads in a dense slice per class), and a hierarchical bitset
//     per class finds its lowest non-empty region in a few word reads.
//
// Allocate(n) takes the smallest class that is sure to fit n (n's exact
// class, or for larger sizes the next power-of-two class unless n is a
// power of two), then the head of its lowest region's list, and takes n
// pages from the start of that span. Nothing depends on map iteration
// order, so the same operations give the same page ids.
package hashmap
