package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/snapshotpolicy"
)

// addSnapshot writes a snapshot ending at index to st and returns its
// directory.
func addSnapshot(t *testing.T, st *Stores, index uint64) string {
	t.Helper()
	sink, err := st.Snaps.Create(raft.SnapshotVersionMax, index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(bytes.Repeat([]byte{byte(index)}, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return st.SnapshotPath(sink.ID())
}

// TestCheckStart builds the states raft.NewRaft restarts from, damaged and
// not: CheckStart must refuse exactly those raft would panic on (or fail
// to load), naming the damaged snapshot, and must say at WARN when it
// starts from an older snapshot because a newer one is damaged.
func TestCheckStart(t *testing.T) {
	type snap struct {
		index   uint64
		damaged bool
	}
	tests := []struct {
		name     string
		snaps    []snap
		logFrom  uint64 // 0: empty log
		logTo    uint64
		wantErr  []string // "%s" stands for the newest snapshot's directory
		wantWarn bool
	}{
		{name: "no snapshot, whole log", logFrom: 1, logTo: 50},
		{name: "nothing at all"},
		{name: "no snapshot, log compacted", logFrom: 20, logTo: 50, wantErr: []string{"no snapshot", "starts at index 20"}},
		{name: "intact snapshots", snaps: []snap{{10, false}, {40, false}}, logFrom: 30, logTo: 50},
		{name: "snapshot, empty log (installed snapshot)", snaps: []snap{{40, false}}},
		{name: "snapshot, log with a gap after it", snaps: []snap{{40, false}}, logFrom: 45, logTo: 50, wantErr: []string{"%s", "starts at index 45", "ends at index 40"}},
		{name: "newest damaged, log compacted past the older", snaps: []snap{{10, false}, {40, true}}, logFrom: 30, logTo: 50, wantErr: []string{"%s", "CRC mismatch", "starts at index 30", "remove this node's DataDir"}},
		{name: "newest damaged, log covers the older", snaps: []snap{{10, false}, {40, true}}, logFrom: 5, logTo: 50, wantWarn: true},
		{name: "newest damaged, log starts right after the older", snaps: []snap{{10, false}, {40, true}}, logFrom: 11, logTo: 50, wantWarn: true},
		{name: "every snapshot damaged", snaps: []snap{{10, true}, {40, true}}, logFrom: 5, logTo: 50, wantErr: []string{"every snapshot is damaged", "%s"}},
	}
	for _, kind := range []Kind{WAL, Bolt} {
		for _, tt := range tests {
			t.Run(kind.String()+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				st, err := Open(dir, kind, snapshotpolicy.Config{MaxRetainedSnapshots: 2}, hclog.NewNullLogger())
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if tt.logTo > 0 {
					storeRange(t, st.Logs, 1, tt.logTo)
					if tt.logFrom > 1 {
						if err := st.Logs.DeleteRange(1, tt.logFrom-1); err != nil {
							t.Fatal(err)
						}
					}
				}
				var newest string
				for _, s := range tt.snaps {
					newest = addSnapshot(t, st, s.index)
					if s.damaged {
						state := filepath.Join(newest, "state.bin")
						b, err := os.ReadFile(state)
						if err != nil {
							t.Fatal(err)
						}
						b[len(b)/2] ^= 0x10
						if err := os.WriteFile(state, b, 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
				var logs bytes.Buffer
				err = st.CheckStart(hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &logs}))
				switch {
				case tt.wantErr == nil && err != nil:
					t.Fatalf("CheckStart: %v, want nil", err)
				case tt.wantErr != nil && err == nil:
					t.Fatalf("CheckStart returned nil, want an error")
				case err != nil:
					for _, want := range tt.wantErr {
						if want == "%s" {
							want = newest
						}
						if !strings.Contains(err.Error(), want) {
							t.Errorf("CheckStart: %q, want an error containing %q", err, want)
						}
					}
				}
				if warned := strings.Contains(logs.String(), "[WARN]") && strings.Contains(logs.String(), newest); warned != tt.wantWarn {
					t.Errorf("warned naming the newest snapshot: %v, want %v; log: %q", warned, tt.wantWarn, logs.String())
				}
			})
		}
	}
}

// TestAppliedIndexRecord: the applied index is 0 before anything is
// recorded, and a record survives closing and reopening the stores.
func TestAppliedIndexRecord(t *testing.T) {
	for _, kind := range []Kind{WAL, Bolt} {
		t.Run(kind.String(), func(t *testing.T) {
			dir := t.TempDir()
			st := openTestStores(t, dir, kind)
			if got, err := st.LoadApplied(); err != nil || got != 0 {
				t.Fatalf("LoadApplied on new stores: %d, %v; want 0, nil", got, err)
			}
			if err := st.SaveApplied(1234); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st = openTestStores(t, dir, kind)
			defer st.Close()
			if got, err := st.LoadApplied(); err != nil || got != 1234 {
				t.Fatalf("LoadApplied after reopening: %d, %v; want 1234, nil", got, err)
			}
		})
	}
	t.Run("in memory", func(t *testing.T) {
		st := openTestStores(t, "", Auto)
		if got, err := st.LoadApplied(); err != nil || got != 0 {
			t.Fatalf("LoadApplied on new stores: %d, %v; want 0, nil", got, err)
		}
	})
}

// TestAppliedIndexRecordDamaged: a record that is not 8 bytes (a damaged
// or foreign value under the key) is an error from LoadApplied, in either
// log format, never a panic; the stores stay usable and a new record
// replaces it.
func TestAppliedIndexRecordDamaged(t *testing.T) {
	for _, kind := range []Kind{WAL, Bolt} {
		for name, val := range map[string][]byte{"truncated": {0, 0, 4}, "too long": make([]byte, 9)} {
			t.Run(kind.String()+"/"+name, func(t *testing.T) {
				st := openTestStores(t, t.TempDir(), kind)
				defer st.Close()
				if err := st.Stable.Set(appliedKey, val); err != nil {
					t.Fatal(err)
				}
				got, err := func() (got uint64, err error) {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("LoadApplied of a %d-byte record panicked: %v", len(val), p)
						}
					}()
					return st.LoadApplied()
				}()
				if err == nil {
					t.Fatalf("LoadApplied of a %d-byte record: %d, nil; want an error", len(val), got)
				}
				t.Logf("LoadApplied: %v", err)
				if err := st.SaveApplied(77); err != nil {
					t.Fatal(err)
				}
				if got, err := st.LoadApplied(); err != nil || got != 77 {
					t.Fatalf("LoadApplied after a new record: %d, %v; want 77, nil", got, err)
				}
			})
		}
	}
}
