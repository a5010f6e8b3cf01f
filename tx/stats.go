package tx

import (
	"sync/atomic"
	"time"

	"github.com/quiverdb/quiver/page"
)

// BucketStats describes the pages and keys of a bucket and its nested
// buckets, as committed (a write transaction's own changes are not
// counted).
type BucketStats struct {
	BranchPageN     int // branch pages
	BranchOverflowN int // extra pages of branch spans
	LeafPageN       int // leaf pages
	LeafOverflowN   int // extra pages of leaf spans
	KeyN            int // keys, nested bucket names included
	Depth           int // levels of the deepest tree
	BranchAlloc     int // bytes of branch pages
	BranchInuse     int // bytes used in branch pages
	LeafAlloc       int // bytes of leaf pages
	LeafInuse       int // bytes used in leaf pages
	BucketN         int // buckets, this one included
	EmptyBucketN    int // buckets without pages
}

// Add accumulates other into s.
func (s *BucketStats) Add(o BucketStats) {
	s.BranchPageN += o.BranchPageN
	s.BranchOverflowN += o.BranchOverflowN
	s.LeafPageN += o.LeafPageN
	s.LeafOverflowN += o.LeafOverflowN
	s.KeyN += o.KeyN
	if o.Depth > s.Depth {
		s.Depth = o.Depth
	}
	s.BranchAlloc += o.BranchAlloc
	s.BranchInuse += o.BranchInuse
	s.LeafAlloc += o.LeafAlloc
	s.LeafInuse += o.LeafInuse
	s.BucketN += o.BucketN
	s.EmptyBucketN += o.EmptyBucketN
}

// Stats returns the bucket's page and key counts; zero counts once the
// transaction has ended or the bucket was deleted.
func (b *Bucket) Stats() BucketStats {
	var s BucketStats
	if b.usable() != nil {
		return s
	}
	b.tx.bucketStats(b.hdr.Root, &s, 0)
	return s
}

func (t *Tx) bucketStats(root page.Pgid, s *BucketStats, nesting int) {
	s.BucketN++
	if root == 0 {
		s.EmptyBucketN++
		return
	}
	ps := t.pageSize
	t.walk(root, 0, func(p []byte, id page.Pgid, depth int) bool {
		if depth+1 > s.Depth {
			s.Depth = depth + 1
		}
		n := page.Count(p)
		used := page.Used(p)
		ov := int(page.Overflow(p))
		if page.Flags(p) == page.FlagLeaf {
			s.LeafPageN++
			s.LeafOverflowN += ov
			s.LeafAlloc += (ov + 1) * ps
			s.LeafInuse += used
			s.KeyN += n
			for i := 0; i < n && nesting < maxNesting; i++ {
				if fl, _, v, ok := page.LeafElem(p, i); ok && fl&page.LeafBucket != 0 {
					if h, ok := page.DecodeBucketHeader(v); ok {
						t.bucketStats(h.Root, s, nesting+1)
					}
				}
			}
		} else {
			s.BranchPageN++
			s.BranchOverflowN += ov
			s.BranchAlloc += (ov + 1) * ps
			s.BranchInuse += used
		}
		return true
	})
}

// TxStats counts a transaction's work, with bbolt's fields. The getters
// and Inc methods are atomic, so that a TxStats shared between goroutines
// (DB.Stats's running total) may be read while it grows.
type TxStats struct {
	PageCount int64 // pages allocated by the commit
	PageAlloc int64 // bytes allocated by the commit

	CursorCount int64 // cursors created

	NodeCount int64 // nodes written
	// NodeDeref is always 0: bbolt copies the nodes a remap would
	// invalidate; quiver never unmaps a mapping a transaction uses.
	NodeDeref int64

	Rebalance     int64         // nodes merged
	RebalanceTime time.Duration // time spent merging

	Split     int64         // nodes split
	Spill     int64         // nodes laid out into pages
	SpillTime time.Duration // time spent splitting and laying out nodes

	Write     int64         // write calls made by the commit
	WriteTime time.Duration // time spent writing and syncing pages, record and meta

	// AllocTime is quiver's own: time spent asking the freelist for pages
	// (counted in SpillTime too).
	AllocTime time.Duration
}

