package quiver_test

import (
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
