package quiver_test

import (
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver"
)

// Engine-only benchmarks; side-by-side comparisons with bbolt live in the
// bench module.

func benchDB(b *testing.B, n int) *quiver.DB {
	b.Helper()
	db, err := quiver.Open(filepath.Join(b.TempDir(), "db"), 0o600, &quiver.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	k := make([]byte, 16)
	v := make([]byte, 100)
	for start := 0; start < n; start += 10000 {
		err := db.Update(func(tx *quiver.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			for i := start; i < start+10000 && i < n; i++ {
				binary.BigEndian.PutUint64(k, uint64(i)*2654435761%uint64(n))
				if err := bk.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return db
}

func BenchmarkViewGet(b *testing.B) {
	const n = 100000
	db := benchDB(b, n)
	k := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(k, uint64(i*7919%n))
		err := db.View(func(tx *quiver.Tx) error {
			if tx.Bucket([]byte("b")).Get(k) == nil {
				b.Fatal("missing")
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBeginRollback(b *testing.B) {
	db := benchDB(b, 10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = db.View(func(tx *quiver.Tx) error { return nil })
	}
}

func BenchmarkGetOneTx(b *testing.B) {
	const n = 100000
	db := benchDB(b, n)
	k := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	_ = db.View(func(tx *quiver.Tx) error {
		bk := tx.Bucket([]byte("b"))
		for i := 0; i < b.N; i++ {
			binary.BigEndian.PutUint64(k, uint64(i*7919%n))
			if bk.Get(k) == nil {
				b.Fatal("missing")
			}
		}
		return nil
	})
}

// BenchmarkRandLoad loads 200k random 16-byte keys with 100-byte values,
// 1000 puts per synced commit.
func BenchmarkRandLoad(b *testing.B) {
	const n = 200000
	for i := 0; i < b.N; i++ {
		db, err := quiver.Open(filepath.Join(b.TempDir(), "db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		k := make([]byte, 16)
		v := make([]byte, 100)
		for start := 0; start < n; start += 1000 {
			err := db.Update(func(tx *quiver.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				for j := start; j < start+1000; j++ {
					binary.BigEndian.PutUint64(k, uint64(j)*0x9e3779b97f4a7c15)
					if err := bk.Put(k, v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds()*float64(i+1)/float64(b.N), "puts/s")
		db.Close()
	}
}

func BenchmarkScan(b *testing.B) {
	const n = 1000000
	db := benchDB(b, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		count := 0
		_ = db.View(func(tx *quiver.Tx) error {
			c := tx.Bucket([]byte("b")).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				count++
			}
			return nil
		})
		if count != n {
			b.Fatalf("scanned %d keys", count)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}
