package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

// bbolt's tool has no put; quiver's follows get: the same path of buckets,
// the same --parse-format for every argument. It refuses to create what
// does not exist unless asked (--create), so that a mistyped file or
// bucket name fails instead of quietly writing somewhere new.

func newPutCommand() *cobra.Command {
	var (
		timeout   *time.Duration
		parse     *choice
		create    bool
		valueFile string
	)
	cmd := &cobra.Command{
		Use:   "put PATH BUCKET [BUCKET...] KEY VALUE",
		Short: "set the value of a key",
		Long: `Put sets KEY to VALUE in the bucket at the path BUCKET..., in one write
transaction, replacing any value the key had. The file and the buckets must
exist unless --create is given, which creates the database file and every
missing bucket on the path. A KEY that names a nested bucket is an error.

With --value-file the value is read from that file ("-" for standard input)
instead of the last argument: for values that are large or binary.`,
		Example: "  quiver put my.db users alice 'Alice Liddell'\n" +
			"  quiver put --create my.db config limits max 100\n" +
			"  quiver put --parse-format hex my.db blobs 00ff 0a0b0c\n" +
			"  quiver put --value-file photo.jpg my.db photos alice",
		Args: argsBetween(3, -1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			parts, err := parseAll(args[1:], parse.value)
			if err != nil {
				return err
			}
			var value []byte
			if valueFile == "" {
				if len(parts) < 3 {
					return usagef("want PATH BUCKET... KEY VALUE, or --value-file")
				}
				parts, value = parts[:len(parts)-1], parts[len(parts)-1]
			} else if value, err = readValueFile(valueFile, cmd.InOrStdin()); err != nil {
				return err
			}
			path, key := parts[:len(parts)-1], parts[len(parts)-1]
			if len(key) == 0 {
				return usagef("empty key")
			}
			for _, name := range path {
				if len(name) == 0 {
					return usagef("empty bucket name")
				}
			}
			db, err := openWrite(args[0], *timeout, create)
			if err != nil {
				return err
			}
			err = db.Update(func(t *quiver.Tx) error {
				var b *quiver.Bucket
				var err error
				if create {
					b, err = createBuckets(t, path)
				} else {
					b, err = bucketAt(t, path)
				}
				if err != nil {
					return err
				}
				if err := b.Put(key, value); err != nil {
					if errors.Is(err, quiver.ErrIncompatibleValue) {
						return fmt.Errorf("%s is a bucket, not a key", showPath(parts))
					}
					return fmt.Errorf("%s: %w", showPath(parts), err)
				}
				return nil
			})
			return errors.Join(err, db.Close())
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	parse = addParseFormatFlag(cmd.Flags(), "bucket names, the key and the value")
	cmd.Flags().BoolVarP(&create, "create", "c", false, "create the database file and the buckets on the path if missing")
	cmd.Flags().StringVar(&valueFile, "value-file", "", `read the value from this file ("-": standard input), as it is`)
	return cmd
}

// createBuckets returns the bucket at path, creating what is missing.
func createBuckets(t *quiver.Tx, path [][]byte) (*quiver.Bucket, error) {
	b, err := t.CreateBucketIfNotExists(path[0])
	for i := 1; err == nil && i < len(path); i++ {
		b, err = b.CreateBucketIfNotExists(path[i])
	}
	if errors.Is(err, quiver.ErrIncompatibleValue) {
		return nil, fmt.Errorf("a key is in the way of bucket path %s", showPath(path))
	}
	return b, err
}

// readValueFile reads a value from name, or from stdin for "-".
func readValueFile(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}
