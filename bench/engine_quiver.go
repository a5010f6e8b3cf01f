package bench

import (
	"github.com/quiverdb/quiver"
)

// quiverEngine adapts a quiver database to Engine.
type quiverEngine struct {
	db   *quiver.DB
	path string
	fill float64
}

var _ Engine = (*quiverEngine)(nil)

// quiverOpener returns the opener of quiver with the named freelist.
func quiverOpener(freelist string) func(string, OpenOptions) (Engine, error) {
	return func(path string, o OpenOptions) (Engine, error) {
		db, err := quiver.Open(path, 0o600, &quiver.Options{
			NoSync:       o.NoSync,
			FreelistType: quiver.FreelistType(freelist),
		})
		if err != nil {
			return nil, err
		}
		// Look the bucket up first, so that reopening a loaded file begins
		// no write transaction.
		found := false
		err = db.View(func(tx *quiver.Tx) error {
			found = tx.Bucket(bucketName) != nil
			return nil
		})
		if err == nil && !found {
			err = db.Update(func(tx *quiver.Tx) error {
				_, err := tx.CreateBucketIfNotExists(bucketName)
				return err
			})
		}
		if err != nil {
			db.Close()
			return nil, err
		}
		return &quiverEngine{db: db, path: path, fill: o.FillPercent}, nil
	}
}

func (e *quiverEngine) PutBatch(n int, kv func(int) ([]byte, []byte)) error {
	return e.db.Update(func(tx *quiver.Tx) error {
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

func (e *quiverEngine) Apply(ops []Op) error {
	return e.db.Update(func(tx *quiver.Tx) error {
		b := tx.Bucket(bucketName)
		if b == nil {
			return errMissingBucket
		}
		if e.fill > 0 {
			b.FillPercent = e.fill
		}
		for _, op := range ops {
			var err error
			if op.Delete {
				err = b.Delete(op.Key)
			} else {
				err = b.Put(op.Key, op.Value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *quiverEngine) Get(key []byte) (bool, error) {
	found := false
	err := e.db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket(bucketName)
		if b == nil {
			return errMissingBucket
		}
		found = b.Get(key) != nil
		return nil
	})
	return found, err
}

func (e *quiverEngine) GetInTx(n int, key func(int) []byte) (int, error) {
	found := 0
	err := e.db.View(func(tx *quiver.Tx) error {
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

func (e *quiverEngine) Scan() (int, error) {
	count := 0
	err := e.db.View(func(tx *quiver.Tx) error {
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

func (e *quiverEngine) ScanRead() (n int, sum uint64, err error) {
	err = e.db.View(func(tx *quiver.Tx) error {
		b := tx.Bucket(bucketName)
		if b == nil {
			return errMissingBucket
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			n++
			sum += uint64(k[0]) + lastByte(v)
		}
		return nil
	})
	return n, sum, err
}

func (e *quiverEngine) FileSize() (int64, error) { return fileSize(e.path) }

func (e *quiverEngine) Stats() EngineStats {
	s := e.db.Stats()
	return EngineStats{
		FreelistWrite: int64(s.FreelistWrite),
		FreePages:     s.FreePageN + s.PendingPageN,
		AllocTime:     s.TxStats.AllocTime,
		WriteTime:     s.TxStats.WriteTime,
	}
}

func (e *quiverEngine) Close() error { return e.db.Close() }
