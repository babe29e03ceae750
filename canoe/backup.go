package canoe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/canoe/internal/backup"
	"github.com/canoe-raft/canoe/httpconfig"
)

// Backups are one self-describing stream: a header with the format
// version, cluster ID, log index, term and sizes; canoe's membership; the
// FSM's state as its snapshot writes it; and a SHA-256 of all of it
// (canoe/internal/backup has the layout). Backup writes one from a fresh
// capture of this node's FSM; RestoreBackup checks one in full before it
// lets raft restore it on the leader (raft's user-snapshot restore), which
// then sends it to the followers like any snapshot.

// DefaultMaxBackupBytes is the largest backup RestoreBackup accepts when
// NodeConfig.MaxBackupBytes is 0: 16 GiB.
const DefaultMaxBackupBytes int64 = 16 << 30

// Files Backup and RestoreBackup keep in DataDir while they run.
const (
	backupStatePattern  = ".canoe-backup-*.state"
	restoreStagePattern = ".canoe-restore-*.backup"
)

// backupBufSize is the buffer of each read and write of those files and of
// RestoreFrom's backup.
const backupBufSize = 256 << 10

// BackupInfo describes a backup.
type BackupInfo struct {
	Version   int       // format version
	ClusterID uint64    // the cluster it was taken from
	NodeID    uint64    // the node that wrote it
	Index     uint64    // the log index whose state it holds (see Node.Backup)
	Term      uint64    // the term of that index
	Created   time.Time // when it was written, to the millisecond
	Members   []Peer    // the cluster's members then, by ID
	StateSize int64     // bytes of the FSM's state
	Size      int64     // bytes of the whole backup
	SHA256    [32]byte  // the checksum it ends with
}

// InspectBackup reads a whole backup from r, verifies its format and
// checksum, and returns what its header says. It needs no node. Errors
// match ErrInvalidBackup and say what is wrong, except r's own errors.
func InspectBackup(r io.Reader) (BackupInfo, error) {
	br, err := backup.NewReader(r, math.MaxInt64)
	if err != nil {
		return BackupInfo{}, backupErr(err)
	}
	return readBackupInfo(br)
}

// readBackupInfo reads the rest of the backup br reads, which verifies its
// checksum, and returns its info. Errors match ErrInvalidBackup, except
// those of the stream br reads.
func readBackupInfo(br *backup.Reader) (BackupInfo, error) {
	if _, err := io.Copy(io.Discard, br.State()); err != nil {
		return BackupInfo{}, backupErr(err)
	}
	h := br.Header()
	var m adapter.Membership
	if err := json.Unmarshal(br.Membership(), &m); err != nil {
		return BackupInfo{}, fmt.Errorf("%w: its membership record is not canoe's JSON: %v", ErrInvalidBackup, err)
	}
	return BackupInfo{
		Version: h.Version, ClusterID: h.ClusterID, NodeID: h.NodeID, Index: h.Index, Term: h.Term,
		Created: h.Created, Members: membershipPeers(m), StateSize: h.StateSize, Size: h.Size(), SHA256: br.Sum(),
	}, nil
}

// membershipPeers returns the members of a snapshot's membership: the
// servers of its configuration, with the addresses recorded for them and,
// as Node.Peers says, whether a non-voter is a read replica.
func membershipPeers(m adapter.Membership) []Peer {
	metas := make(map[uint64]adapter.PeerMeta, len(m.Peers))
	for _, p := range m.Peers {
		metas[p.ID] = p
	}
	out := make([]Peer, 0, len(m.Servers))
	for _, s := range m.Servers {
		p := Peer{ID: s.ID, Voter: s.Voter}
		if pm, ok := metas[s.ID]; ok {
			p.Host, p.RaftPort, p.ConfigPort, p.GossipPort = pm.Host, pm.RaftPort, pm.ConfigPort, pm.GossipPort
			p.NonVoter = pm.NonVoter && !p.Voter
		}
		out = append(out, p)
	}
	return out
}

// backupErr wraps an error of package backup about a backup's content.
func backupErr(err error) error {
	if errors.Is(err, backup.ErrInvalid) {
		return fmt.Errorf("%w: %s", ErrInvalidBackup, strings.TrimPrefix(err.Error(), backup.ErrInvalid.Error()+": "))
	}
	return err
}

