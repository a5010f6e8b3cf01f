package main

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func newDumpCommand() *cobra.Command {
	var timeout *time.Duration
	cmd := &cobra.Command{
		Use:   "dump PATH ID [ID...]",
		Short: "print a hex dump of pages",
		Long: `Dump prints each page ID as hex, as bbolt dump does: sixteen bytes a line in
two-byte groups, after the line's offset in the file; a run of lines equal to
the one before is printed once as "*". Only the page itself is dumped, not
the pages its span overflows into: dump those by their ids.

A file the engine refuses as damaged is read as it is, with a warning.`,
		Example: "  quiver dump my.db 0 1",
		Args:    argsBetween(2, -1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			ids, err := parsePageIDs(args[1:])
			if err != nil {
				return err
			}
			pf, closeFn, err := openForPages(cmd.ErrOrStderr(), args[0], *timeout)
			if err != nil {
				return err
			}
			defer closeFn()
			w := cmd.OutOrStdout()
			for i, id := range ids {
				if i > 0 {
					fmt.Fprintln(w, "===============================================")
				}
				p, err := pf.raw(id, 1)
				if err != nil {
					return err
				}
				hexDump(w, p, int64(id)*int64(pf.pageSize))
			}
			return nil
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	return cmd
}

// hexDump prints b, which starts at offset addr of the file, as od -x
// would with byte order kept: the offset, then eight groups of two bytes.
func hexDump(w io.Writer, b []byte, addr int64) {
	const width = 16
	var prev []byte
	skipping := false
	for off := 0; off < len(b); off += width {
		line := b[off:min(off+width, len(b))]
		last := off+width >= len(b)
		if !last && bytes.Equal(line, prev) {
			if !skipping {
				fmt.Fprintf(w, "%07x *\n", addr+int64(off))
				skipping = true
			}
			continue
		}
		skipping = false
		prev = line
		fmt.Fprintf(w, "%07x", addr+int64(off))
		for g := 0; g < len(line); g += 2 {
			fmt.Fprintf(w, " %x", line[g:min(g+2, len(line))])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}
