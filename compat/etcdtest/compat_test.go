package etcdtest

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/quiverdb/quiver"
	"github.com/quiverdb/quiver/page"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.uber.org/zap/zaptest"
)

// TestBackendIsQuiver checks that etcd's backend, built in this module,
// writes quiver files: the replace of go.etcd.io/bbolt took effect, so
// run.sh tests quiver and not bbolt.
func TestBackendIsQuiver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	be := backend.NewDefaultBackend(zaptest.NewLogger(t), path)
	tx := be.BatchTx()
	tx.Lock()
	tx.UnsafeCreateBucket(testBucket{})
	tx.UnsafePut(testBucket{}, []byte("k"), []byte("v"))
	tx.Unlock()
	be.ForceCommit()
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], page.Magic)
	if len(b) < 64 || !bytes.Equal(b[32:36], magic[:]) {
		t.Fatalf("etcd's backend file does not start with quiver's meta page")
	}
	db, err := quiver.Open(path, 0o600, &quiver.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *quiver.Tx) error {
		if v := tx.Bucket([]byte("test")).Get([]byte("k")); string(v) != "v" {
			t.Errorf("quiver reads %q from etcd's backend", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

type testBucket struct{}

func (testBucket) ID() backend.BucketID    { return 100 }
func (testBucket) Name() []byte            { return []byte("test") }
func (testBucket) String() string          { return "test" }
func (testBucket) IsSafeRangeBucket() bool { return false }
