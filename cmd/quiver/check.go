package main

import (
	"fmt"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
	"github.com/spf13/cobra"
)

func newCheckCommand() *cobra.Command {
	var timeout *time.Duration
	cmd := &cobra.Command{
		Use:   "check PATH",
		Short: "verify every page and the structure of the database",
		Long: `Check runs the engine's full consistency check (Tx.Check) on the database's
current state: every page below the high water mark is a meta page, part of
exactly one bucket tree, the freelist checkpoint, a commit record or free;
every reachable page's checksum, header and elements are sound; keys are in
order; the commit record matches the pages it lists.

It prints each problem on its own line, then "OK", or "N errors found" and
exits with status 1. A database too damaged to open counts as one problem.`,
		Example: "  quiver check my.db",
		Args:    argsBetween(1, 1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			path := args[0]
			db, err := openRead(path, *timeout)
			if quiver.IsCorruption(err) {
				fmt.Fprintln(w, oneLine(err.Error()))
				fmt.Fprintln(w, "1 errors found")
				return &exitStatus{1}
			}
			if err != nil {
				return err
			}
			defer db.Close()
			n := 0
			err = db.View(func(t *quiver.Tx) error {
				m := t.Meta()
				noteSkippedMeta(cmd, path, &m)
				for problem := range t.Check() {
					fmt.Fprintln(w, oneLine(problem.Error()))
					n++
				}
				return nil
			})
			if err != nil {
				return err
			}
			if n > 0 {
				fmt.Fprintf(w, "%d errors found\n", n)
				return &exitStatus{1}
			}
			fmt.Fprintln(w, "OK")
			return nil
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	return cmd
}

// noteSkippedMeta tells, on stderr, when the database opened at an older
// state than its newest meta: the engine falls back when the newest
// commit's record does not verify. After a crash that is recovery working;
// otherwise it is damage to the pages that commit wrote, which no check of
// the older state can see.
func noteSkippedMeta(cmd *cobra.Command, path string, opened *page.Meta) {
	pf, err := openPageFileRaw(path, defaultLockTimeout)
	if err != nil {
		return
	}
	defer pf.Close()
	if pf.meta.Txid > opened.Txid {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: meta page %d names tx %d, whose commit does not verify; the database opens at tx %d (a commit cut short by a crash, or damage to the pages it wrote)\n",
			pf.slot, pf.meta.Txid, opened.Txid)
	}
}
