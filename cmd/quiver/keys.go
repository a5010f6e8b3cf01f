package main

import (
	"fmt"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

func newKeysCommand() *cobra.Command {
	var (
		timeout       *time.Duration
		format, parse *choice
	)
	cmd := &cobra.Command{
		Use:   "keys PATH BUCKET [BUCKET...]",
		Short: "print the keys of a bucket, nested buckets' names included",
		Long: `Keys prints each key of the bucket at the path BUCKET..., one a line, in key
order. As in bbolt, the names of nested buckets are keys too.`,
		Example: "  quiver keys my.db users\n  quiver keys --format hex my.db users sessions",
		Args:    argsBetween(2, -1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			path, err := parseAll(args[1:], parse.value)
			if err != nil {
				return err
			}
			db, err := openRead(args[0], *timeout)
			if err != nil {
				return err
			}
			defer db.Close()
			w := cmd.OutOrStdout()
			return db.View(func(t *quiver.Tx) error {
				b, err := bucketAt(t, path)
				if err != nil {
					return err
				}
				return b.ForEach(func(k, _ []byte) error {
					_, err := fmt.Fprintln(w, formatBytes(k, format.value))
					return err
				})
			})
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	format = addFormatFlag(cmd.Flags(), "keys")
	parse = addParseFormatFlag(cmd.Flags(), "bucket names")
	return cmd
}
