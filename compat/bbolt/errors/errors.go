// Package errors holds the errors of bbolt's API. Each is quiver's own
// error where quiver has one, so errors.Is and == match what quiver
// returns.
package errors

import (
	"errors"

	"github.com/quiverdb/quiver"
)

// Errors of opening and using a database.
var (
	ErrDatabaseNotOpen = quiver.ErrDatabaseNotOpen
	ErrInvalid         = quiver.ErrInvalid
	// ErrInvalidMapping is never returned: quiver maps the file with room
	// to spare and fails Open or the commit instead.
	ErrInvalidMapping  = errors.New("database isn't correctly mapped")
	ErrVersionMismatch = quiver.ErrVersionMismatch
	// ErrChecksum is quiver's ErrCorrupt: every page has a checksum, and a
	// mismatch in any is corruption.
	ErrChecksum = quiver.ErrCorrupt
	ErrTimeout  = quiver.ErrTimeout
)

// Errors of transactions.
var (
	ErrTxNotWritable    = quiver.ErrTxNotWritable
	ErrTxClosed         = quiver.ErrTxClosed
	ErrDatabaseReadOnly = quiver.ErrDatabaseReadOnly
	// ErrFreePagesNotLoaded is never returned: quiver always knows its
	// free pages.
	ErrFreePagesNotLoaded = errors.New("free pages are not pre-loaded")
)

// Errors of buckets and keys.
var (
	ErrBucketNotFound     = quiver.ErrBucketNotFound
	ErrBucketExists       = quiver.ErrBucketExists
	ErrBucketNameRequired = quiver.ErrBucketNameRequired
	ErrKeyRequired        = quiver.ErrKeyRequired
	ErrKeyTooLarge        = quiver.ErrKeyTooLarge
	ErrValueTooLarge      = quiver.ErrValueTooLarge
	ErrMaxSizeReached     = quiver.ErrMaxSizeReached
	ErrIncompatibleValue  = quiver.ErrIncompatibleValue
	ErrSameBuckets        = quiver.ErrSameBuckets
	ErrDifferentDB        = quiver.ErrDifferentDB
)
