package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

func newPagesCommand() *cobra.Command {
	var timeout *time.Duration
	cmd := &cobra.Command{
		Use:   "pages PATH",
		Short: "print a table of the pages below the high water mark and what each is",
		Long: `Pages prints a table of every page below the high water mark of the
database's current state, as bbolt pages does:

	ID       TYPE       ITEMS  OVRFLW

TYPE is meta, branch, leaf, freelist (the freelist checkpoint), commit (a
commit record chained since it), free, or, in a damaged file, unreachable
(neither referred to nor free) or corrupt (referred to but does not verify).
ITEMS counts the keys of a branch or leaf page, the free pages a freelist
checkpoint lists, and the spans a commit record lists. OVRFLW is the number of
pages a span takes after its first, which the table does not list.

Problems met on the way are printed on stderr after the table, and make the
status 1; quiver check explains them in full.`,
		Example: "  quiver pages my.db",
		Args:    argsBetween(1, 1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return withPages(args[0], *timeout, func(_ *quiver.DB, pf *pageFile) error {
				l := mapLayout(pf)
				printPages(cmd.OutOrStdout(), l)
				for _, err := range l.problems {
					fmt.Fprintf(cmd.ErrOrStderr(), "problem: %s\n", oneLine(err.Error()))
				}
				if n := len(l.problems); n > 0 {
					return fmt.Errorf("%d problems found; run quiver check", n)
				}
				return nil
			})
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	return cmd
}

func printPages(w io.Writer, l *layout) {
	fmt.Fprintln(w, "ID       TYPE       ITEMS  OVRFLW")
	fmt.Fprintln(w, "======== ========== ====== ======")
	for id, u := range l.pages {
		if u.kind == kindOverflow {
			continue
		}
		// As bbolt: no counts for free pages, no overflow when there is
		// none.
		var items, overflow string
		switch u.kind {
		case kindFree, kindUnreachable, kindCorrupt:
		default:
			items = strconv.Itoa(u.items)
			if u.overflow > 0 {
				overflow = strconv.Itoa(int(u.overflow))
			}
		}
		fmt.Fprintf(w, "%-8d %-10s %-6s %-6s\n", id, u.kind, items, overflow)
	}
}
