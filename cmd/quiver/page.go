package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quiverdb/quiver/page"
	"github.com/spf13/cobra"
)

func newPageCommand() *cobra.Command {
	var (
		timeout *time.Duration
		format  *choice
		all     bool
	)
	cmd := &cobra.Command{
		Use:   "page PATH ID [ID...]",
		Short: "decode pages: header and elements",
		Long: `Page decodes each page ID (with --all every page below the high water mark
but the free ones, which are only named) and prints its header, whether its checksum verifies, and its elements: the
keys and values of a leaf page (a nested bucket's value as its root page and
sequence), the keys and child pages of a branch page, the fields of a meta
page, the free spans of a freelist checkpoint, the lists of a commit record.
Keys and values print in --format.

A file the engine refuses as damaged is read as it is, with a warning, so
that its pages can still be looked at. A page that cannot be read or decoded
is reported and the next one printed; the status is then 1.`,
		Example: "  quiver page my.db 0 5\n  quiver page --all --format hex my.db",
		Args:    argsBetween(1, -1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			ids, err := parsePageIDs(args[1:])
			if err != nil {
				return err
			}
			if all == (len(ids) > 0) {
				return usagef("give page ids or --all, not both or neither")
			}
			pf, closeFn, err := openForPages(cmd.ErrOrStderr(), args[0], *timeout)
			if err != nil {
				return err
			}
			defer closeFn()
			w := cmd.OutOrStdout()
			var failed []error
			show := func(i int, id page.Pgid) {
				if i > 0 {
					fmt.Fprintln(w, "===============================================")
				}
				if err := printPage(w, pf, id, format.value); err != nil {
					fmt.Fprintf(w, "Error: %s\n", oneLine(err.Error()))
					failed = append(failed, err)
				}
			}
			if all {
				// Walk by what each page is used for: free pages hold
				// whatever was there, so they are named, not decoded.
				l := mapLayout(pf)
				i := 0
				for id, u := range l.pages {
					switch u.kind {
					case kindOverflow:
					case kindFree:
						if i > 0 {
							fmt.Fprintln(w, "===============================================")
						}
						fmt.Fprintf(w, "Page ID:    %d\nPage Type:  free\n", id)
						i++
					default:
						show(i, page.Pgid(id))
						i++
					}
				}
			}
			for i, id := range ids {
				show(i, id)
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d pages could not be decoded", len(failed))
			}
			return nil
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	format = addFormatFlag(cmd.Flags(), "keys and values")
	cmd.Flags().BoolVar(&all, "all", false, "print every page below the high water mark")
	return cmd
}

// printPage prints page id.
func printPage(w io.Writer, pf *pageFile, id page.Pgid, format string) error {
	p, err := pf.raw(id, 1)
	if err != nil {
		return err
	}
	ps := pf.pageSize
	short := func() error {
		fmt.Fprintf(w, "Total Size: %d bytes, cut short by the end of the file\n", len(p))
		return fmt.Errorf("page %d: only %d of its %d bytes are in the file", id, len(p), ps)
	}
	if len(p) < page.HeaderSize {
		fmt.Fprintf(w, "Page ID:    %d\n", id)
		return short()
	}
	flags, ov := page.Flags(p), page.Overflow(p)
	fmt.Fprintf(w, "Page ID:    %d\n", id)
	fmt.Fprintf(w, "Page Type:  %s (flags 0x%02x)\n", page.FlagName(flags), flags)
	fmt.Fprintf(w, "Header ID:  %d\n", page.ID(p))
	fmt.Fprintf(w, "Txid:       %d\n", page.TxidOf(p))
	fmt.Fprintf(w, "Overflow pages: %d\n", ov)
	if id < 2 {
		// A meta page's checksum covers its fields only; DecodeMeta
		// verifies it with them.
		fmt.Fprintf(w, "Total Size: %d bytes\n", len(p))
		m, err := page.DecodeMeta(p, id)
		if err != nil {
			fmt.Fprintf(w, "Checksum:   %016x (%s)\n", page.Checksum(p), oneLine(err.Error()))
			return err
		}
		fmt.Fprintf(w, "Checksum:   %016x (ok)\n", page.Checksum(p))
		printMeta(w, m)
		return nil
	}
	if len(p) < ps {
		return short()
	}
	if err := page.CheckHeader(p, id, ps); err != nil {
		fmt.Fprintf(w, "Total Size: %d bytes\n", ps)
		fmt.Fprintf(w, "Checksum:   %016x (header does not check)\n", page.Checksum(p))
		return err
	}
	if ov > 0 {
		if p, err = pf.raw(id, uint64(ov)+1); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "Total Size: %d bytes\n", len(p))
	if len(p) != (int(ov)+1)*ps {
		return fmt.Errorf("page %d: its %d overflow pages run past the end of the file", id, ov)
	}
	verr := page.Verify(p, id, ps)
	if verr != nil {
		fmt.Fprintf(w, "Checksum:   %016x (%s)\n", page.Checksum(p), oneLine(verr.Error()))
	} else {
		fmt.Fprintf(w, "Checksum:   %016x (ok)\n", page.Checksum(p))
	}
	var derr error
	switch flags {
	case page.FlagLeaf:
		derr = printLeaf(w, p, format)
	case page.FlagBranch:
		derr = printBranch(w, p, format)
	case page.FlagFreelist:
		derr = printFreelist(w, p, id, pf.meta.HighWater)
	case page.FlagCommit:
		derr = printRecord(w, p, id)
	}
	if verr != nil {
		// The elements were printed for what they are worth; the page
		// still counts as failed.
		return verr
	}
	return derr
}

func printMeta(w io.Writer, m *page.Meta) {
	fmt.Fprintf(w, "Version:    %d\n", page.Version)
	fmt.Fprintf(w, "Page Size:  %d bytes\n", m.PageSize)
	fmt.Fprintf(w, "Root:       <pgid=%d>\n", m.Root)
	fmt.Fprintf(w, "Sequence:   %d\n", m.Sequence)
	fmt.Fprintf(w, "Freelist:   <pgid=%d>\n", m.Freelist)
	fmt.Fprintf(w, "HWM:        <pgid=%d>\n", m.HighWater)
	fmt.Fprintf(w, "Txn ID:     %d\n", m.Txid)
	fmt.Fprintf(w, "Record:     <pgid=%d>\n", m.Record)
	fmt.Fprintf(w, "Record Sum: %016x\n", m.RecordSum)
}

var errElemBounds = errors.New("element out of bounds")

func printLeaf(w io.Writer, p []byte, format string) error {
	n := page.Count(p)
	fmt.Fprintf(w, "Item Count: %d\n\n", n)
	for i := range n {
		fl, k, v, ok := page.LeafElem(p, i)
		if !ok {
			return fmt.Errorf("element %d: %w", i, errElemBounds)
		}
		if fl&page.LeafBucket != 0 {
			h, ok := page.DecodeBucketHeader(v)
			if !ok {
				fmt.Fprintf(w, "%s: <bucket with a malformed header: %x>\n", formatBytes(k, format), v)
				continue
			}
			fmt.Fprintf(w, "%s: <bucket root=%d sequence=%d>\n", formatBytes(k, format), h.Root, h.Sequence)
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", formatBytes(k, format), formatBytes(v, format))
	}
	fmt.Fprintln(w)
	return nil
}

func printBranch(w io.Writer, p []byte, format string) error {
	n := page.Count(p)
	fmt.Fprintf(w, "Item Count: %d\n\n", n)
	for i := range n {
		child, k, ok := page.BranchElem(p, i)
		if !ok {
			return fmt.Errorf("element %d: %w", i, errElemBounds)
		}
		fmt.Fprintf(w, "%s: <pgid=%d>\n", formatBytes(k, format), child)
	}
	fmt.Fprintln(w)
	return nil
}

func printFreelist(w io.Writer, p []byte, id, hw page.Pgid) error {
	var spans []page.Span
	free := uint64(0)
	err := page.DecodeFreelist(p, id, hw, func(s page.Pgid, n uint64) {
		spans = append(spans, page.Span{ID: s, N: n})
		free += n
	})
	fmt.Fprintf(w, "Item Count: %d free pages in %d spans\n\n", free, len(spans))
	for _, s := range spans {
		printSpan(w, s)
	}
	fmt.Fprintln(w)
	return err
}

func printSpan(w io.Writer, s page.Span) {
	if s.N == 1 {
		fmt.Fprintf(w, "%d\n", s.ID)
	} else {
		fmt.Fprintf(w, "%d-%d (%d pages)\n", s.ID, uint64(s.ID)+s.N-1, s.N)
	}
}

func printRecord(w io.Writer, p []byte, id page.Pgid) error {
	r, err := page.DecodeRecord(p, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Commit Txid: %d\n", r.Txid)
	fmt.Fprintf(w, "Previous Record: <pgid=%d>\n", r.Prev)
	fmt.Fprintf(w, "Written: %d spans\n", len(r.Written))
	for _, s := range r.Written {
		fmt.Fprintf(w, "\t<pgid=%d> %d pages, checksum %016x\n", s.ID, s.N, s.Checksum)
	}
	for _, l := range []struct {
		name  string
		spans []page.Span
	}{{"Freed", r.Freed}, {"Allocated", r.Allocated}} {
		fmt.Fprintf(w, "%s: %d spans\n", l.name, len(l.spans))
		for _, s := range l.spans {
			fmt.Fprint(w, "\t")
			printSpan(w, s)
		}
	}
	fmt.Fprintln(w)
	return nil
}
