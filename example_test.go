package quiver_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"

	"github.com/quiverdb/quiver"
)

func tempPath() (string, func()) {
	dir, err := os.MkdirTemp("", "quiver-example")
	if err != nil {
		log.Fatal(err)
	}
	return filepath.Join(dir, "my.db"), func() { os.RemoveAll(dir) }
}

func ExampleOpen() {
	path, cleanup := tempPath()
	defer cleanup()

	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	fmt.Println(db.IsReadOnly())
	// Output: false
}

func ExampleDB_Update() {
	path, cleanup := tempPath()
	defer cleanup()
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// Everything in fn commits together, or not at all.
	err = db.Update(func(tx *quiver.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("widgets"))
		if err != nil {
			return err
		}
		return b.Put([]byte("foo"), []byte("bar"))
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = db.View(func(tx *quiver.Tx) error {
		fmt.Printf("foo=%s\n", tx.Bucket([]byte("widgets")).Get([]byte("foo")))
		return nil
	})
	// Output: foo=bar
}

func ExampleDB_View() {
	path, cleanup := tempPath()
	defer cleanup()
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_ = db.Update(func(tx *quiver.Tx) error {
		b, _ := tx.CreateBucket([]byte("people"))
		return b.Put([]byte("john"), []byte("doe"))
	})

	// A read transaction sees one consistent snapshot and never blocks
	// the writer. Values are valid only inside fn: copy them to keep them.
	err = db.View(func(tx *quiver.Tx) error {
		v := tx.Bucket([]byte("people")).Get([]byte("john"))
		fmt.Printf("john=%s\n", v)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: john=doe
}

func ExampleCursor() {
	path, cleanup := tempPath()
	defer cleanup()
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_ = db.Update(func(tx *quiver.Tx) error {
		b, _ := tx.CreateBucket([]byte("animals"))
		for _, kv := range [][2]string{{"dog", "fun"}, {"cat", "lame"}, {"liger", "awesome"}} {
			if err := b.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		return nil
	})
	_ = db.View(func(tx *quiver.Tx) error {
		c := tx.Bucket([]byte("animals")).Cursor()
		// Keys come back in byte order.
		for k, v := c.First(); k != nil; k, v = c.Next() {
			fmt.Printf("A %s is %s.\n", k, v)
		}
		// Seek finds the first key at or after its argument.
		k, _ := c.Seek([]byte("d"))
		fmt.Printf("seek d: %s\n", k)
		// And backwards.
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			fmt.Printf("back: %s\n", k)
		}
		return nil
	})
	// Output:
	// A cat is lame.
	// A dog is fun.
	// A liger is awesome.
	// seek d: dog
	// back: liger
	// back: dog
	// back: cat
}

func ExampleDB_Batch() {
	path, cleanup := tempPath()
	defer cleanup()
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_ = db.Update(func(tx *quiver.Tx) error { _, err := tx.CreateBucket([]byte("events")); return err })

	// Concurrent Batch calls share commits (and syncs). fn may run more
	// than once, so it must be idempotent.
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := db.Batch(func(tx *quiver.Tx) error {
				return tx.Bucket([]byte("events")).Put([]byte(fmt.Sprintf("event-%02d", i)), []byte("ok"))
			})
			if err != nil {
				log.Print(err)
			}
		}(i)
	}
	wg.Wait()
	_ = db.View(func(tx *quiver.Tx) error {
		n := 0
		_ = tx.Bucket([]byte("events")).ForEach(func(k, v []byte) error { n++; return nil })
		fmt.Println(n, "events")
		return nil
	})
	// Output: 10 events
}

func ExampleTx_Check() {
	path, cleanup := tempPath()
	defer cleanup()
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *quiver.Tx) error {
		problems := 0
		for err := range tx.Check() {
			fmt.Println(err)
			problems++
		}
		fmt.Println(problems, "problems")
		return nil
	})
	// Output: 0 problems
}

// Compacting a live database: deleting most of its data leaves free pages
// inside the file; Compact rewrites it while transactions go on and gives
// the space back.
func ExampleDB_Compact() {
	path, cleanup := tempPath()
	defer cleanup()
	db, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	put := func(keep func(i int) bool) error {
		return db.Update(func(tx *quiver.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("logs"))
			if err != nil {
				return err
			}
			for i := 0; i < 10000; i++ {
				k := []byte(fmt.Sprintf("%06d", i))
				if keep(i) {
					err = b.Put(k, make([]byte, 500))
				} else {
					err = b.Delete(k)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := put(func(int) bool { return true }); err != nil {
		log.Fatal(err)
	}
	// Keep one key in a hundred: every page keeps a little data.
	if err := put(func(i int) bool { return i%100 == 0 }); err != nil {
		log.Fatal(err)
	}
	st, err := db.Compact(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("at least 10 times smaller:", st.NewSize*10 <= st.OldSize)
	_ = db.View(func(tx *quiver.Tx) error {
		fmt.Println("keys:", tx.Bucket([]byte("logs")).Stats().KeyN)
		return nil
	})
	// Output:
	// at least 10 times smaller: true
	// keys: 100
}

// Compact copies one database into another, as bbolt's Compact does.
func ExampleCompact() {
	path, cleanup := tempPath()
	defer cleanup()
	src, err := quiver.Open(path, 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	_ = src.Update(func(tx *quiver.Tx) error {
		b, _ := tx.CreateBucket([]byte("users"))
		return b.Put([]byte("alice"), []byte("admin"))
	})
	dst, err := quiver.Open(path+".copy", 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer dst.Close()
	if err := quiver.Compact(dst, src, 64<<10); err != nil {
		log.Fatal(err)
	}
	_ = dst.View(func(tx *quiver.Tx) error {
		fmt.Printf("%s\n", tx.Bucket([]byte("users")).Get([]byte("alice")))
		return nil
	})
	// Output: admin
}
