package main

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

// errKeyNotFound is returned by get and delete for a missing key.
var errKeyNotFound = errors.New("key not found")

// lookup finds key in b with a cursor, which tells a missing key from an
// empty value whatever Get returns for the latter. A lookup that stopped at
// a damaged page returns the transaction's error.
func lookup(b *quiver.Bucket, key []byte) (value []byte, found, isBucket bool, err error) {
	k, v := b.Cursor().Seek(key)
	if err := b.Tx().Err(); err != nil {
		return nil, false, false, err
	}
	if !bytes.Equal(k, key) {
		return nil, false, false, nil
	}
	if v == nil && b.Bucket(key) != nil {
		return nil, true, true, nil
	}
	return v, true, false, nil
}

func newGetCommand() *cobra.Command {
	var (
		timeout       *time.Duration
		format, parse *choice
	)
	cmd := &cobra.Command{
		Use:   "get PATH BUCKET [BUCKET...] KEY",
		Short: "print the value of a key",
		Long: `Get prints the value of KEY in the bucket at the path BUCKET..., followed by a
newline. A missing key, or a KEY that names a nested bucket, is an error
(status 1).`,
		Example: "  quiver get my.db users alice\n  quiver get --parse-format hex --format hex my.db blobs 00ff",
		Args:    argsBetween(3, -1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			parts, err := parseAll(args[1:], parse.value)
			if err != nil {
				return err
			}
			path, key := parts[:len(parts)-1], parts[len(parts)-1]
			if len(key) == 0 {
				return usagef("empty key")
			}
			db, err := openRead(args[0], *timeout)
			if err != nil {
				return err
			}
			defer db.Close()
			return db.View(func(t *quiver.Tx) error {
				b, err := bucketAt(t, path)
				if err != nil {
					return err
				}
				v, found, isBucket, err := lookup(b, key)
				switch {
				case err != nil:
					return err
				case isBucket:
					return fmt.Errorf("%s is a bucket, not a key", showPath(parts))
				case !found:
					return fmt.Errorf("%s: %w", showPath(parts), errKeyNotFound)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), formatBytes(v, format.value))
				return err
			})
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	format = addFormatFlag(cmd.Flags(), "the value")
	parse = addParseFormatFlag(cmd.Flags(), "bucket names and the key")
	return cmd
}
