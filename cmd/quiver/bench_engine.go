package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/quiverdb/quiver"
	bolt "go.etcd.io/bbolt"
)

// The bench command drives quiver or bbolt through the small interfaces
// below, so that both run the very same workload code. Each call costs one
// interface dispatch, the same for both engines.

// kvDB is an open database.
type kvDB interface {
	// Update runs fn in a write transaction and commits it.
	Update(fn func(kvTx) error) error
	// View runs fn in a read transaction.
	View(fn func(kvTx) error) error
	Close() error
}

// kvTx is a transaction's top level: the buckets in it.
type kvTx interface {
	// Bucket returns the bucket name, or nil.
	Bucket(name []byte) kvBucket
	CreateBucketIfNotExists(name []byte) (kvBucket, error)
}

// kvBucket is a bucket of a transaction; slices it returns are valid until
// the transaction ends.
type kvBucket interface {
	kvTx
	SetFillPercent(f float64)
	// Put stores value under key. The value must stay unchanged until the
	// transaction ends: bbolt keeps the slice, quiver copies it.
	Put(key, value []byte) error
	Get(key []byte) []byte
	ForEach(fn func(k, v []byte) error) error
	Cursor() kvCursor
}

// kvCursor walks a bucket in key order; a nil key ends the walk.
type kvCursor interface {
	First() (k, v []byte)
	Next() (k, v []byte)
}

// dbOptions are the bench flags that configure the database.
type dbOptions struct {
	pageSize        int
	initialMmapSize int
	noSync          bool
	freelist        string // "" for the engine's default
}

// engines maps --engine values to their openers.
var engines = map[string]func(path string, o dbOptions) (kvDB, error){
	"quiver": openQuiver,
	"bbolt":  openBbolt,
}

// engineNames lists the --engine values for messages.
const engineNames = "quiver|bbolt"

// checkEngineOptions opens and closes a new database of engine with o in a
// temporary directory, so that options the engine refuses (a freelist type
// it does not have, a page size it cannot use) are reported as bad usage
// before any work is done.
func checkEngineOptions(engine string, o dbOptions) error {
	dir, err := os.MkdirTemp("", "quiver-bench-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.noSync = true
	db, err := engines[engine](filepath.Join(dir, "probe.db"), o)
	if err != nil {
		return usagef("%s does not accept these options: %v", engine, err)
	}
	return db.Close()
}

// quiver

func openQuiver(path string, o dbOptions) (kvDB, error) {
	db, err := quiver.Open(path, 0o600, &quiver.Options{
		PageSize:        o.pageSize,
		InitialMmapSize: o.initialMmapSize,
		NoSync:          o.noSync,
		FreelistType:    quiver.FreelistType(o.freelist),
	})
	if err != nil {
		return nil, err
	}
	return quiverDB{db}, nil
}

type quiverDB struct{ db *quiver.DB }

func (d quiverDB) Update(fn func(kvTx) error) error {
	return d.db.Update(func(t *quiver.Tx) error { return fn(quiverTx{t}) })
}

func (d quiverDB) View(fn func(kvTx) error) error {
	return d.db.View(func(t *quiver.Tx) error { return fn(quiverTx{t}) })
}

func (d quiverDB) Close() error { return d.db.Close() }

type quiverTx struct{ t *quiver.Tx }

func (t quiverTx) Bucket(name []byte) kvBucket {
	if b := t.t.Bucket(name); b != nil {
		return quiverBucket{b}
	}
	return nil
}

func (t quiverTx) CreateBucketIfNotExists(name []byte) (kvBucket, error) {
	b, err := t.t.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return quiverBucket{b}, nil
}

type quiverBucket struct{ b *quiver.Bucket }

func (b quiverBucket) Bucket(name []byte) kvBucket {
	if c := b.b.Bucket(name); c != nil {
		return quiverBucket{c}
	}
	return nil
}

func (b quiverBucket) CreateBucketIfNotExists(name []byte) (kvBucket, error) {
	c, err := b.b.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return quiverBucket{c}, nil
}

func (b quiverBucket) SetFillPercent(f float64)                 { b.b.FillPercent = f }
func (b quiverBucket) Put(k, v []byte) error                    { return b.b.Put(k, v) }
func (b quiverBucket) Get(k []byte) []byte                      { return b.b.Get(k) }
func (b quiverBucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }
func (b quiverBucket) Cursor() kvCursor                         { return b.b.Cursor() }

// bbolt

func openBbolt(path string, o dbOptions) (kvDB, error) {
	opts := *bolt.DefaultOptions
	opts.PageSize = o.pageSize
	opts.InitialMmapSize = o.initialMmapSize
	opts.NoSync = o.noSync
	switch o.freelist {
	case "":
	case string(bolt.FreelistArrayType), string(bolt.FreelistMapType):
		opts.FreelistType = bolt.FreelistType(o.freelist)
	default:
		// bbolt would quietly use its array freelist.
		return nil, fmt.Errorf("bbolt: unknown freelist type %q (array or hashmap)", o.freelist)
	}
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		return nil, err
	}
	return bboltDB{db}, nil
}

type bboltDB struct{ db *bolt.DB }

func (d bboltDB) Update(fn func(kvTx) error) error {
	return d.db.Update(func(t *bolt.Tx) error { return fn(bboltTx{t}) })
}

func (d bboltDB) View(fn func(kvTx) error) error {
	return d.db.View(func(t *bolt.Tx) error { return fn(bboltTx{t}) })
}

func (d bboltDB) Close() error { return d.db.Close() }

type bboltTx struct{ t *bolt.Tx }

func (t bboltTx) Bucket(name []byte) kvBucket {
	if b := t.t.Bucket(name); b != nil {
		return bboltBucket{b}
	}
	return nil
}

func (t bboltTx) CreateBucketIfNotExists(name []byte) (kvBucket, error) {
	b, err := t.t.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return bboltBucket{b}, nil
}

type bboltBucket struct{ b *bolt.Bucket }

func (b bboltBucket) Bucket(name []byte) kvBucket {
	if c := b.b.Bucket(name); c != nil {
		return bboltBucket{c}
	}
	return nil
}

func (b bboltBucket) CreateBucketIfNotExists(name []byte) (kvBucket, error) {
	c, err := b.b.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return bboltBucket{c}, nil
}

func (b bboltBucket) SetFillPercent(f float64)                 { b.b.FillPercent = f }
func (b bboltBucket) Put(k, v []byte) error                    { return b.b.Put(k, v) }
func (b bboltBucket) Get(k []byte) []byte                      { return b.b.Get(k) }
func (b bboltBucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }
func (b bboltBucket) Cursor() kvCursor                         { return b.b.Cursor() }