func (s *TxStats) GetPageCount() int64             { return atomic.LoadInt64(&s.PageCount) }
func (s *TxStats) IncPageCount(d int64) int64      { return atomic.AddInt64(&s.PageCount, d) }
func (s *TxStats) GetPageAlloc() int64             { return atomic.LoadInt64(&s.PageAlloc) }
func (s *TxStats) IncPageAlloc(d int64) int64      { return atomic.AddInt64(&s.PageAlloc, d) }
func (s *TxStats) GetCursorCount() int64           { return atomic.LoadInt64(&s.CursorCount) }
func (s *TxStats) IncCursorCount(d int64) int64    { return atomic.AddInt64(&s.CursorCount, d) }
func (s *TxStats) GetNodeCount() int64             { return atomic.LoadInt64(&s.NodeCount) }
func (s *TxStats) IncNodeCount(d int64) int64      { return atomic.AddInt64(&s.NodeCount, d) }
func (s *TxStats) GetNodeDeref() int64             { return atomic.LoadInt64(&s.NodeDeref) }
func (s *TxStats) IncNodeDeref(d int64) int64      { return atomic.AddInt64(&s.NodeDeref, d) }
func (s *TxStats) GetRebalance() int64             { return atomic.LoadInt64(&s.Rebalance) }
func (s *TxStats) IncRebalance(d int64) int64      { return atomic.AddInt64(&s.Rebalance, d) }
func (s *TxStats) GetRebalanceTime() time.Duration { return loadDuration(&s.RebalanceTime) }
func (s *TxStats) IncRebalanceTime(d time.Duration) time.Duration {
	return addDuration(&s.RebalanceTime, d)
}
func (s *TxStats) GetSplit() int64                            { return atomic.LoadInt64(&s.Split) }
func (s *TxStats) IncSplit(d int64) int64                     { return atomic.AddInt64(&s.Split, d) }
func (s *TxStats) GetSpill() int64                            { return atomic.LoadInt64(&s.Spill) }
func (s *TxStats) IncSpill(d int64) int64                     { return atomic.AddInt64(&s.Spill, d) }
func (s *TxStats) GetSpillTime() time.Duration                { return loadDuration(&s.SpillTime) }
func (s *TxStats) IncSpillTime(d time.Duration) time.Duration { return addDuration(&s.SpillTime, d) }
func (s *TxStats) GetWrite() int64                            { return atomic.LoadInt64(&s.Write) }
func (s *TxStats) IncWrite(d int64) int64                     { return atomic.AddInt64(&s.Write, d) }
func (s *TxStats) GetWriteTime() time.Duration                { return loadDuration(&s.WriteTime) }
func (s *TxStats) IncWriteTime(d time.Duration) time.Duration { return addDuration(&s.WriteTime, d) }
func (s *TxStats) GetAllocTime() time.Duration                { return loadDuration(&s.AllocTime) }
func (s *TxStats) IncAllocTime(d time.Duration) time.Duration { return addDuration(&s.AllocTime, d) }

func loadDuration(p *time.Duration) time.Duration {
	return time.Duration(atomic.LoadInt64((*int64)(p)))
}

func addDuration(p *time.Duration, d time.Duration) time.Duration {
	return time.Duration(atomic.AddInt64((*int64)(p), int64(d)))
}

// Add adds o's counts to s, atomically field by field.
func (s *TxStats) Add(o *TxStats) {
	s.IncPageCount(o.GetPageCount())
	s.IncPageAlloc(o.GetPageAlloc())
	s.IncCursorCount(o.GetCursorCount())
	s.IncNodeCount(o.GetNodeCount())
	s.IncNodeDeref(o.GetNodeDeref())
	s.IncRebalance(o.GetRebalance())
	s.IncRebalanceTime(o.GetRebalanceTime())
	s.IncSplit(o.GetSplit())
	s.IncSpill(o.GetSpill())
	s.IncSpillTime(o.GetSpillTime())
	s.IncWrite(o.GetWrite())
	s.IncWriteTime(o.GetWriteTime())
	s.IncAllocTime(o.GetAllocTime())
}

// Sub returns s minus other: the work done between two readings of
// DB.Stats. A nil other is taken as zero.
func (s *TxStats) Sub(other *TxStats) TxStats {
	if other == nil {
		other = &TxStats{}
	}
	var d TxStats
	d.PageCount = s.GetPageCount() - other.GetPageCount()
	d.PageAlloc = s.GetPageAlloc() - other.GetPageAlloc()
	d.CursorCount = s.GetCursorCount() - other.GetCursorCount()
	d.NodeCount = s.GetNodeCount() - other.GetNodeCount()
	d.NodeDeref = s.GetNodeDeref() - other.GetNodeDeref()
	d.Rebalance = s.GetRebalance() - other.GetRebalance()
	d.RebalanceTime = s.GetRebalanceTime() - other.GetRebalanceTime()
	d.Split = s.GetSplit() - other.GetSplit()
	d.Spill = s.GetSpill() - other.GetSpill()
	d.SpillTime = s.GetSpillTime() - other.GetSpillTime()
	d.Write = s.GetWrite() - other.GetWrite()
	d.WriteTime = s.GetWriteTime() - other.GetWriteTime()
	d.AllocTime = s.GetAllocTime() - other.GetAllocTime()
	return d
}
