package quiver_test

import (
	"context"
	"encoding/binary"
	"flag"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverdb/quiver"
)

var compactMB = flag.Int("compact-mb", 64, "BenchmarkCompactOnline: megabytes of values loaded before half are deleted")

// BenchmarkCompactOnline loads -compact-mb of 1 KiB values under random
// keys, deletes every other key, then compacts the database while one
// writer commits small synced transactions flat out. It reports how long
// the compaction took, how long writers were blocked for its final round
// (pause-ms), the slowest and 99th percentile writer commit during it, the
// writer commits made meanwhile and the file sizes before and after.
func BenchmarkCompactOnline(b *testing.B) {
	n := *compactMB << 10
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := quiver.Open(filepath.Join(b.TempDir(), "db"), 0o600, &quiver.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		k := make([]byte, 8)
		v := make([]byte, 1024)
		load := func(del bool) {
			for start := 0; start < n; start += 20000 {
				err := db.Update(func(tx *quiver.Tx) error {
					bk, err := tx.CreateBucketIfNotExists([]byte("b"))
					if err != nil {
						return err
					}
					for j := start; j < start+20000 && j < n; j++ {
						binary.BigEndian.PutUint64(k, uint64(j)*2654435761%uint64(n))
						if del {
							if j%2 == 0 {
								err = bk.Delete(k)
							}
						} else {
							err = bk.Put(k, v)
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		load(false)
		load(true)
		if err := db.Sync(); err != nil {
			b.Fatal(err)
		}
		db.NoSync = false
		var stop atomic.Bool
		var wg sync.WaitGroup
		var lat []time.Duration
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := make([]byte, 8)
			for j := 0; !stop.Load(); j++ {
				start := time.Now()
				err := db.Update(func(tx *quiver.Tx) error {
					binary.BigEndian.PutUint64(key, uint64(n+j))
					return tx.Bucket([]byte("b")).Put(key, v[:100])
				})
				if err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(start))
			}
		}()
		b.StartTimer()
		st, err := db.Compact(context.Background(), &quiver.CompactOptions{TxMaxSize: 1 << 20})
		b.StopTimer()
		stop.Store(true)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(lat)
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "commit-max-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "commit-p99-ms")
		}
		b.ReportMetric(float64(len(lat)), "commits-during")
		b.ReportMetric(float64(st.Pause.Microseconds())/1000, "pause-ms")
		b.ReportMetric(float64(st.Rounds), "rounds")
		b.ReportMetric(float64(st.OldSize)/(1<<20), "old-MiB")
		b.ReportMetric(float64(st.NewSize)/(1<<20), "new-MiB")
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
