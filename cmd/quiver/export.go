package main

import (
	"context"

	"github.com/spf13/cobra"
)

func newExportCommand() *cobra.Command {
	var (
		o       migrateOptions
		toBbolt bool
	)
	cmd := &cobra.Command{
		Use:   "export --to-bbolt SRC DST",
		Short: "copy a quiver database into a new bbolt file",
		Long: `Export copies every bucket (nested ones too, at any depth), key, value and
bucket sequence of the quiver database SRC into a new bbolt database DST, so
that a program can go back to bbolt. It writes in transactions of about
--tx-max-size bytes of keys and values, then reopens DST, runs bbolt's check
on it, and compares the number of buckets and keys and an xxhash64 of the
contents of both files (every bucket path, sequence, key and value, in
order), and prints:

	SRC (quiver) -> DST (bbolt): N buckets, M keys, xxhash H OK

SRC is opened read-only, under a shared lock, and left as it is. DST must not
exist; it gets SRC's permissions and page size. When both stdout and stderr
are terminals, progress is shown on stderr. If anything fails, DST is
removed. quiver import --from-bbolt goes the other way.

--to-bbolt names the format of DST; it is the only one export writes.`,
		Example: "  quiver export --to-bbolt my.db my.bolt.db",
		Args:    argsBetween(2, 2),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if !toBbolt {
				return usagef("want --to-bbolt: bbolt is the only format export writes")
			}
			if o.txMaxSize <= 0 {
				return usagef("invalid --tx-max-size %d: want at least 1", o.txMaxSize)
			}
			return runMigrate(context.Background(), cmd.OutOrStdout(), cmd.ErrOrStderr(), quiverFormat{}, bboltFormat{}, args[0], args[1], &o)
		}),
	}
	cmd.Flags().BoolVar(&toBbolt, "to-bbolt", false, "DST is to be a bbolt database (required)")
	addMigrateFlags(cmd, &o)
	return cmd
}
