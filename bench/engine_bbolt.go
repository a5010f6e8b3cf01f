package bench

import (
	bolt "go.etcd.io/bbolt"
)

// bboltEngine adapts a bbolt database to Engine.
type bboltEngine struct {
	db   *bolt.DB
	path string
	fill float64
	// flWrite is the freelist bytes written by the commits made through
	// this adapter; bbolt does not count them itself (see noteCommit).
	flWrite int64
}

var _ Engine = (*bboltEngine)(nil)

// bboltOpener returns the opener of bbolt with the named freelist and, if
// noFreelistSync, Options.NoFreelistSync.
func bboltOpener(freelist string, noFreelistSync bool) func(string, OpenOptions) (Engine, error) {
	return func(path string, o OpenOptions) (Engine, error) {
		db, err := bolt.Open(path, 0o600, &bolt.Options{
			NoSync:         o.NoSync,
			NoFreelistSync: noFreelistSync,
			FreelistType:   bolt.FreelistType(freelist),
		})
		if err != nil {
			return nil, err
		}
		// Look the bucket up first, so that reopening a loaded file begins
		// no write transaction.
		found := false
		err = db.View(func(tx *bolt.Tx) error {
			found = tx.Bucket(bucketName) != nil
			return nil
		})
		if err == nil && !found {
			err = db.Update(func(tx *bolt.Tx) error {
				_, err := tx.CreateBucketIfNotExists(bucketName)
				return err
			})
		}
		if err != nil {
			db.Close()
			return nil, err
		}
		return &bboltEngine{db: db, path: path, fill: o.FillPercent}, nil
	}
}

// noteCommit adds the freelist bytes of the commit just made. Unless
// NoFreelistSync is set, bbolt's commit allocates FreelistInuse/pageSize+1
// pages for the whole freelist and writes all of them. Stats.FreelistInuse
// is sized after the commit, so a commit that changes the free count by
// enough to cross a page boundary is off by one page.
func (e *bboltEngine) noteCommit() {
	if e.db.NoFreelistSync {
		return
	}
	ps := e.db.Info().PageSize
	e.flWrite += int64((e.db.Stats().FreelistInuse/ps + 1) * ps)
}

func (e *bboltEngine) PutBatch(n int, kv func(int) ([]byte, []byte)) error {
	err := e.db.Update(func(tx *bolt.Tx) error {
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
	if err == nil {
		e.noteCommit()
	}
	return err
}

func (e *bboltEngine) Apply(ops []Op) error {
	err := e.db.Update(func(tx *bolt.Tx) error {
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
	if err == nil {
		e.noteCommit()
	}
	return err
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

func (e *bboltEngine) ScanRead() (n int, sum uint64, err error) {
	err = e.db.View(func(tx *bolt.Tx) error {
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

func (e *bboltEngine) FileSize() (int64, error) { return fileSize(e.path) }

func (e *bboltEngine) Stats() EngineStats {
	s := e.db.Stats()
	return EngineStats{
		FreelistWrite: e.flWrite,
		FreePages:     s.FreePageN + s.PendingPageN,
		SpillTime:     s.TxStats.GetSpillTime(),
		WriteTime:     s.TxStats.GetWriteTime(),
	}
}

func (e *bboltEngine) Close() error { return e.db.Close() }
