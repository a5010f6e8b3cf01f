package quiver

import (
	"errors"

	"github.com/quiverdb/quiver/mmap"
	"github.com/quiverdb/quiver/page"
	"github.com/quiverdb/quiver/tx"
)

// Errors returned by quiver, grouped here with when each is returned. Match
// them with errors.Is: some are wrapped with detail.
var (
	// ErrDatabaseNotOpen: an operation on a closed database.
	ErrDatabaseNotOpen = tx.ErrDatabaseNotOpen
	// ErrDatabaseReadOnly: a write transaction on a database opened with
	// Options.ReadOnly.
	ErrDatabaseReadOnly = tx.ErrDatabaseReadOnly
	// ErrTimeout: Open could not take the file lock within Options.Timeout
	// because another process has the file open for writing.
	ErrTimeout = mmap.ErrTimeout
	// ErrInvalid: the file is not a quiver database (bad magic, too short).
	ErrInvalid = page.ErrInvalid
	// ErrVersionMismatch: the file is a quiver database of another format
	// version.
	ErrVersionMismatch = page.ErrVersionMismatch
	// ErrCorrupt: the category of every error about damaged bytes in the
	// file. Use errors.As with *CorruptionError to learn the page.
	ErrCorrupt = page.ErrCorrupt
	// ErrFailed: an earlier commit failed to write or sync; the database
	// refuses writes until it is closed and reopened, because the kernel may
	// have dropped the unsynced pages.
	ErrFailed = errors.New("quiver: database refuses writes after a failed commit; reopen it")
	// ErrCompactBusy: DB.Compact gave up because writers changed more than
	// its catch-up rounds could follow; the database is unchanged. Retry
	// when the write load is lower.
	ErrCompactBusy = errors.New("quiver: Compact: writers kept ahead of every catch-up round")
	// ErrReplaced: DB.Compact found another file at the database's path
	// (the file was moved, deleted or replaced by someone else); it does
	// not rename its copy over that.
	ErrReplaced = errors.New("quiver: the database file is no longer at its path")

	// ErrMaxSizeReached: a commit needed the file to grow past
	// Options.MaxSize; the commit failed and changed nothing.
	ErrMaxSizeReached = errors.New("quiver: database reached maximum size")

	// ErrTxNotWritable: a change asked of a read-only transaction.
	ErrTxNotWritable = tx.ErrTxNotWritable
	// ErrTxClosed: a transaction, or a Bucket or Cursor of one, used after
	// it was committed or rolled back (or after its View or Update
	// returned). Methods without an error return nil instead.
	ErrTxClosed = tx.ErrTxClosed
	// ErrTxManaged: Commit or Rollback called inside Update, View or Batch.
	ErrTxManaged = tx.ErrTxManaged

	// ErrBucketNotFound: a bucket that does not exist, or a Bucket or
	// Cursor of a bucket deleted in the transaction.
	ErrBucketNotFound = tx.ErrBucketNotFound
	// ErrBucketExists: CreateBucket of an existing bucket.
	ErrBucketExists = tx.ErrBucketExists
	// ErrBucketNameRequired: CreateBucket with an empty name.
	ErrBucketNameRequired = tx.ErrBucketNameRequired
	// ErrKeyRequired: Put with an empty key.
	ErrKeyRequired = tx.ErrKeyRequired
	// ErrKeyTooLarge: a key longer than MaxKeySize.
	ErrKeyTooLarge = tx.ErrKeyTooLarge
	// ErrValueTooLarge: a value longer than MaxValueSize.
	ErrValueTooLarge = tx.ErrValueTooLarge
	// ErrIncompatibleValue: a key operation on a bucket, or a bucket
	// operation on a key.
	ErrIncompatibleValue = tx.ErrIncompatibleValue
	// ErrSameBuckets: MoveBucket from a bucket into itself.
	ErrSameBuckets = tx.ErrSameBuckets
	// ErrDifferentDB: MoveBucket into a bucket of another transaction.
	ErrDifferentDB = tx.ErrDifferentDB
	// ErrSequenceOverflow: NextSequence at the largest sequence.
	ErrSequenceOverflow = tx.ErrSequenceOverflow
)

// CorruptionError reports a damaged page; it matches ErrCorrupt.
type CorruptionError = page.CorruptionError

// IsCorruption reports whether err reports a damaged file.
func IsCorruption(err error) bool { return errors.Is(err, ErrCorrupt) }

// Limits of keys and values.
const (
	MaxKeySize   = tx.MaxKeySize
	MaxValueSize = tx.MaxValueSize
)
