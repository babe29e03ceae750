package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/snapshotpolicy"
)

// Files canoe keeps in DataDir. RemoveState removes exactly these.
const (
	identityFile = "canoe.json"   // node ID and the ports it was given
	recoveryFile = "recover.json" // a recovery the next Start performs (RecoveryRequest)
	boltFile     = "raft.db"      // raft log and stable store (Bolt)
	walDir       = "wal"          // raft log and stable store (WAL)
	snapshotDir  = "snapshots"    // FileSnapshotStore's folder
	logCacheSize = 64             // recent entries kept in memory; a batch entry holds up to 1 MiB
	identityVer  = 1              // version of identityFile's format
	dirPerm      = fs.FileMode(0o750)
)

// Kind is an on-disk format of the raft log. Its values are those of
// canoe.LogStore.
type Kind int

const (
	// Auto uses the format DataDir holds, or DefaultKind when it holds none.
	Auto Kind = iota
	// Bolt is hashicorp/raft-boltdb/v2: one B+tree file, raft.db.
	Bolt
	// WAL is hashicorp/raft-wal: segment files under wal/.
	WAL
)

// DefaultKind is the format a new DataDir gets under Auto.
const DefaultKind = WAL

func (k Kind) String() string {
	switch k {
	case Auto:
		return "auto"
	case Bolt:
		return "bolt"
	case WAL:
		return "wal"
	}
	return fmt.Sprintf("LogStore(%d)", int(k))
}

// ErrFormatMismatch is returned by Open when DataDir holds a log in another
// format than the one asked for.
var ErrFormatMismatch = errors.New("storage: DataDir holds another log format")

// Identity is what a node must remember across restarts beside raft's state.
type Identity struct {
	Version    int    `json:"version"`
	ID         uint64 `json:"id"`
	ClusterID  uint64 `json:"cluster_id"`
	Member     bool   `json:"member"` // a committed configuration has held this node
	RaftPort   int    `json:"raft_port"`
	ConfigPort int    `json:"config_port,omitempty"`
	GossipPort int    `json:"gossip_port,omitempty"`
	// MemberIndex is an index at which a committed configuration held this
	// node (0 in identities written before it was recorded): a committed
	// configuration without the node, in effect at a later index, removed it.
	MemberIndex uint64 `json:"member_index,omitempty"`
}

// LoadIdentity reads DataDir's identity; ok is false when there is none.
func LoadIdentity(dir string) (id Identity, ok bool, err error) {
	if dir == "" {
		return Identity{}, false, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("canoe: read node identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil || id.ID == 0 || id.Version != identityVer {
		return Identity{}, false, fmt.Errorf("canoe: %s in %s is damaged or of an unknown version", identityFile, dir)
	}
	return id, true, nil
}

// SaveIdentity writes DataDir's identity atomically and durably.
func SaveIdentity(dir string, id Identity) error {
	if dir == "" {
		return nil
	}
	id.Version = identityVer
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir, identityFile, b); err != nil {
		return fmt.Errorf("canoe: write node identity: %w", err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with b: a reader sees the old file or
// the new one, and after a crash once it returned, the new one.
func writeFileAtomic(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
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

// Stores are raft's three stores plus what closes them.
type Stores struct {
	Logs   raft.LogStore
	Stable raft.StableStore
	Snaps  raft.SnapshotStore
	close  io.Closer // nil for in-memory stores
	dir    string    // DataDir; "" for in-memory stores
}

// Open opens DataDir's stores, or in-memory ones when dir is "". want is
// the configured format; a DataDir that already holds a log keeps its own,
// and asking for the other format is an error matching ErrFormatMismatch.
// A DataDir whose stores are open (a running node) is refused with an
// error matching ErrInUse (see CheckNotInUse) instead of waiting for them.
func Open(dir string, want Kind, snap snapshotpolicy.Config, logger hclog.Logger) (*Stores, error) {
	if dir == "" {
		mem := raft.NewInmemStore()
		return &Stores{Logs: mem, Stable: mem, Snaps: raft.NewInmemSnapshotStore()}, nil
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("canoe: create DataDir: %w", err)
	}
	if err := CheckNotInUse(dir); err != nil {
		return nil, err
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
	case Bolt:
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
	return &Stores{Logs: cache, Stable: log, Snaps: snaps, close: log, dir: dir}, nil
}

// chooseLogStore returns the format of the log in dir, or want's (or the
// default's) when dir holds none. Asking for a format other than the one
// dir holds is an error: canoe does not convert logs.
func chooseLogStore(dir string, want Kind) (Kind, error) {
	hasBolt, err := nonEmptyFile(filepath.Join(dir, boltFile))
	if err != nil {
		return 0, fmt.Errorf("canoe: look for the raft log: %w", err)
	}
	hasWAL, err := nonEmptyFile(filepath.Join(dir, walDir, walMetaFile))
	if err != nil {
		return 0, fmt.Errorf("canoe: look for the raft log: %w", err)
	}
	var have Kind
	switch {
	case hasBolt && hasWAL:
		return 0, fmt.Errorf("canoe: DataDir %s holds two raft logs, %s and %s/: remove the one this node did not use", dir, boltFile, walDir)
	case hasBolt:
		have = Bolt
	case hasWAL:
		have = WAL
	case want == Auto:
		return DefaultKind, nil
	default:
		return want, nil
	}
	if want != Auto && want != have {
		return 0, fmt.Errorf("%w: LogStore is %v but DataDir %s holds a %v raft log; canoe does not convert logs: use LogStoreAuto (or %v), or remove DataDir and join the cluster again as a new node", ErrFormatMismatch, want, dir, have, have)
	}
	return have, nil
}

// HasLog reports whether dir holds a raft log, in either format.
func HasLog(dir string) (bool, error) {
	for _, f := range []string{filepath.Join(dir, boltFile), filepath.Join(dir, walDir, walMetaFile)} {
		ok, err := nonEmptyFile(f)
		if err != nil {
			return false, fmt.Errorf("canoe: look for the raft log: %w", err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
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

// Close closes the stores; in-memory stores need no closing.
func (s *Stores) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close.Close()
}

// RemoveState deletes canoe's files from dir, leaving anything else there.
func RemoveState(dir string) error {
	if dir == "" {
		return nil
	}
	var errs []error
	for _, name := range []string{boltFile, walDir, snapshotDir, identityFile, recoveryFile} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
