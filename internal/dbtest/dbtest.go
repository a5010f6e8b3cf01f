// Package dbtest holds test helpers over quiver databases that tests of
// several packages share.
package dbtest

import (
	"fmt"

	"github.com/quiverdb/quiver"
)

// Flatten returns the whole content of the transaction's snapshot as one
// map: every bucket (nested ones included) as "\x00name/" -> "bucket", its
// sequence as "prefix#seq", and every key as "prefix\x00key" -> value,
// where prefix is the bucket's path. Two snapshots hold the same data if
// and only if their maps are equal.
func Flatten(tx *quiver.Tx) (map[string]string, error) {
	out := map[string]string{}
	var walk func(b *quiver.Bucket, prefix string) error
	walk = func(b *quiver.Bucket, prefix string) error {
		out[prefix+"#seq"] = fmt.Sprint(b.Sequence())
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if child := b.Bucket(k); child != nil {
					out[prefix+"\x00"+string(k)+"/"] = "bucket"
					return walk(child, prefix+"\x00"+string(k)+"/")
				}
			}
			out[prefix+"\x00"+string(k)] = string(v)
			return nil
		})
	}
	err := tx.ForEach(func(name []byte, b *quiver.Bucket) error {
		out["\x00"+string(name)+"/"] = "bucket"
		return walk(b, "\x00"+string(name)+"/")
	})
	return out, err
}
