package tx

import (
	"errors"

	"github.com/quiverdb/quiver/page"
)

// Errors returned by transactions, buckets and cursors. The root package
// re-exports them; match them with errors.Is.
var (
	// ErrTxNotWritable is returned when a read-only transaction is asked to
	// change something.
	ErrTxNotWritable = errors.New("quiver: tx not writable")
	// ErrTxClosed is returned on use of a committed or rolled back
	// transaction.
	ErrTxClosed = errors.New("quiver: tx closed")
	// ErrTxManaged is returned by Commit or Rollback inside Update or View,
	// which end the transaction themselves.
	ErrTxManaged = errors.New("quiver: managed tx commit/rollback not allowed")
	// ErrDatabaseReadOnly is returned when a writable transaction is begun
	// on a database opened read-only.
	ErrDatabaseReadOnly = errors.New("quiver: database is in read-only mode")
	// ErrDatabaseNotOpen is returned on use of a closed database.
	ErrDatabaseNotOpen = errors.New("quiver: database not open")

	// ErrBucketNotFound is returned when a bucket does not exist.
	ErrBucketNotFound = errors.New("quiver: bucket not found")
	// ErrBucketExists is returned by CreateBucket for an existing bucket.
	ErrBucketExists = errors.New("quiver: bucket already exists")
	// ErrBucketNameRequired is returned for an empty bucket name.
	ErrBucketNameRequired = errors.New("quiver: bucket name required")
	// ErrKeyRequired is returned by Put for an empty key.
	ErrKeyRequired = errors.New("quiver: key required")
	// ErrKeyTooLarge is returned by Put for a key longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("quiver: key too large")
	// ErrValueTooLarge is returned by Put for a value longer than
	// MaxValueSize.
	ErrValueTooLarge = errors.New("quiver: value too large")
	// ErrIncompatibleValue is returned when a key operation meets a bucket
	// or a bucket operation meets a plain key.
	ErrIncompatibleValue = errors.New("quiver: incompatible value")
	// ErrSameBuckets is returned by MoveBucket when source and destination
	// are the same bucket.
	ErrSameBuckets = errors.New("quiver: the source and target are the same bucket")
	// ErrDifferentDB is returned by MoveBucket when the destination belongs
	// to another transaction (of this database or another).
	ErrDifferentDB = errors.New("quiver: the source and target buckets are in different transactions")
	// ErrSequenceOverflow is returned by NextSequence at the maximum.
	ErrSequenceOverflow = errors.New("quiver: sequence overflow")

	// ErrCorrupt is the category of all corruption errors; errors.As with
	// *CorruptionError gives the page.
	ErrCorrupt = page.ErrCorrupt
)

// CorruptionError reports a damaged page.
type CorruptionError = page.CorruptionError

// Limits.
const (
	// MaxKeySize is the largest key Put accepts.
	MaxKeySize = 32768
	// MaxValueSize is the largest value Put accepts.
	MaxValueSize = (1 << 31) - 2
)
