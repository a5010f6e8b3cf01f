package mvcc_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/mvcc"
)

func Example() {
	dir, _ := os.MkdirTemp("", "mvcc-example")
	defer os.RemoveAll(dir)
	db, err := quiver.Open(filepath.Join(dir, "my.db"), 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	s, err := mvcc.Open(db, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	rev, _ := s.Put([]byte("/jobs/1"), []byte("queued"), 0)
	// Move the job on only if nobody changed it since.
	res, _ := s.Txn(&mvcc.Txn{
		If:   []mvcc.Compare{{Key: []byte("/jobs/1"), Target: mvcc.CompareMod, Result: mvcc.Equal, ModRevision: rev}},
		Then: []mvcc.Op{mvcc.OpPut([]byte("/jobs/1"), []byte("running"), 0)},
	})
	fmt.Println("succeeded:", res.Succeeded, "at revision", res.Rev)

	// The past stays readable until compacted.
	old, _ := s.Range([]byte("/jobs/"), mvcc.Prefix([]byte("/jobs/")), mvcc.RangeOptions{Rev: rev})
	now, _ := s.Range([]byte("/jobs/"), mvcc.Prefix([]byte("/jobs/")), mvcc.RangeOptions{})
	fmt.Printf("at %d: %s (version %d); now: %s (version %d)\n", rev, old.KVs[0].Value, old.KVs[0].Version, now.KVs[0].Value, now.KVs[0].Version)
	// Output:
	// succeeded: true at revision 3
	// at 2: queued (version 1); now: running (version 2)
}
