package tx

import (
	"bytes"
	"fmt"

	"github.com/quiverdb/quiver/page"
)

// CheckOption configures Check, as in bbolt: WithKVStringer,
// WithPageId.
type CheckOption func(*checkConfig)

type checkConfig struct {
	kv     KVStringer
	pageID page.Pgid // 0: the whole snapshot
}

// KVStringer renders keys and values in Check's reports.
type KVStringer interface {
	KeyToString([]byte) string
	ValueToString([]byte) string
}

// WithKVStringer makes Check render keys and values in its reports with
// kv (default: quoted Go strings, %q).
func WithKVStringer(kv KVStringer) CheckOption {
	return func(c *checkConfig) { c.kv = kv }
}

// WithPageId makes Check verify only the page tree rooted at page id (a
// bucket's root, say, as the quiver command's page tools name it) and the
// buckets nested in it: pages, checksums, key order. The freelist, the
// commit record and the accounting of every page are skipped.
func WithPageId(id uint64) CheckOption {
	return func(c *checkConfig) { c.pageID = page.Pgid(id) }
}

// HexKVStringer renders keys and values in hexadecimal.
func HexKVStringer() KVStringer { return hexKV{} }

type hexKV struct{}

func (hexKV) KeyToString(k []byte) string   { return fmt.Sprintf("%x", k) }
func (hexKV) ValueToString(v []byte) string { return fmt.Sprintf("%x", v) }

type quotedKV struct{}

func (quotedKV) KeyToString(k []byte) string   { return fmt.Sprintf("%q", k) }
func (quotedKV) ValueToString(v []byte) string { return fmt.Sprintf("%q", v) }