// Backup writes a backup of the cluster's state to w and returns the log
// index whose state it holds. It works on any node and is linearizable:
// it first waits for a ReadBarrier, then captures this node's FSM as a
// snapshot does (Apply waits only while Snapshot or SnapshotStream runs),
// writes the state to a file in DataDir (the system's temporary directory
// when DataDir is "") to learn its size, and streams the backup from it:
// a StreamingFSM's state is never held in memory. The backup holds every
// proposal committed before Backup was called, and possibly later ones;
// the index it records is that of the last entry whose effects it holds
// (raft's no-ops and barriers after it, if any, changed nothing). It ends
// with a SHA-256 of its content. If ctx ends or w fails, Backup returns an
// error and what w received is not a valid backup.
//
// A StreamingFSM's write function may then run while raft persists a
// snapshot of its own with another one.
func (n *Node) Backup(ctx context.Context, w io.Writer) (uint64, error) {
	if _, err := n.current(); err != nil {
		return 0, err
	}
	if err := n.ReadBarrier(ctx); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(n.scratchDir(), backupStatePattern)
	if err != nil {
		return 0, fmt.Errorf("canoe: backup: %w", err)
	}
	defer func() {
		f.Close()
		_ = os.Remove(f.Name())
	}()
	bw := bufio.NewWriterSize(f, backupBufSize)
	sh, err := n.fsm.WriteState(ctxWriter{ctx, bw})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return 0, fmt.Errorf("canoe: backup: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return 0, fmt.Errorf("canoe: backup: %w", err)
	}
	membership, err := json.Marshal(sh.Membership)
	if err != nil {
		return 0, fmt.Errorf("canoe: backup: %w", err)
	}
	h := backup.Header{
		ClusterID:      n.cfg.ClusterID,
		NodeID:         n.id,
		Index:          sh.Index,
		Term:           sh.Term,
		Created:        time.Now(),
		MembershipSize: int64(len(membership)),
		StateSize:      size,
	}
	state := ctxReader{ctx, bufio.NewReaderSize(f, backupBufSize)}
	if _, err := backup.Write(ctxWriter{ctx, w}, h, membership, state); err != nil {
		return 0, fmt.Errorf("canoe: backup: %w", err)
	}
	return sh.Index, nil
}

// scratchDir is where Backup and RestoreBackup keep their files.
func (n *Node) scratchDir() string {
	if n.cfg.DataDir == "" {
		return os.TempDir()
	}
	return n.cfg.DataDir
}

// RestoreBackup replaces the state of the whole running cluster with the
// backup r holds (raft's user-snapshot restore). It first reads r to its
// end into a file in DataDir and checks it: a backup that is not canoe's,
// of an unknown format, truncated, damaged, larger than MaxBackupBytes or
// of another ClusterID is refused with an error matching
// ErrInvalidBackup that says what is wrong, and nothing changes. Then the
// leader (a follower sends the checked backup to it) restores it: its FSM
// is replaced through Restore or RestoreStream (streamed), at a new log
// index beyond every entry so far, and the followers install it as a
// snapshot; RestoreBackup returns once a quorum holds it. The cluster's
// membership stays as it is: the backup's is not used.
//
// Proposals in flight on the leader when the restore begins fail with an
// error matching ErrUnknownOutcome (the restored state replaces their
// effects, if any). If the FSM's Restore or RestoreStream fails on a
// backup whose checksum holds, raft v1.7.3 panics on the leader: make them
// read whatever Backup wrote.
func (n *Node) RestoreBackup(ctx context.Context, r io.Reader) error {
	if _, err := n.current(); err != nil {
		return err
	}
	st, err := n.stageBackup(ctx, r)
	if err != nil {
		return err
	}
	defer st.Discard()
	return st.Restore(ctx)
}

// stagedBackup is a backup read to its end and checked, kept in a file.
type stagedBackup struct {
	n    *Node
	path string
	info BackupInfo
	once sync.Once // guards the removal of path
}

// stageBackup reads the backup r holds to its end (io.EOF) into a file,
// checks it, and returns it. It changes nothing else.
func (n *Node) stageBackup(ctx context.Context, r io.Reader) (_ *stagedBackup, err error) {
	f, err := os.CreateTemp(n.scratchDir(), restoreStagePattern)
	if err != nil {
		return nil, fmt.Errorf("canoe: stage the backup: %w", err)
	}
	st := &stagedBackup{n: n, path: f.Name()}
	defer func() {
		if err != nil {
			f.Close()
			st.Discard()
		}
	}()
	bw := bufio.NewWriterSize(f, backupBufSize)
	br, err := backup.NewReader(io.TeeReader(ctxReader{ctx, r}, bw), n.cfg.MaxBackupBytes)
	if err != nil {
		return nil, backupErr(err)
	}
	if st.info, err = readBackupInfo(br); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("canoe: stage the backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("canoe: stage the backup: %w", err)
	}
	if st.info.ClusterID != n.cfg.ClusterID {
		return nil, fmt.Errorf("%w: it is a backup of cluster %d, and this is cluster %d (ClusterID)", ErrInvalidBackup, st.info.ClusterID, n.cfg.ClusterID)
	}
	return st, nil
}

