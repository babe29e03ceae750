package canoe

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/snapshotpolicy"
)

// Files canoe keeps in DataDir. Destroy removes exactly these.
const (
	identityFile = "canoe.json" // node ID and the ports it was given
	boltFile     = "raft.db"    // raft log and stable store (LogStoreBolt)
	walDir       = "wal"        // raft log and stable store (LogStoreWAL)
	snapshotDir  = "snapshots"  // FileSnapshotStore's folder
	logCacheSize = 64           // recent entries kept in memory; a batch entry holds up to 1 MiB
	identityVer  = 1            // version of identityFile's format
	dirPerm      = fs.FileMode(0o750)
)

// identity is what a node must remember across restarts beside raft's state.
type identity struct {
	Version    int    `json:"version"`
	ID         uint64 `json:"id"`
	ClusterID  uint64 `json:"cluster_id"`
	Member     bool   `json:"member"` // a configuration has held this node
	RaftPort   int    `json:"raft_port"`
	ConfigPort int    `json:"config_port,omitempty"`
	GossipPort int    `json:"gossip_port,omitempty"`
}

// loadIdentity reads DataDir's identity; ok is false when there is none.
func loadIdentity(dir string) (id identity, ok bool, err error) {
	if dir == "" {
		return identity{}, false, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return identity{}, false, nil
	}
	if err != nil {
		return identity{}, false, fmt.Errorf("canoe: read node identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil || id.ID == 0 || id.Version != identityVer {
		return identity{}, false, fmt.Errorf("canoe: %s in %s is damaged or of an unknown version", identityFile, dir)
	}
	return id, true, nil
}

// saveIdentity writes DataDir's identity atomically and durably.
func saveIdentity(dir string, id identity) error {
	if dir == "" {
		return nil
	}
	id.Version = identityVer
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, identityFile+".tmp*")
	if err != nil {
		return fmt.Errorf("canoe: write node identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("canoe: write node identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("canoe: write node identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("canoe: write node identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, identityFile)); err != nil {
		return fmt.Errorf("canoe: write node identity: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// stores are raft's three stores plus what closes them.
type stores struct {
	logs   raft.LogStore
	stable raft.StableStore
	snaps  raft.SnapshotStore
	close  io.Closer // nil for in-memory stores
}

// openStores opens DataDir's stores, or in-memory ones when dir is "".
// want is the configured format; a DataDir that already holds a log keeps
// its own.
func openStores(dir string, want LogStore, snap snapshotpolicy.Config, logger Logger) (*stores, error) {
	if dir == "" {
		mem := raft.NewInmemStore()
		return &stores{logs: mem, stable: mem, snaps: raft.NewInmemSnapshotStore()}, nil
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("canoe: create DataDir: %w", err)
	}
	kind, err := chooseLogStore(dir, want)
	if err != nil {
		return nil, err
	}
	var log interface {
		raft.LogStore
		raft.StableStore
		io.Closer
	}
	switch kind {
	case LogStoreBolt:
		log, err = openBolt(filepath.Join(dir, boltFile))
	default:
		log, err = openWAL(filepath.Join(dir, walDir), logger.Named("wal"))
	}
	if err != nil {
		return nil, err
	}
	cache, err := raft.NewLogCache(logCacheSize, log)
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("canoe: log cache: %w", err)
	}
	snaps, err := snapshotpolicy.NewStore(dir, snap, logger.Named("snapshot"))
	if err != nil {
		log.Close()
		return nil, err
	}
	return &stores{logs: cache, stable: log, snaps: snaps, close: log}, nil
}

// chooseLogStore returns the format of the log in dir, or want's (or the
// default's) when dir holds none. Asking for a format other than the one
// dir holds is an error: canoe does not convert logs.
func chooseLogStore(dir string, want LogStore) (LogStore, error) {
	hasBolt, err := nonEmptyFile(filepath.Join(dir, boltFile))
	if err != nil {
		return 0, fmt.Errorf("canoe: look for the raft log: %w", err)
	}
	hasWAL, err := nonEmptyFile(filepath.Join(dir, walDir, walMetaFile))
	if err != nil {
		return 0, fmt.Errorf("canoe: look for the raft log: %w", err)
	}
	var have LogStore
	switch {
	case hasBolt && hasWAL:
		return 0, fmt.Errorf("canoe: DataDir %s holds two raft logs, %s and %s/: remove the one this node did not use", dir, boltFile, walDir)
	case hasBolt:
		have = LogStoreBolt
	case hasWAL:
		have = LogStoreWAL
	case want == LogStoreAuto:
		return DefaultLogStore, nil
	default:
		return want, nil
	}
	if want != LogStoreAuto && want != have {
		return 0, fmt.Errorf("%w: LogStore is %v but DataDir %s holds a %v raft log; canoe does not convert logs: use LogStoreAuto (or %v), or remove DataDir and join the cluster again as a new node", ErrInvalidConfig, want, dir, have, have)
	}
	return have, nil
}

func nonEmptyFile(path string) (bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Size() > 0, nil
}

func (s *stores) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close.Close()
}

// removeState deletes canoe's files from dir, leaving anything else there.
func removeState(dir string) error {
	if dir == "" {
		return nil
	}
	var errs []error
	for _, name := range []string{boltFile, walDir, snapshotDir, identityFile} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