// Check verifies the consistency of the snapshot the transaction started
// from and sends every problem it finds on the returned channel, which is
// closed when the check ends. It verifies that:
//   - every page below the high-water mark is a meta page, part of the
//     tree (reachable exactly once), the freelist checkpoint or the commit
//     record, or free — and never two of these;
//   - every reachable page's checksum matches, its header names it, and its
//     elements are within bounds;
//   - keys are strictly ascending within each page and across pages, and
//     each branch key is the first key of its child;
//   - the commit record's checksums match its pages and the freelist's
//     counts match its spans.
//
// In a write transaction, Check sees the committed state, not the
// transaction's own changes. Read the channel until it is closed: the check
// keeps the snapshot's pages mapped until then, even past the end of the
// transaction.
func (t *Tx) Check(opts ...CheckOption) <-chan error {
	ch := make(chan error)
	if t.closed {
		go func() { ch <- ErrTxClosed; close(ch) }()
		return ch
	}
	cfg := checkConfig{kv: quotedKV{}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.kv == nil {
		cfg.kv = quotedKV{}
	}
	release := t.backend.Pin(t)
	c := &checker{ch: ch, data: t.data, pageSize: t.pageSize, meta: t.meta, hw: t.meta.HighWater, cfg: cfg}
	go func() {
		defer close(ch)
		defer release()
		c.owner = make([]page.Pgid, c.hw)
		c.run()
	}()
	return ch
}

// checker holds copies of what it needs from the transaction, so that it
// can outlive it.
type checker struct {
	data     []byte
	pageSize int
	meta     page.Meta
	ch       chan<- error
	hw       page.Pgid
	owner    []page.Pgid // page -> referrer+1 (metaOwner, freeOwner, ...); 0 = unseen
	n        int
	// noFreelist: the free set could not be read (reported).
	noFreelist bool
	cfg        checkConfig
}

const (
	ownerMeta page.Pgid = 1 << 62
	ownerFree page.Pgid = ownerMeta + 1
	ownerSys  page.Pgid = ownerMeta + 2 // freelist checkpoint, commit record
)

// key renders k for a report.
func (c *checker) key(k []byte) string { return c.cfg.kv.KeyToString(k) }

// report sends one problem.
func (c *checker) report(err error) {
	c.n++
	c.ch <- err
}

// corruptf reports a problem with page id as a *page.CorruptionError, so
// that errors.Is(err, ErrCorrupt) holds and the page can be read from it.
func (c *checker) corruptf(id page.Pgid, format string, args ...any) {
	c.report(page.Corruptf(id, format, args...))
}

// read returns the verified span of page id.
func (c *checker) read(id page.Pgid) []byte {
	p, err := page.ReadSpan(c.data, id, c.pageSize, c.hw, true)
	if err != nil {
		c.report(err)
		return nil
	}
	return p
}

// mark records that the n pages at id belong to owner.
func (c *checker) mark(id page.Pgid, n uint64, owner page.Pgid) bool {
	ok := true
	for i := uint64(0); i < n; i++ {
		p := id + page.Pgid(i)
		if p >= c.hw {
			c.corruptf(p, "beyond the high water mark %d", c.hw)
			return false
		}
		if prev := c.owner[p]; prev != 0 {
			c.corruptf(p, "claimed by %s and by %s", ownerName(prev), ownerName(owner))
			ok = false
			continue
		}
		c.owner[p] = owner
	}
	return ok
}

// used reports whether the n pages at id all belong to the tree, the
// freelist checkpoint or a commit record (after the walk).
func (c *checker) used(id page.Pgid, n uint64) bool {
	for i := uint64(0); i < n; i++ {
		if o := c.owner[id+page.Pgid(i)]; o == 0 || o == ownerFree {
			return false
		}
	}
	return true
}

func ownerName(o page.Pgid) string {
	switch o {
	case ownerMeta:
		return "the meta"
	case ownerFree:
		return "the freelist (free)"
	case ownerSys:
		return "the freelist checkpoint or commit record"
	}
	return fmt.Sprintf("page %d", o-1)
}

func (c *checker) run() {
	m := &c.meta
	if c.cfg.pageID != 0 {
		// One subtree: its pages and nested buckets, nothing else.
		c.checkBucket(c.cfg.pageID, 0)
		return
	}
	c.mark(0, 2, ownerMeta)
	// The free set: the checkpoint with the chained records' deltas. The
	// checkpoint and every chained record are the freelist's own pages.
	read := func(id page.Pgid) ([]byte, error) {
		if p := c.read(id); p != nil {
			return p, nil
		}
		return nil, page.Corruptf(id, "unreadable (reported above)")
	}
	free, chain, err := page.FreeSet(m, read)
	if err != nil {
		c.report(fmt.Errorf("freelist: %w", err))
		c.noFreelist = true
	} else {
		if p := c.read(m.Freelist); p != nil {
			c.mark(m.Freelist, uint64(page.Overflow(p))+1, ownerSys)
		}
		for _, r := range chain {
			c.mark(r.ID, uint64(r.Pages), ownerSys)
		}
		for _, s := range free {
			c.mark(s.ID, s.N, ownerFree)
		}
	}
	// The tree.
	c.checkBucket(m.Root, 0)
	// The newest commit record lists the pages its commit wrote; after the
	// tree, so that only pages the snapshot uses are read (a writer may
	// reuse its free pages, or truncate them away, meanwhile).
	if m.Record != 0 {
		if p := c.read(m.Record); p != nil {
			c.checkRecord(p)
		}
	}
	for id := page.Pgid(0); id < c.hw; id++ {
		if c.owner[id] == 0 {
			c.corruptf(id, "unreachable and not free")
		}
	}
}

func (c *checker) checkRecord(p []byte) {
	id := page.ID(p)
	r, err := page.DecodeRecord(p, id)
	if err != nil {
		c.report(err)
		return
	}
	if r.Txid != c.meta.Txid {
		c.corruptf(id, "commit record of tx %d, meta is tx %d", r.Txid, c.meta.Txid)
	}
	ps := c.pageSize
	for _, w := range r.Written {
		if w.ID < 2 || uint64(w.ID)+uint64(w.N) > uint64(c.hw) || w.N == 0 {
			c.corruptf(id, "commit record lists pages %d+%d out of range", w.ID, w.N)
			continue
		}
		if !c.used(w.ID, uint64(w.N)) {
			// Without a freelist the checkpoint's pages are not marked:
			// the damage is reported already.
			if !c.noFreelist {
				c.corruptf(id, "commit record lists pages %d+%d, which the snapshot does not use", w.ID, w.N)
			}
			continue
		}
		q := c.data[int(w.ID)*ps : (int(w.ID)+int(w.N))*ps]
		// Pages this commit wrote are visible to this snapshot, so they
		// cannot have been reused yet.
		if page.ID(q) != w.ID || page.Checksum(q) != w.Checksum || page.Sum(q) != w.Checksum {
			c.corruptf(id, "commit record's checksum for pages %d+%d does not match them", w.ID, w.N)
		}
	}
}

// checkBucket checks the bucket tree rooted at root.
func (c *checker) checkBucket(root page.Pgid, depth int) {
	if root == 0 {
		return
	}
	if depth > maxNesting {
		c.corruptf(root, "buckets nested deeper than %d", maxNesting)
		return
	}
	c.checkNode(root, nil, nil, 0, ownerMeta, depth)
}

// checkNode checks page id, whose keys must lie in [lo, hi) (nil = open)
// and whose first key must equal first when first is not nil.
func (c *checker) checkNode(id page.Pgid, lo, hi []byte, level int, parent page.Pgid, bucketDepth int) {
	if level > maxDepth {
		c.corruptf(id, "tree deeper than %d levels", maxDepth)
		return
	}
	p := c.read(id)
	if p == nil {
		return
	}
	owner := parent
	if parent != ownerMeta {
		owner = parent + 1
	}
	if !c.mark(id, uint64(page.Overflow(p))+1, owner) {
		return // seen before: do not walk it twice
	}
	flags := page.Flags(p)
	if flags != page.FlagBranch && flags != page.FlagLeaf {
		c.corruptf(id, "a %s page in a bucket tree", page.FlagName(flags))
		return
	}
	n := page.Count(p)
	if n == 0 {
		c.corruptf(id, "empty %s page", page.FlagName(flags))
		return
	}
	var prev []byte
	for i := 0; i < n; i++ {
		var key []byte
		var child page.Pgid
		var fl uint8
		var value []byte
		var ok bool
		if flags == page.FlagBranch {
			child, key, ok = page.BranchElem(p, i)
		} else {
			fl, key, value, ok = page.LeafElem(p, i)
		}
		if !ok {
			c.corruptf(id, "element %d out of bounds", i)
			return
		}
		if i == 0 && lo != nil && !bytes.Equal(key, lo) {
			c.corruptf(id, "first key %s differs from its parent's key %s", c.key(key), c.key(lo))
		}
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			c.corruptf(id, "keys out of order (%s then %s)", c.key(prev), c.key(key))
		}
		if hi != nil && bytes.Compare(key, hi) >= 0 {
			c.corruptf(id, "key %s not below its parent's next key %s", c.key(key), c.key(hi))
		}
		prev = key
		if flags == page.FlagBranch {
			var next []byte
			if i+1 < n {
				_, next, _ = page.BranchElem(p, i+1)
			} else {
				next = hi
			}
			c.checkNode(child, key, next, level+1, id, bucketDepth)
			continue
		}
		if fl&page.LeafBucket != 0 {
			h, ok := page.DecodeBucketHeader(value)
			if !ok {
				c.corruptf(id, "bucket %s has a malformed header %s", c.key(key), c.cfg.kv.ValueToString(value))
				continue
			}
			c.checkBucket(h.Root, bucketDepth+1)
		}
	}
}
