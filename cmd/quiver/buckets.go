package main

import (
	"fmt"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

func newBucketsCommand() *cobra.Command {
	var (
		timeout       *time.Duration
		format, parse *choice
	)
	cmd := &cobra.Command{
		Use:   "buckets PATH [BUCKET...]",
		Short: "print the names of the top-level buckets, or of the buckets nested in BUCKET...",
		Long: `Buckets prints the name of each top-level bucket, one a line, in key order.
Given a bucket path it prints the buckets nested in that bucket instead.`,
		Example: "  quiver buckets my.db\n  quiver buckets my.db users",
		Args:    argsBetween(1, -1),
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
				show := func(name []byte) error {
					_, err := fmt.Fprintln(w, formatBytes(name, format.value))
					return err
				}
				if len(path) == 0 {
					return t.ForEach(func(name []byte, _ *quiver.Bucket) error { return show(name) })
				}
				b, err := bucketAt(t, path)
				if err != nil {
					return err
				}
				return b.ForEachBucket(show)
			})
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	format = addFormatFlag(cmd.Flags(), "bucket names")
	parse = addParseFormatFlag(cmd.Flags(), "bucket names")
	return cmd
}
