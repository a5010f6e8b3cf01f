package main

import (
	"context"

	"github.com/spf13/cobra"
)

func newImportCommand() *cobra.Command {
	var (
		o         migrateOptions
		fromBbolt bool
	)
	cmd := &cobra.Command{
		Use:   "import --from-bbolt SRC DST",
		Short: "copy a bbolt database into a new quiver file",
		Long: `Import copies every bucket (nested ones too, at any depth), key, value and
bucket sequence of the bbolt database SRC into a new quiver database DST, in
write transactions of about --tx-max-size bytes of keys and values. It then
reopens DST, runs quiver's check on it, and compares the number of buckets
and keys and an xxhash64 of the contents of both files (every bucket path,
sequence, key and value, in order), and prints:

	SRC (bbolt) -> DST (quiver): N buckets, M keys, xxhash H OK

SRC is opened read-only, under a shared lock, and left as it is. DST must not
exist; it gets SRC's permissions and SRC's page size if quiver allows it (a
power of two from 1 KiB to 16 MiB; 4 KiB otherwise). When both stdout and
stderr are terminals, progress is shown on stderr. If anything fails, DST is
removed. quiver export --to-bbolt goes back.

--from-bbolt names the format of SRC; it is the only one import reads.`,
		Example: "  quiver import --from-bbolt my.bolt.db my.db",
		Args:    argsBetween(2, 2),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if !fromBbolt {
				return usagef("want --from-bbolt: bbolt is the only format import reads")
			}
			if o.txMaxSize <= 0 {
				return usagef("invalid --tx-max-size %d: want at least 1", o.txMaxSize)
			}
			return runMigrate(context.Background(), cmd.OutOrStdout(), cmd.ErrOrStderr(), bboltFormat{}, quiverFormat{}, args[0], args[1], &o)
		}),
	}
	cmd.Flags().BoolVar(&fromBbolt, "from-bbolt", false, "SRC is a bbolt database (required)")
	addMigrateFlags(cmd, &o)
	return cmd
}
