package bbolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/quiverdb/quiver"
	berrors "go.etcd.io/bbolt/errors"
)

// Limits of keys and values, and the default fill of split pages.
const (
	MaxKeySize         = quiver.MaxKeySize
	MaxValueSize       = quiver.MaxValueSize
	DefaultFillPercent = 0.5
)

// Defaults a new DB starts with.
const (
	DefaultMaxBatchSize  int = quiver.DefaultMaxBatchSize
	DefaultMaxBatchDelay     = quiver.DefaultMaxBatchDelay
	DefaultAllocSize         = quiver.DefaultAllocSize
)

// IgnoreNoSync is false: quiver honours NoSync on every platform.
const IgnoreNoSync = false

// FreelistType names a freelist.
type FreelistType string

// The two freelists, quiver's array and hashmap ones.
const (
	FreelistArrayType = FreelistType("array")
	FreelistMapType   = FreelistType("hashmap")
)

// Errors, as bbolt's package exports them (deprecated there in favour of
// the errors package; the values are the same).
var (
	ErrDatabaseNotOpen    = berrors.ErrDatabaseNotOpen
	ErrInvalid            = berrors.ErrInvalid
	ErrInvalidMapping     = berrors.ErrInvalidMapping
	ErrVersionMismatch    = berrors.ErrVersionMismatch
	ErrChecksum           = berrors.ErrChecksum
	ErrTimeout            = berrors.ErrTimeout
	ErrTxNotWritable      = berrors.ErrTxNotWritable
	ErrTxClosed           = berrors.ErrTxClosed
	ErrDatabaseReadOnly   = berrors.ErrDatabaseReadOnly
	ErrFreePagesNotLoaded = berrors.ErrFreePagesNotLoaded
	ErrBucketNotFound     = berrors.ErrBucketNotFound
	ErrBucketExists       = berrors.ErrBucketExists
	ErrBucketNameRequired = berrors.ErrBucketNameRequired
	ErrKeyRequired        = berrors.ErrKeyRequired
	ErrKeyTooLarge        = berrors.ErrKeyTooLarge
	ErrValueTooLarge      = berrors.ErrValueTooLarge
	ErrIncompatibleValue  = berrors.ErrIncompatibleValue
)

// Stats, TxStats, BucketStructure and Info are quiver's, which have
// bbolt's fields (and a few more); BucketStats is bbolt's own (bucket.go).
type (
	Stats           = quiver.Stats
	TxStats         = quiver.TxStats
	BucketStructure = quiver.BucketStructure
	Info            = quiver.Info
	Logger          = quiver.Logger
	DefaultLogger   = quiver.DefaultLogger
	KVStringer      = quiver.KVStringer
	CheckOption     = quiver.CheckOption
)

// WithKVStringer, WithPageId and HexKVStringer are Tx.Check's options.
func WithKVStringer(kv KVStringer) CheckOption { return quiver.WithKVStringer(kv) }
func WithPageId(id uint64) CheckOption         { return quiver.WithPageId(id) }
func HexKVStringer() KVStringer                { return quiver.HexKVStringer() }

// Options are bbolt's open options; see the package comment for those
// without a quiver meaning.
type Options struct {
	Timeout         time.Duration
	NoGrowSync      bool
	NoFreelistSync  bool
	PreLoadFreelist bool
	FreelistType    FreelistType
	ReadOnly        bool
	MmapFlags       int
	InitialMmapSize int
	PageSize        int
	MaxSize         int
	NoSync          bool
	OpenFile        func(string, int, os.FileMode) (*os.File, error)
	Mlock           bool
	Logger          Logger
	NoStatistics    bool
}

// DefaultOptions are used when Open is given nil options.
var DefaultOptions = &Options{Timeout: 0, NoGrowSync: false, FreelistType: FreelistArrayType}

