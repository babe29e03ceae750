package storage

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrInUse is returned by Open and CheckNotInUse for a DataDir whose raft
// log another open store holds: a running node, in this process or another.
var ErrInUse = errors.New("canoe: DataDir is in use")

// CheckNotInUse returns an error matching ErrInUse when an open store
// holds dir's raft log. bbolt (raft.db, and raft-wal's wal-meta.db) takes
// an exclusive file lock for as long as the store is open, and a second
// open would wait for it forever; this tries the lock without waiting and
// releases it at once. A store opened right after the check is not seen.
// On platforms without flock it finds nothing.
func CheckNotInUse(dir string) error {
	if dir == "" {
		return nil
	}
	for _, f := range []string{filepath.Join(dir, boltFile), filepath.Join(dir, walDir, walMetaFile)} {
		held, err := lockHeld(f)
		if err != nil {
			return fmt.Errorf("canoe: check whether %s is in use: %w", f, err)
		}
		if held {
			return fmt.Errorf("%w: %s is locked by a running node (in this process or another); stop that node first", ErrInUse, f)
		}
	}
	return nil
}
