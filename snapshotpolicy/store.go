package snapshotpolicy

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// NewStore opens the snapshot store for policy c.
//
// With dir == "" it returns a raft.InmemSnapshotStore, which keeps only the
// latest snapshot and loses it when the process exits (for tests and
// throwaway nodes). Otherwise it returns a raft.FileSnapshotStore that keeps
// c.Retain() snapshots in dir/snapshots, creating the directories if needed
// and checking that it can write there. logger receives the store's log
// output; nil discards it.
//
// NewStore returns c.Validate's error if c is invalid, and an error wrapping
// the cause if the directory cannot be created or written.
func NewStore(dir string, c Config, logger hclog.Logger) (raft.SnapshotStore, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if dir == "" {
		return raft.NewInmemSnapshotStore(), nil
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s, err := raft.NewFileSnapshotStoreWithLogger(dir, c.Retain(), logger)
	if err != nil {
		return nil, fmt.Errorf("snapshotpolicy: open snapshot store in %s: %w", dir, err)
	}
	return s, nil
}
