package snapshotpolicy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// takeSnapshot writes a one-byte snapshot at index through the store API.
func takeSnapshot(t *testing.T, s raft.SnapshotStore, index uint64) {
	t.Helper()
	sink, err := s.Create(raft.SnapshotVersionMax, index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatalf("Create(index %d): %v", index, err)
	}
	if _, err := sink.Write([]byte{byte(index)}); err != nil {
		t.Fatalf("Write(index %d): %v", index, err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close(index %d): %v", index, err)
	}
}

func TestNewStoreRetains(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want int
	}{
		{name: "default", c: Config{}, want: 2},
		{name: "one", c: Config{MaxRetainedSnapshots: 1}, want: 1},
		{name: "five", c: Config{MaxRetainedSnapshots: 5}, want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data") // does not exist yet
			s, err := NewStore(dir, tt.c, hclog.NewNullLogger())
			if err != nil {
				t.Fatalf("NewStore: %v", err)
			}
			if _, ok := s.(*raft.FileSnapshotStore); !ok {
				t.Fatalf("got %T, want *raft.FileSnapshotStore", s)
			}
			created := tt.want + 2
			for i := 1; i <= created; i++ {
				takeSnapshot(t, s, uint64(i*10))
			}

			metas, err := s.List()
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := len(metas); got != tt.want {
				t.Fatalf("List returned %d snapshots, want %d", got, tt.want)
			}
			// Newest first: the retained ones are the last tt.want created.
			for i, m := range metas {
				if want := uint64((created - i) * 10); m.Index != want {
					t.Errorf("metas[%d].Index: got %d, want %d", i, m.Index, want)
				}
			}
			// List caps at retain by itself; check the disk was reaped too.
			entries, err := os.ReadDir(filepath.Join(dir, "snapshots"))
			if err != nil {
				t.Fatalf("ReadDir: %v", err)
			}
			if got := len(entries); got != tt.want {
				t.Errorf("snapshot directories on disk: got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestNewStoreInmem(t *testing.T) {
	s, err := NewStore("", Config{MaxRetainedSnapshots: 3}, nil)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	if _, ok := s.(*raft.InmemSnapshotStore); !ok {
		t.Fatalf("got %T, want *raft.InmemSnapshotStore", s)
	}
	takeSnapshot(t, s, 10)
	takeSnapshot(t, s, 20)
	metas, err := s.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(metas) != 1 || metas[0].Index != 20 {
		t.Errorf("got %d snapshots, want only index 20", len(metas))
	}
}

func TestNewStoreErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		dir         string
		c           Config
		wantInvalid bool
	}{
		{name: "invalid config", dir: t.TempDir(), c: Config{MaxRetainedSnapshots: -1}, wantInvalid: true},
		{name: "invalid config in memory", dir: "", c: Config{Interval: 1}, wantInvalid: true},
		{name: "dir is a file", dir: file, c: Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStore(tt.dir, tt.c, nil)
			if err == nil {
				t.Fatalf("got store %T, want an error", s)
			}
			if got := errors.Is(err, ErrInvalidConfig); got != tt.wantInvalid {
				t.Errorf("errors.Is(%v, ErrInvalidConfig): got %v, want %v", err, got, tt.wantInvalid)
			}
			if !tt.wantInvalid && errors.Unwrap(err) == nil {
				t.Errorf("got unwrapped error %v, want it to wrap the cause", err)
			}
		})
	}
}
