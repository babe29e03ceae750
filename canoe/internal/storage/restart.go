package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// RecoverHint says how to bring back a node whose DataDir cannot be
// started from.
const RecoverHint = "remove this node's DataDir and join the cluster again as a new node, or restore the DataDir from a backup"

// CheckStart makes sure that raft can start from the stores, and says why
// not in an error that names the damaged files and how to recover.
//
// raft.NewRaft (v1.7.3) restores the newest snapshot it can read, falling
// back to older ones when a snapshot is damaged, and then reads every log
// entry after the one it restored; when the log was compacted past that
// snapshot it panics ("log not found"). CheckStart finds the snapshot raft
// will restore: the newest whose state passes its store's checksum (the
// file store verifies a CRC when it opens one; every snapshot newer than
// it is reported damaged). It returns an error when the log lacks entries
// right after that snapshot, and when there are snapshots but none is
// readable. When it falls back to an older snapshot and the log covers
// the rest, the node can start: CheckStart logs at WARN which snapshots are
// damaged and returns nil. It reads the newest readable snapshot once in
// full (raft then reads it again).
func (s *Stores) CheckStart(logger hclog.Logger) error {
	metas, err := s.Snaps.List()
	if err != nil {
		return fmt.Errorf("canoe: list snapshots: %w", err)
	}
	first, err := s.Logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("canoe: read the raft log's first index: %w", err)
	}
	last, err := s.Logs.LastIndex()
	if err != nil {
		return fmt.Errorf("canoe: read the raft log's last index: %w", err)
	}
	// covered reports whether the log holds every entry after index (raft
	// reads index+1 through last).
	covered := func(index uint64) bool { return last <= index || first <= index+1 }

	var damaged []string
	for _, m := range metas {
		_, rc, err := s.Snaps.Open(m.ID)
		if err != nil {
			damaged = append(damaged, fmt.Sprintf("%s (index %d: %v)", s.SnapshotPath(m.ID), m.Index, err))
			continue
		}
		rc.Close()
		if !covered(m.Index) {
			if len(damaged) == 0 {
				return fmt.Errorf("canoe: cannot start from DataDir %s: the raft log starts at index %d, but the newest snapshot %s ends at index %d: the entries between are missing; %s",
					s.dir, first, s.SnapshotPath(m.ID), m.Index, RecoverHint)
			}
			return fmt.Errorf("canoe: cannot start from DataDir %s: snapshot %s is damaged, and the raft log no longer holds the entries after the older snapshot %s (it starts at index %d, the snapshot ends at %d): %s",
				s.dir, strings.Join(damaged, ", "), s.SnapshotPath(m.ID), first, m.Index, RecoverHint)
		}
		if len(damaged) > 0 {
			logger.Warn("damaged snapshot: starting from an older snapshot and the raft log instead",
				"damaged", strings.Join(damaged, ", "), "snapshot", s.SnapshotPath(m.ID), "index", m.Index)
		}
		return nil
	}
	switch {
	case len(metas) > 0:
		return fmt.Errorf("canoe: cannot start from DataDir %s: every snapshot is damaged: %s; %s",
			s.dir, strings.Join(damaged, ", "), RecoverHint)
	case !covered(0):
		return fmt.Errorf("canoe: cannot start from DataDir %s: the raft log starts at index %d but there is no snapshot of the entries before it; %s",
			s.dir, first, RecoverHint)
	}
	return nil
}

// SnapshotPath returns the directory of snapshot id, or the id itself for
// in-memory stores.
func (s *Stores) SnapshotPath(id string) string {
	if s.dir == "" {
		return id
	}
	return filepath.Join(s.dir, snapshotDir, id)
}

// appliedKey is the stable-store key under which canoe records how far the
// FSM has applied the log (8 bytes, like raft's own uint64 keys).
var appliedKey = []byte("CanoeAppliedIndex")

// SaveApplied records that the FSM holds the effects of every entry up to
// index. Every such entry is committed, so a record older than the FSM's
// state (a lower index) is always safe to replay up to.
func (s *Stores) SaveApplied(index uint64) error {
	if err := s.Stable.SetUint64(appliedKey, index); err != nil {
		return fmt.Errorf("canoe: record the applied index: %w", err)
	}
	return nil
}

// LoadApplied returns the index SaveApplied recorded last, or 0.
func (s *Stores) LoadApplied() (uint64, error) {
	v, err := s.Stable.GetUint64(appliedKey)
	if errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("canoe: read the recorded applied index: %w", err)
	}
	return v, nil
}
