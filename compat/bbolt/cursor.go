package bbolt

import "github.com/quiverdb/quiver"

// Cursor walks a bucket in key order: a wrapper of quiver's that knows its
// *Bucket.
type Cursor struct {
	c *quiver.Cursor
	b *Bucket
}

// Bucket returns the cursor's bucket.
func (c *Cursor) Bucket() *Bucket { return c.b }

// First, Last, Next, Prev and Seek move the cursor and return the key and
// value there (a nested bucket's value is nil; nil key past the ends).
func (c *Cursor) First() (key []byte, value []byte)    { return c.c.First() }
func (c *Cursor) Last() (key []byte, value []byte)     { return c.c.Last() }
func (c *Cursor) Next() (key []byte, value []byte)     { return c.c.Next() }
func (c *Cursor) Prev() (key []byte, value []byte)     { return c.c.Prev() }
func (c *Cursor) Seek(seek []byte) (key, value []byte) { return c.c.Seek(seek) }

// Delete removes the key under the cursor.
func (c *Cursor) Delete() error { return c.c.Delete() }
