package bench

import (
	bolt "go.etcd.io/bbolt"
)

// bboltEngine adapts a bbolt database to Engine.
type bboltEngine struct {
	db   *bolt.DB
	path string
	fill float64
}

var _ Engine = (*bboltEngine)(nil)

// bboltOpener returns the opener of bbolt with the named freelist.
func bboltOpener(freelist string) func(string, OpenOptions) (Engine, error) {
	return func(path string, o OpenOptions) (Engine, error) {
		db, err := bolt.Open(path, 0o600, &bolt.Options{
			NoSync:       o.NoSync,
			FreelistType: bolt.FreelistType(freelist),
		})
		if err != nil {
			return nil, err
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucketName)
			return err
		}); err != nil {
			db.Close()
			return nil, err
		}
		return &bboltEngine{db: db, path: path, fill: o.FillPercent}, nil
	}
}

func (e *bboltEngine) PutBatch(n int, kv func(int) ([]byte, []byte)) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		if b == nil {
			return errMissingBucket
		}
		if e.fill > 0 {
			b.FillPercent = e.fill
		}
		for i := 0; i < n; i++ {
			if err := b.Put(kv(i)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *bboltEngine) Get(key []byte) (bool, error) {
	found := false
	err := e.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		if b == nil {
			return errMissingBucket
		}
		found = b.Get(key) != nil
		return nil
	})
	return found, err
}

func (e *bboltEngine) GetInTx(n int, key func(int) []byte) (int, error) {
	found := 0
	err := e.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		if b == nil {
			return errMissingBucket
		}
		for i := 0; i < n; i++ {
			if b.Get(key(i)) != nil {
				found++
			}
		}
		return nil
	})
	return found, err
}

func (e *bboltEngine) Scan() (int, error) {
	count := 0
	err := e.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		if b == nil {
			return errMissingBucket
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			count++
		}
		return nil
	})
	return count, err
}

func (e *bboltEngine) FileSize() (int64, error) { return fileSize(e.path) }

func (e *bboltEngine) Close() error { return e.db.Close() }
