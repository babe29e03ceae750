package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/snapshotpolicy"
)

func openTestStores(t *testing.T, dir string, want Kind) *Stores {
	t.Helper()
	st, err := Open(dir, want, snapshotpolicy.Config{}.WithDefaults(), hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("open stores in %s: %v", dir, err)
	}
	return st
}

func storeRange(t *testing.T, logs raft.LogStore, lo, hi uint64) {
	t.Helper()
	var batch []*raft.Log
	for i := lo; i <= hi; i++ {
		batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry-%d", i)})
	}
	if err := logs.StoreLogs(batch); err != nil {
		t.Fatalf("store %d-%d: %v", lo, hi, err)
	}
}

func checkRange(t *testing.T, logs raft.LogStore, lo, hi uint64) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if want := fmt.Sprintf("entry-%d", i); string(l.Data) != want {
			t.Fatalf("entry %d holds %q, want %q", i, l.Data, want)
		}
	}
	if last, err := logs.LastIndex(); err != nil || last != hi {
		t.Fatalf("last index %d (%v), want %d", last, err, hi)
	}
}

// TestLogStoreTailTruncationSurvivesRestart does what raft does when a new
// leader overrules a follower's uncommitted entries (DeleteRange of the
// log's tail), then reopens the store: raft-wal v0.4.0 then failed every
// read with "sealed segment has no index block" and raft panicked
// (hashicorp/raft-wal#31; canoe's chaos suite hit it).
func TestLogStoreTailTruncationSurvivesRestart(t *testing.T) {
	for _, kind := range []Kind{WAL, Bolt} {
		t.Run(kind.String(), func(t *testing.T) {
			dir := t.TempDir()
			st := openTestStores(t, dir, kind)
			storeRange(t, st.Logs, 1, 100)
			if err := st.Logs.DeleteRange(91, 100); err != nil {
				t.Fatalf("truncate the tail: %v", err)
			}
			storeRange(t, st.Logs, 91, 95) // the new leader's entries
			if err := st.Stable.SetUint64([]byte("CurrentTerm"), 7); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}

			st = openTestStores(t, dir, Auto)
			defer st.Close()
			checkRange(t, st.Logs, 1, 95)
			storeRange(t, st.Logs, 96, 120)
			checkRange(t, st.Logs, 1, 120)
			if term, err := st.Stable.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
				t.Fatalf("CurrentTerm after reopening: %d (%v), want 7", term, err)
			}
		})
	}
}

// TestLogStoreChoice: a DataDir keeps the format it holds; asking for the
// other one, or a DataDir holding both, is an error that says why.
func TestLogStoreChoice(t *testing.T) {
	for _, kind := range []Kind{WAL, Bolt} {
		t.Run(kind.String(), func(t *testing.T) {
			dir := t.TempDir()
			st := openTestStores(t, dir, kind)
			storeRange(t, st.Logs, 1, 3)
			st.Close()
			if got, err := chooseLogStore(dir, Auto); err != nil || got != kind {
				t.Fatalf("LogStoreAuto on a %v DataDir chose %v (%v)", kind, got, err)
			}
			other := Bolt
			if kind == Bolt {
				other = WAL
			}
			_, err := Open(dir, other, snapshotpolicy.Config{}.WithDefaults(), hclog.NewNullLogger())
			if !errors.Is(err, ErrFormatMismatch) || !strings.Contains(err.Error(), kind.String()) || !strings.Contains(err.Error(), other.String()) {
				t.Fatalf("asking for %v on a %v DataDir: %v; want ErrFormatMismatch naming both", other, kind, err)
			}
		})
	}
	t.Run("empty DataDir gets the default", func(t *testing.T) {
		if got, err := chooseLogStore(t.TempDir(), Auto); err != nil || got != DefaultKind {
			t.Fatalf("chose %v (%v), want %v", got, err, DefaultKind)
		}
	})
	t.Run("both", func(t *testing.T) {
		dir := t.TempDir()
		openTestStores(t, dir, WAL).Close()
		openTestStores(t, filepath.Join(dir, "other"), Bolt).Close()
		if err := os.Rename(filepath.Join(dir, "other", boltFile), filepath.Join(dir, boltFile)); err != nil {
			t.Fatal(err)
		}
		_, err := chooseLogStore(dir, Auto)
		if err == nil || !strings.Contains(err.Error(), "two raft logs") {
			t.Fatalf("a DataDir with both logs: %v; want an error", err)
		}
	})
}
