// Package page defines quiver's on-disk format and nothing else: pure
// functions over []byte, no I/O. Decoding never panics on bad bytes; it
// returns an error that wraps ErrCorrupt and names the page.
//
// # File
//
// A quiver file is an array of fixed-size pages (PageSize, default 4096,
// a power of two between MinPageSize and MaxPageSize). Page id N lives at
// byte offset N*PageSize. Pages 0 and 1 are the two meta pages. A page may
// span several contiguous pages ("overflow"): its header's Overflow field
// counts the extra pages.
//
// # Page header (32 bytes, little endian, every page kind)
//
//	offset size field
//	0      8    Checksum  xxhash64 of bytes [8, end of page span); for meta
//	              pages of bytes [8, MetaEnd) only, so a meta can be checked
//	              without knowing the page size
//	8      8    ID        the page id this page was written at
//	16     8    Txid      the transaction that wrote it
//	24     2    Flags     page kind: FlagBranch, FlagLeaf, FlagMeta,
//	              FlagFreelist, FlagCommit
//	26     2    Count     number of elements (branch, leaf)
//	28     4    Overflow  number of pages after this one in the span
//
// A page read for id N whose header does not say ID == N is corrupt.
//
// # Meta page (pages 0 and 1)
//
//	32  4  Magic     0x31525651 ("QVR1")
//	36  4  Version   format version (Version)
//	40  4  PageSize
//	44  4  Flags     reserved, zero
//	48  8  Root      root page of the root bucket, 0 if empty
//	56  8  Sequence  the root bucket's sequence (unused, kept for symmetry)
//	64  8  Freelist  first page of the freelist checkpoint
//	72  8  HighWater number of pages in use: every page id < HighWater is
//	                 a meta, reachable, free, the freelist checkpoint,
//	                 or a commit record chained since that checkpoint
//	80  8  Txid      the transaction this meta commits
//	88  8  Record    first page of this commit's commit record, 0 if none
//	96  8  RecordSum the commit record's checksum, so that a meta cannot be
//	                 matched with a record an earlier, torn attempt at the
//	                 same txid left at the same page
//	104    MetaEnd
//
// A commit writes its meta to the page (0 or 1) that does not hold the
// last durable commit's meta: T%2 when every commit syncs; the commits
// after one that deferred its sync overwrite that one's meta, up to and
// including the next synced one.
//
// # Branch page (FlagBranch)
//
// After the header, Count uint32 offsets (relative to the page start), one
// per element, in key order. Each element at its offset:
//
//	8       child page id
//	uvarint key length
//	        key bytes
//
// The key of element i is the first key of child i's subtree.
//
// # Leaf page (FlagLeaf)
//
// After the header, Count uint32 offsets, one per element, in key order.
// Each element at its offset:
//
//	1       element flags (LeafBucket: the value is a bucket header)
//	uvarint key length
//	uvarint value length
//	        key bytes
//	        value bytes
//
// A leaf whose elements do not fit one page spans Overflow extra pages;
// large values live there contiguously with their keys.
//
// A bucket header value is 16 bytes: root page id (0 for an empty bucket)
// and the bucket's sequence, both uint64.
//
// # Freelist checkpoint (FlagFreelist)
//
// After the header: uint64 span count, uint64 total free pages, then for
// each span in ascending order uvarint(gap from the previous span's end)
// and uvarint(length-1). It lists every page that was free in the state of
// the commit that wrote it (its header's txid), including pages freed but
// still pending release in memory: on open no reader exists, so they are
// all free. Later commits' records carry the changes since (see below).
//
// # Commit record (FlagCommit)
//
// After the header (whose Txid is the committing transaction):
//
//	8   number of written spans W
//	8   number of freed spans F
//	8   number of allocated spans A
//	8   Prev: the previous commit's record when that commit wrote no
//	    freelist checkpoint, else 0
//	W × { 8 first page id, 4 page count, 4 reserved, 8 checksum }
//	F × { 8 first page id, 8 page count }
//	A × { 8 first page id, 8 page count }
//
// The written list names every page span the commit wrote (nodes, the
// freelist checkpoint) with the checksum its header carries. On open, the
// newest valid meta wins only if its record verifies: every listed span's
// header names its id and the meta's txid and its checksum matches both the
// record and its bytes, and the record's own checksum is the meta's
// RecordSum. Otherwise the other meta wins: it was made durable
// by the previous commit's sync before this commit wrote anything, and this
// commit wrote only pages that were free in it.
//
// The freed and allocated lists are the freelist's delta for the commit. A
// commit writes a checkpoint only now and then; the free set of a state is
// the checkpoint its meta names (written by commit C, its header's txid)
// with the deltas of the records newer than C replayed in order (Replay),
// found by following Prev from the meta's record. Records stay allocated
// until the next checkpoint supersedes them.
package page
