package quiver

import (
	"errors"

	"bytes"
	bolt "go.etcd.io/bbolt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoggerMessages checks that Options.Logger hears Open and Close at
// debug level, and that DefaultLogger keeps debug messages out until
// EnableDebug.
func TestLoggerMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	var buf bytes.Buffer
	l := NewDefaultLogger(&buf)
	db, err := Open(path, 0o600, &Options{Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	if db.Logger() != Logger(l) {
		t.Errorf("DB.Logger is not Options.Logger")
	}
	db.Close()
	if buf.Len() != 0 {
		t.Errorf("debug messages written before EnableDebug: %q", buf.String())
	}
	l.EnableDebug()
	db, err = Open(path, 0o600, &Options{Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, want := range []string{"DEBUG: opening " + path, "DEBUG: opened " + path, "DEBUG: closing " + path} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
	// A file that is not a database is an error, logged as one.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, bytes.Repeat([]byte{7}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad, 0o600, &Options{Logger: l}); err == nil {
		t.Fatal("opened a file of sevens")
	}
	if !strings.Contains(buf.String(), "ERROR: opening "+bad) {
		t.Errorf("log %q lacks the failed open", buf.String())
	}
	// Without a logger, DB.Logger discards and is never nil.
	db, err = Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Logger() == nil {
		t.Fatal("nil Logger")
	}
	db.Logger().Errorf("dropped")
}

// TestZeroDB checks that a DB{} that Open did not return answers
// ErrDatabaseNotOpen, as bbolt's does, instead of panicking.
func TestZeroDB(t *testing.T) {
	var db DB
	for _, writable := range []bool{false, true} {
		if _, err := db.Begin(writable); err != ErrDatabaseNotOpen {
			t.Errorf("Begin(%v): %v", writable, err)
		}
	}
	if err := db.View(func(*Tx) error { return nil }); err != ErrDatabaseNotOpen {
		t.Errorf("View: %v", err)
	}
	if err := db.Update(func(*Tx) error { return nil }); err != ErrDatabaseNotOpen {
		t.Errorf("Update: %v", err)
	}
	if err := db.Sync(); err != ErrDatabaseNotOpen {
		t.Errorf("Sync: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if db.Info() != nil {
		t.Errorf("Info of a DB{} is not nil")
	}
}

// TestOpenBboltFile checks that Open names a bbolt file as such, and the
// command that converts it, for writing and read-only.
func TestOpenBboltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bolt.db")
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	for _, ro := range []bool{false, true} {
		_, err := Open(path, 0o600, &Options{ReadOnly: ro})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "quiver import --from-bbolt "+path) {
			t.Errorf("read-only %v: %v", ro, err)
		}
	}
}