// Discard removes the staged file. It may be called more than once.
func (s *stagedBackup) Discard() {
	s.once.Do(func() {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.n.logger.Warn("could not remove a staged backup", "path", s.path, "error", err)
		}
	})
}

// Restore restores the staged backup on the leader, sending it there from
// a follower.
func (s *stagedBackup) Restore(ctx context.Context) error {
	n := s.n
	n.restoreMu.Lock()
	defer n.restoreMu.Unlock()
	return n.onLeader(ctx, func(rt *run, leader uint64) error {
		switch {
		case leader == n.id:
			return n.restoreLocal(ctx, rt, s)
		case !n.canForward():
			// Only nodes on a test transport have no HTTP API. Not a
			// NotLeaderError: onLeader would retry it forever.
			return fmt.Errorf("canoe: restore backup: this follower has no HTTP API to send the backup to the leader (%d): restore it there", leader)
		}
		return n.forwardRestore(ctx, leader, s)
	})
}

// restoreLocal has raft restore the staged backup on this node, the
// leader.
func (n *Node) restoreLocal(ctx context.Context, rt *run, s *stagedBackup) error {
	// Once every committed entry is applied, the membership captured below
	// is the cluster's. (A member's addresses recorded between here and the
	// restore are recorded again: the leader re-records its own, and
	// gossip the others'.)
	if err := n.await(ctx, rt, rt.raft.Barrier(enqueueTimeout)); err != nil {
		return n.raftErr(err)
	}
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("canoe: restore backup: %w", err)
	}
	defer f.Close()
	// Read and checked again as raft copies it: if the copy fails, raft
	// restores nothing (it has already failed the proposals in flight,
	// as unknown outcomes).
	br, err := backup.NewReader(bufio.NewReaderSize(f, backupBufSize), math.MaxInt64)
	if err != nil {
		return fmt.Errorf("canoe: restore backup: the staged copy: %w", backupErr(err))
	}
	// Raft gives the restored snapshot the index after its last one
	// (raft.go restoreUserSnapshot: max(last index, meta.Index) + 1, with
	// meta.Index 0) and the current term, and reads the snapshot on its
	// leader goroutine, which appends nothing meanwhile: at the first Read
	// those are exact, and the FSM's applied index becomes that index.
	snap, size, err := adapter.NewRestoreReader(n.fsm.Membership(), br.State(), br.Header().StateSize, func() (uint64, uint64) {
		return rt.raft.LastIndex() + 1, rt.raft.CurrentTerm()
	})
	if err != nil {
		return err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size}
	n.logger.Info("restoring a backup", "backup_index", s.info.Index, "backup_cluster", s.info.ClusterID, "bytes", s.info.Size)
	// No timeout: raft's covers the whole restore, and one shorter than
	// the restore of a large state fails a restore that took effect. ctx
	// ends it while the state is copied (ctxReader), before the FSM
	// restores it.
	if err := rt.raft.Restore(meta, ctxReader{ctx, snap}, 0); err != nil {
		return fmt.Errorf("canoe: restore backup: %w", n.raftErr(err))
	}
	n.logger.Info("restored a backup", "backup_index", s.info.Index, "index", rt.raft.LastIndex())
	return nil
}

// canForward reports whether forwardRestore can reach the leader.
func (n *Node) canForward() bool {
	_, ok := n.fwd.(*httpForwarder)
	return ok
}

// forwardRestore sends the staged backup to the leader's POST /snapshot.
func (n *Node) forwardRestore(ctx context.Context, leader uint64, s *stagedBackup) error {
	hf := n.fwd.(*httpForwarder)
	base, err := hf.base(leader)
	if err != nil {
		return err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("canoe: restore backup: %w", err)
	}
	defer f.Close()
	_, err = hf.client.RestoreSnapshot(ctx, base, f)
	var se *httpconfig.StatusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && errors.Is(se, httpconfig.ErrInvalid):
		return fmt.Errorf("%w: leader %d refused it: %s", ErrInvalidBackup, leader, se.Message)
	}
	return fromHTTPError(err, leader)
}

// removeStagedBackups removes what Backup and RestoreBackup left in dir
// when the process stopped in the middle.
func removeStagedBackups(dir string) {
	if dir == "" {
		return
	}
	for _, pattern := range []string{backupStatePattern, restoreStagePattern} {
		names, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, name := range names {
			_ = os.Remove(name)
		}
	}
}

// ctxReader and ctxWriter fail once ctx has ended.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return r.r.Read(p)
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return w.w.Write(p)
}