// String lists the options.
func (o *Options) String() string {
	if o == nil {
		return "{}"
	}
	return fmt.Sprintf("{Timeout: %s, NoGrowSync: %t, NoFreelistSync: %t, PreLoadFreelist: %t, FreelistType: %s, ReadOnly: %t, MmapFlags: %x, InitialMmapSize: %d, PageSize: %d, MaxSize: %d, NoSync: %t, OpenFile: %p, Mlock: %t, Logger: %p, NoStatistics: %t}",
		o.Timeout, o.NoGrowSync, o.NoFreelistSync, o.PreLoadFreelist, o.FreelistType, o.ReadOnly, o.MmapFlags,
		o.InitialMmapSize, o.PageSize, o.MaxSize, o.NoSync, o.OpenFile, o.Mlock, o.Logger, o.NoStatistics)
}

// quiverDB is embedded in DB under an unexported name: its settings
// (NoSync, NoGrowSync, MaxBatchSize, MaxBatchDelay, AllocSize, MaxSize)
// are promoted and are the engine's own, read at each commit.
type quiverDB = quiver.DB

// DB is an open database. The settings bbolt exposes as fields may be
// changed between transactions, as there.
type DB struct {
	*quiverDB

	// StrictMode runs Tx.Check after every commit and panics on a failure.
	StrictMode bool
	// NoFreelistSync, FreelistType, PreLoadFreelist, MmapFlags and Mlock
	// record the options the database was opened with.
	NoFreelistSync  bool
	FreelistType    FreelistType
	PreLoadFreelist bool
	MmapFlags       int
	Mlock           bool
}

// Open opens the database at path, creating it if it does not exist.
func Open(path string, mode os.FileMode, options *Options) (*DB, error) {
	if options == nil {
		options = DefaultOptions
	}
	o := &quiver.Options{
		Timeout:         options.Timeout,
		NoSync:          options.NoSync,
		NoGrowSync:      options.NoGrowSync,
		ReadOnly:        options.ReadOnly,
		PageSize:        options.PageSize,
		InitialMmapSize: options.InitialMmapSize,
		MaxSize:         options.MaxSize,
		Logger:          options.Logger,
		MmapFlags:       options.MmapFlags,
		Mlock:           options.Mlock,
	}
	switch options.FreelistType {
	case FreelistArrayType:
		o.FreelistType = quiver.FreelistArray
	case FreelistMapType, "":
		o.FreelistType = quiver.FreelistHashmap
	default:
		return nil, fmt.Errorf("bbolt (quiver): unknown freelist type %q", options.FreelistType)
	}
	if open := options.OpenFile; open != nil {
		o.OpenFile = func(path string, flag int, mode os.FileMode) (quiver.File, error) {
			f, err := open(path, flag, mode)
			if err != nil {
				return nil, err
			}
			return quiver.WrapOSFile(f), nil
		}
	}
	q, err := quiver.Open(path, mode, o)
	if err != nil {
		// bbolt's callers compare Open's error with ErrInvalid (==), and
		// quiver's carries detail: the detail is kept only for a bbolt
		// file, where it names the command that converts it.
		if errors.Is(err, quiver.ErrInvalid) && !isBboltFile(path) {
			return nil, ErrInvalid
		}
		// Both metas damaged: bbolt's ErrChecksum, again compared with ==.
		if metasCorrupt(err) {
			return nil, ErrChecksum
		}
		return nil, err
	}
	return &DB{
		quiverDB:        q,
		NoFreelistSync:  options.NoFreelistSync,
		FreelistType:    FreelistType(o.FreelistType),
		PreLoadFreelist: options.PreLoadFreelist || !options.ReadOnly,
		MmapFlags:       options.MmapFlags,
		Mlock:           options.Mlock,
	}, nil
}

// isBboltFile reports whether the file at path starts with a bbolt meta
// page: a 16-byte page header, then the magic number in the machine's byte
// order.
func isBboltFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [20]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return binary.NativeEndian.Uint32(b[16:]) == 0xED0CDAED
}

