package main

import (
	"fmt"
	"io"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
	"github.com/spf13/cobra"
)

func newInfoCommand() *cobra.Command {
	var timeout *time.Duration
	cmd := &cobra.Command{
		Use:   "info PATH",
		Short: "print the page size, file size, txid, high water mark, root and freelist",
		Long: `Info prints what the meta page of the database's current state says, and a
summary of its freelist: the checkpoint, the commit records chained since it,
and the free pages they describe. The first line is bbolt info's.`,
		Example: "  quiver info my.db",
		Args:    argsBetween(1, 1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return withPages(args[0], *timeout, func(_ *quiver.DB, pf *pageFile) error {
				return printInfo(cmd.OutOrStdout(), pf)
			})
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	return cmd
}

func printInfo(w io.Writer, pf *pageFile) error {
	m, ps := pf.meta, int64(pf.pageSize)
	l := mapLayout(pf)
	fmt.Fprintf(w, "Page Size: %d\n", ps)
	fmt.Fprintf(w, "File Size: %d bytes (%d pages)\n", pf.size, pf.filePages())
	fmt.Fprintf(w, "Txid: %d (meta page %d)\n", m.Txid, pf.slot)
	fmt.Fprintf(w, "High Water: %d pages (%d bytes)\n", m.HighWater, int64(m.HighWater)*ps)
	if m.Root == 0 {
		fmt.Fprintln(w, "Root: none (no buckets)")
	} else {
		fmt.Fprintf(w, "Root: page %d\n", m.Root)
	}
	// The freelist's in-memory index is a choice of the process that
	// writes; the file stores spans, which either index loads.
	fmt.Fprintf(w, "Freelist Type: %s (a writer's choice; the file stores spans)\n", quiver.FreelistHashmap)
	if fl := l.use(m.Freelist); fl.kind == kindFreelist {
		cp, _ := pf.raw(m.Freelist, 1)
		fmt.Fprintf(w, "Freelist Checkpoint: page %d (%d pages, written by tx %d)\n", m.Freelist, fl.overflow+1, page.TxidOf(cp))
	} else {
		fmt.Fprintf(w, "Freelist Checkpoint: page %d (unreadable)\n", m.Freelist)
	}
	fmt.Fprintf(w, "Commit Records: %d chained since the checkpoint (%d pages)\n", len(l.chain), l.chainPages())
	fmt.Fprintf(w, "Free Pages: %d in %d spans (%d bytes)\n", l.freePages(), len(l.free), int64(l.freePages())*ps)
	for _, err := range l.problems {
		fmt.Fprintf(w, "Problem: %v\n", err)
	}
	return nil
}
