package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

// bucketTree is a bucket in inspect's JSON. name, keyN and buckets are
// bbolt's fields (its Tx.Inspect); the sizes and the sequence are quiver's.
type bucketTree struct {
	Name string `json:"name"`
	// KeyN counts the bucket's own key/value pairs, not its nested
	// buckets' names, as bbolt does.
	KeyN int `json:"keyN"`
	// KeyBytes and ValueBytes add up the lengths of those pairs.
	KeyBytes   int64        `json:"keyBytes"`
	ValueBytes int64        `json:"valueBytes"`
	Sequence   uint64       `json:"sequence"`
	Buckets    []bucketTree `json:"buckets,omitempty"`
}

func newInspectCommand() *cobra.Command {
	var (
		timeout *time.Duration
		format  *choice
	)
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "print the tree of buckets as JSON, with key counts, sizes and sequences",
		Long: `Inspect prints the database's buckets as a JSON tree, as bbolt inspect does:
a "root" object whose "buckets" are the top-level buckets, each with its name
(in --format), its number of key/value pairs ("keyN", nested buckets not
counted), the bytes of their keys and values, its sequence, and its own
nested buckets.`,
		Example: "  quiver inspect my.db | jq '.buckets[].name'",
		Args:    argsBetween(1, 1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			db, err := openRead(args[0], *timeout)
			if err != nil {
				return err
			}
			defer db.Close()
			tree := bucketTree{Name: "root"}
			err = db.View(func(t *quiver.Tx) error {
				return t.ForEach(func(name []byte, b *quiver.Bucket) error {
					tree.Buckets = append(tree.Buckets, inspectBucket(name, b, format.value))
					return nil
				})
			})
			if err != nil {
				return err
			}
			out, err := json.MarshalIndent(tree, "", "    ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return err
		}),
	}
	timeout = addTimeoutFlag(cmd.Flags())
	format = addFormatFlag(cmd.Flags(), "bucket names")
	return cmd
}

func inspectBucket(name []byte, b *quiver.Bucket, format string) bucketTree {
	n := bucketTree{Name: formatBytes(name, format), Sequence: b.Sequence()}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if child := b.Bucket(k); child != nil {
				n.Buckets = append(n.Buckets, inspectBucket(k, child, format))
				continue
			}
		}
		n.KeyN++
		n.KeyBytes += int64(len(k))
		n.ValueBytes += int64(len(v))
	}
	return n
}