// metasCorrupt reports whether err is quiver's answer to a file of which
// no meta page could be read: the joined corruption errors of the meta
// pages (quiver's checksum covers every field of a meta).
func metasCorrupt(err error) bool {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok || len(j.Unwrap()) == 0 {
		return false
	}
	for _, e := range j.Unwrap() {
		ce, ok := e.(*quiver.CorruptionError)
		if !ok || ce.Pgid > 1 {
			return false
		}
	}
	return true
}

// Path returns the path of the database file ("" for a DB not opened).
func (db *DB) Path() string {
	if db.quiverDB == nil {
		return ""
	}
	return db.quiverDB.Path()
}

// GoString and String name the database by its path.
func (db *DB) GoString() string { return fmt.Sprintf("bolt.DB{path:%q}", db.Path()) }
func (db *DB) String() string   { return fmt.Sprintf("DB<%q>", db.Path()) }

// Close closes the database after its read transactions end.
func (db *DB) Close() error {
	if db.quiverDB == nil {
		return nil
	}
	return db.quiverDB.Close()
}

// IsReadOnly reports whether the database was opened read-only.
func (db *DB) IsReadOnly() bool { return db.quiverDB != nil && db.quiverDB.IsReadOnly() }

// Sync makes every commit durable (those of NoSync included).
func (db *DB) Sync() error {
	if db.quiverDB == nil {
		return ErrDatabaseNotOpen
	}
	return db.quiverDB.Sync()
}

// Stats returns the database's counters.
func (db *DB) Stats() Stats {
	if db.quiverDB == nil {
		return Stats{}
	}
	return db.quiverDB.Stats()
}

// Info describes the mapping (nil for a closed database).
func (db *DB) Info() *Info {
	if db.quiverDB == nil {
		return nil
	}
	return db.quiverDB.Info()
}

// Logger returns the database's logger.
func (db *DB) Logger() Logger {
	if db.quiverDB == nil {
		return nil
	}
	return db.quiverDB.Logger()
}

// Begin starts a transaction; see quiver's DB.Begin.
func (db *DB) Begin(writable bool) (*Tx, error) {
	if db.quiverDB == nil {
		return nil, ErrDatabaseNotOpen
	}
	t, err := db.quiverDB.Begin(writable)
	if err != nil {
		return nil, err
	}
	tx := &Tx{db: db, tx: t}
	if writable && db.StrictMode {
		tx.OnCommit(func() { db.strictCheck() })
	}
	return tx, nil
}

// strictCheck checks the database after a commit in StrictMode.
func (db *DB) strictCheck() {
	err := db.View(func(tx *Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("check fail: %v", err))
	}
}

// Update runs fn in a write transaction, committed if fn returns nil.
func (db *DB) Update(fn func(*Tx) error) error {
	if db.quiverDB == nil {
		return ErrDatabaseNotOpen
	}
	return db.quiverDB.Update(func(t *quiver.Tx) error {
		tx := &Tx{db: db, tx: t, managed: true}
		if db.StrictMode {
			t.OnCommit(func() { db.strictCheck() })
		}
		return fn(tx)
	})
}

// View runs fn in a read transaction.
func (db *DB) View(fn func(*Tx) error) error {
	if db.quiverDB == nil {
		return ErrDatabaseNotOpen
	}
	return db.quiverDB.View(func(t *quiver.Tx) error { return fn(&Tx{db: db, tx: t, managed: true}) })
}

// Batch runs fn with other concurrent Batch calls in one write
// transaction; see quiver's DB.Batch.
func (db *DB) Batch(fn func(*Tx) error) error {
	if db.quiverDB == nil {
		return ErrDatabaseNotOpen
	}
	return db.quiverDB.Batch(func(t *quiver.Tx) error { return fn(&Tx{db: db, tx: t, managed: true}) })
}

// Compact copies every bucket of src into dst, committing about every
// txMaxSize bytes (0: one transaction).
func Compact(dst, src *DB, txMaxSize int64) error {
	if dst == nil || src == nil || dst.quiverDB == nil || src.quiverDB == nil {
		return ErrDatabaseNotOpen
	}
	return quiver.Compact(dst.quiverDB, src.quiverDB, txMaxSize)
}
