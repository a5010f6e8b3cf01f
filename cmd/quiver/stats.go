package main

import (
	"bytes"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

func newStatsCommand() *cobra.Command {
	var (
		timeout       *time.Duration
		format, parse *choice
	)
	cmd := &cobra.Command{
		Use:   "stats PATH [PREFIX]",
		Short: "print page, key and space statistics of the buckets and the file",
		Long: `Stats walks every bucket whose top-level name starts with PREFIX (all of them
by default) and prints, as bbolt stats does, their aggregate page counts,
tree sizes and page utilisation (Bucket.Stats, nested buckets included); then
the same per top-level bucket; then what every page of the file is used for,
and the freelist: its spans, free and pending pages, and the bytes its
checkpoint and commit records take.

Pending pages are pages freed while a reader may still see them; they exist
only inside a process that has the database open, so a file at rest has none.`,
		Example: "  quiver stats my.db\n  quiver stats my.db user",
		Args:    argsBetween(1, 2),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			var prefix []byte
			if len(args) > 1 {
				p, err := parseAll(args[1:], parse.value)
				if err != nil {
					return err
				}
				prefix = p[0]
			}
			return withPages(args[0], *timeout, func(db *quiver.DB, pf *pageFile) error {
				return printStats(cmd.OutOrStdout(), db, pf, prefix, format.value)
			})
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	format = addFormatFlag(cmd.Flags(), "bucket names")
	parse = addParseFormatFlag(cmd.Flags(), "the prefix")
	return cmd
}

// bucketStats is one top-level bucket's statistics.
type bucketStats struct {
	name []byte
	s    quiver.BucketStats
}

func printStats(w io.Writer, db *quiver.DB, pf *pageFile, prefix []byte, format string) error {
	var all quiver.BucketStats
	var each []bucketStats
	err := db.View(func(t *quiver.Tx) error {
		return t.ForEach(func(name []byte, b *quiver.Bucket) error {
			if bytes.HasPrefix(name, prefix) {
				s := b.Stats()
				all.Add(s)
				each = append(each, bucketStats{bytes.Clone(name), s})
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	pct := func(part, whole int) int {
		if whole == 0 {
			return 0
		}
		return int(float64(part) * 100 / float64(whole))
	}

	fmt.Fprintf(w, "Aggregate statistics for %d buckets\n\n", len(each))
	fmt.Fprintln(w, "Page count statistics")
	fmt.Fprintf(w, "\tNumber of logical branch pages: %d\n", all.BranchPageN)
	fmt.Fprintf(w, "\tNumber of physical branch overflow pages: %d\n", all.BranchOverflowN)
	fmt.Fprintf(w, "\tNumber of logical leaf pages: %d\n", all.LeafPageN)
	fmt.Fprintf(w, "\tNumber of physical leaf overflow pages: %d\n", all.LeafOverflowN)
	fmt.Fprintln(w, "Tree statistics")
	fmt.Fprintf(w, "\tNumber of keys/value pairs: %d\n", all.KeyN)
	fmt.Fprintf(w, "\tNumber of levels in B+tree: %d\n", all.Depth)
	fmt.Fprintln(w, "Page size utilization")
	fmt.Fprintf(w, "\tBytes allocated for physical branch pages: %d\n", all.BranchAlloc)
	fmt.Fprintf(w, "\tBytes actually used for branch data: %d (%d%%)\n", all.BranchInuse, pct(all.BranchInuse, all.BranchAlloc))
	fmt.Fprintf(w, "\tBytes allocated for physical leaf pages: %d\n", all.LeafAlloc)
	fmt.Fprintf(w, "\tBytes actually used for leaf data: %d (%d%%)\n", all.LeafInuse, pct(all.LeafInuse, all.LeafAlloc))
	fmt.Fprintln(w, "Bucket statistics")
	fmt.Fprintf(w, "\tTotal number of buckets: %d\n", all.BucketN)
	// quiver has no inline buckets (bbolt's next two lines); a bucket
	// without keys has no pages instead.
	fmt.Fprintf(w, "\tTotal number of empty buckets: %d (%d%%)\n", all.EmptyBucketN, pct(all.EmptyBucketN, all.BucketN))

	if len(each) > 0 {
		fmt.Fprintln(w, "\nPer-bucket statistics (nested buckets included)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "KEYS\tBUCKETS\tDEPTH\tBRANCH\tLEAF\tOVERFLOW\tLEAF USE\t  BUCKET")
		for _, b := range each {
			s := b.s
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d%%\t  %s\n", s.KeyN, s.BucketN, s.Depth, s.BranchPageN, s.LeafPageN,
				s.BranchOverflowN+s.LeafOverflowN, pct(s.LeafInuse, s.LeafAlloc), formatBytes(b.name, format))
		}
		tw.Flush()
	}

	l := mapLayout(pf)
	c := l.count()
	ps := int64(pf.pageSize)
	hw := int64(pf.meta.HighWater)
	fmt.Fprintln(w, "\nFile statistics")
	fmt.Fprintf(w, "\tPage size: %d\n", ps)
	fmt.Fprintf(w, "\tFile size: %d bytes (%d pages)\n", pf.size, pf.filePages())
	fmt.Fprintf(w, "\tHigh water mark: %d pages (%d bytes)\n", hw, hw*ps)
	for _, k := range []struct{ kind, label string }{
		{kindMeta, "Meta pages"},
		{kindBranch, "Branch pages"},
		{kindLeaf, "Leaf pages"},
		{kindOverflow, "Overflow pages"},
		{kindFreelist, "Freelist checkpoint pages"},
		{kindCommit, "Commit record pages"},
		{kindFree, "Free pages"},
		{kindUnreachable, "Unreachable pages"},
		{kindCorrupt, "Unreadable pages"},
	} {
		if n := c[k.kind]; n > 0 || (k.kind != kindUnreachable && k.kind != kindCorrupt) {
			fmt.Fprintf(w, "\t%s: %d (%d%%)\n", k.label, n, pct(n, int(hw)))
		}
	}

	fmt.Fprintln(w, "Freelist")
	largest := uint64(0)
	for _, s := range l.free {
		largest = max(largest, s.N)
	}
	fmt.Fprintf(w, "\tNumber of free pages: %d (%d bytes)\n", l.freePages(), int64(l.freePages())*ps)
	fmt.Fprintf(w, "\tNumber of pending pages: %d\n", db.Stats().PendingPageN)
	fmt.Fprintf(w, "\tNumber of free spans: %d (largest %d pages)\n", len(l.free), largest)
	if len(l.free) > 0 {
		fmt.Fprintf(w, "\tFree spans by length: %s\n", spanHistogram(l))
	}
	cp := int64(l.use(pf.meta.Freelist).overflow) + 1
	fmt.Fprintf(w, "\tBytes of freelist on disk: %d (checkpoint %d pages, %d commit records %d pages)\n",
		(cp+int64(l.chainPages()))*ps, cp, len(l.chain), l.chainPages())
	for _, err := range l.problems {
		fmt.Fprintf(w, "Problem: %v\n", err)
	}
	return nil
}

// spanHistogram counts free spans by length in powers of two:
// "1:12 2-3:4 4-7:1".
func spanHistogram(l *layout) string {
	var counts [65]int
	for _, s := range l.free {
		counts[bits.Len64(s.N)]++
	}
	var parts []string
	for i, n := range counts {
		if n == 0 || i == 0 {
			continue
		}
		lo, hi := uint64(1)<<(i-1), uint64(1)<<i-1
		if lo == hi {
			parts = append(parts, fmt.Sprintf("%d:%d", lo, n))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d:%d", lo, hi, n))
		}
	}
	return strings.Join(parts, " ")
}
