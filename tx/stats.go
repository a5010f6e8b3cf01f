package tx

import "github.com/quiverdb/quiver/page"

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
