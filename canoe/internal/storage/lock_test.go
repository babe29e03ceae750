package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/snapshotpolicy"
)

// TestOpenRefusesDataDirInUse opens a DataDir's stores while they are
// open: bbolt's file lock (raft.db, wal/wal-meta.db) made the second Open
// wait forever; it must fail at once with ErrInUse, and succeed once the
// first stores are closed.
func TestOpenRefusesDataDirInUse(t *testing.T) {
	for _, kind := range []Kind{WAL, Bolt} {
		t.Run(kind.String(), func(t *testing.T) {
			dir := t.TempDir()
			st := openTestStores(t, dir, kind)
			type result struct {
				st  *Stores
				err error
			}
			done := make(chan result, 1)
			go func() {
				again, err := Open(dir, Auto, snapshotpolicy.Config{}.WithDefaults(), hclog.NewNullLogger())
				done <- result{again, err}
			}()
			select {
			case r := <-done:
				if r.err == nil {
					r.st.Close()
					t.Fatal("a second Open of a DataDir in use succeeded, want ErrInUse")
				}
				if !errors.Is(r.err, ErrInUse) {
					t.Fatalf("second Open: got %v, want ErrInUse", r.err)
				}
				t.Logf("second Open: %v", r.err)
			case <-time.After(5 * time.Second):
				st.Close() // lets the blocked Open finish
				r := <-done
				if r.st != nil {
					r.st.Close()
				}
				t.Fatal("a second Open of a DataDir in use was still waiting after 5s (bbolt's file lock), want ErrInUse at once")
			}
			if err := CheckNotInUse(dir); !errors.Is(err, ErrInUse) {
				t.Fatalf("CheckNotInUse while open: got %v, want ErrInUse", err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if err := CheckNotInUse(dir); err != nil {
				t.Fatalf("CheckNotInUse after Close: %v", err)
			}
			openTestStores(t, dir, Auto).Close()
		})
	}
}
