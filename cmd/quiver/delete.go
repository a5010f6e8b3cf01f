package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

func newDeleteCommand() *cobra.Command {
	var (
		timeout *time.Duration
		parse   *choice
		bucket  bool
	)
	cmd := &cobra.Command{
		Use:   "delete PATH BUCKET [BUCKET...] KEY",
		Short: "delete a key, or with --bucket a bucket and everything in it",
		Long: `Delete removes KEY from the bucket at the path BUCKET..., in one write
transaction. A missing key is an error (status 1), so that a mistyped name is
noticed. A KEY that names a nested bucket is refused unless --bucket is given;
with --bucket the last argument must name a bucket, which is deleted with all
it holds (a top-level one too: quiver delete --bucket PATH NAME).`,
		Example: "  quiver delete my.db users alice\n  quiver delete --bucket my.db users sessions",
		Args:    argsBetween(2, -1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			parts, err := parseAll(args[1:], parse.value)
			if err != nil {
				return err
			}
			if len(parts) < 2 && !bucket {
				return usagef("want PATH BUCKET... KEY")
			}
			path, key := parts[:len(parts)-1], parts[len(parts)-1]
			if len(key) == 0 {
				return usagef("empty key")
			}
			db, err := openWrite(args[0], *timeout, false)
			if err != nil {
				return err
			}
			err = db.Update(func(t *quiver.Tx) error {
				if bucket && len(path) == 0 {
					return deleteErr(t.DeleteBucket(key), parts)
				}
				b, err := bucketAt(t, path)
				if err != nil {
					return err
				}
				if bucket {
					return deleteErr(b.DeleteBucket(key), parts)
				}
				switch _, found, isBucket, err := lookup(b, key); {
				case err != nil:
					return err
				case isBucket:
					return fmt.Errorf("%s is a bucket; delete it with --bucket", showPath(parts))
				case !found:
					return fmt.Errorf("%s: %w", showPath(parts), errKeyNotFound)
				}
				return b.Delete(key)
			})
			return errors.Join(err, db.Close())
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	parse = addParseFormatFlag(cmd.Flags(), "bucket names and the key")
	cmd.Flags().BoolVar(&bucket, "bucket", false, "the last argument names a bucket: delete it and everything in it")
	return cmd
}

// deleteErr explains an error of DeleteBucket for the bucket at path.
func deleteErr(err error, path [][]byte) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, quiver.ErrBucketNotFound):
		return fmt.Errorf("bucket %s not found", showPath(path))
	case errors.Is(err, quiver.ErrIncompatibleValue):
		return fmt.Errorf("%s is a key, not a bucket", showPath(path))
	}
	return err
}
