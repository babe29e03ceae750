package canoe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"

	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// walMetaFile is raft-wal's bbolt file: the stable store and the list of
// segments.
const walMetaFile = metadb.FileName

// openWAL opens (or creates) the raft-wal log in dir. Like openBolt it
// turns damage that would crash the process into an error naming the
// directory.
func openWAL(dir string, logger Logger) (store *walStore, err error) {
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("canoe: raft log %s is damaged: %s (restore it from a backup, or remove this node's DataDir and join the cluster again as a new node)", dir, fmt.Sprintf(format, args...))
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("canoe: create %s: %w", dir, err)
	}
	if err := checkBoltFile(filepath.Join(dir, walMetaFile)); err != nil {
		return nil, damaged("%s: %v", walMetaFile, err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			store, err = nil, damaged("raft-wal: %v", r)
		}
	}()
	meta := &metadb.BoltMetaDB{}
	defer func() {
		if store == nil {
			meta.Close()
		}
	}()
	w, err := wal.Open(dir, wal.WithLogger(logger), wal.WithMetaStore(meta))
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno) && errno != syscall.ENOENT:
		// An I/O error (full disk, permissions), not damage.
		return nil, fmt.Errorf("canoe: open raft log %s: %w", dir, err)
	case err != nil:
		return nil, damaged("raft-wal: %v", err)
	}
	return &walStore{WAL: w, meta: meta}, nil
}

// walStore closes the meta database too: raft-wal v0.4.0's Close leaves it
// open, holding its file lock, so reopening the log in the same process
// would block forever.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (s *walStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}
