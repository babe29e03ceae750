package canoe

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/canoe/internal/backup"
	"github.com/canoe-raft/canoe/canoe/internal/storage"
)

// A node founding a cluster from a backup (NodeConfig.RestoreFrom) writes,
// before raft starts, a snapshot at index 1 (term 1) whose configuration is
// this one server and whose state is the backup's, and nothing else: raft
// restores it at NewRaft, so the FSM holds the backup's state before Start
// returns, and the configuration it holds lets the node elect itself. The
// log stays empty, so a node that joins later finds no entry 1 to start
// from and is sent the snapshot. (A bootstrap's configuration entry at
// index 1 beside the snapshot would be sent instead, without the state.)

// openRestoreFrom opens the backup RestoreFrom names and reads its header.
func (n *Node) openRestoreFrom() (*os.File, *backup.Reader, error) {
	f, err := os.Open(n.cfg.RestoreFrom)
	if err != nil {
		return nil, nil, fmt.Errorf("canoe: RestoreFrom: %w", err)
	}
	br, err := backup.NewReader(bufio.NewReaderSize(f, backupBufSize), n.cfg.MaxBackupBytes)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("canoe: RestoreFrom %s: %w", n.cfg.RestoreFrom, backupErr(err))
	}
	return f, br, nil
}

// checkRestoreFrom reads the whole backup RestoreFrom names and checks it
// as RestoreBackup does.
func (n *Node) checkRestoreFrom() (BackupInfo, error) {
	f, br, err := n.openRestoreFrom()
	if err != nil {
		return BackupInfo{}, err
	}
	defer f.Close()
	info, err := readBackupInfo(br)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("canoe: RestoreFrom %s: %w", n.cfg.RestoreFrom, err)
	}
	if info.ClusterID != n.cfg.ClusterID {
		return BackupInfo{}, fmt.Errorf("canoe: RestoreFrom %s: %w: it is a backup of cluster %d, and this node founds cluster %d (ClusterID)",
			n.cfg.RestoreFrom, ErrInvalidBackup, info.ClusterID, n.cfg.ClusterID)
	}
	return info, nil
}

// foundFromBackup founds a one-node cluster of self whose state is the
// backup RestoreFrom names (checked by checkRestoreFrom).
func (n *Node) foundFromBackup(rc *raft.Config, st *storage.Stores, trans raft.Transport, self Peer) error {
	f, br, err := n.openRestoreFrom()
	if err != nil {
		return err
	}
	defer f.Close()
	boot := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr()}}}
	sink, err := st.Snaps.Create(raft.SnapshotVersionMax, 1, 1, boot, 1, trans)
	if err != nil {
		return fmt.Errorf("canoe: RestoreFrom: create the first snapshot: %w", err)
	}
	m := adapter.Membership{Peers: []adapter.PeerMeta{self.meta()}, Servers: []adapter.Server{{ID: n.id, Voter: true}}}
	if err := adapter.WriteSnapshotHeader(sink, 1, 1, m); err != nil {
		sink.Cancel()
		return fmt.Errorf("canoe: RestoreFrom: %w", err)
	}
	// The state is checked again as it is copied: the file may have
	// changed since checkRestoreFrom read it.
	if _, err := io.Copy(sink, br.State()); err != nil {
		sink.Cancel()
		return fmt.Errorf("canoe: RestoreFrom %s: %w", n.cfg.RestoreFrom, backupErr(err))
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("canoe: RestoreFrom: write the first snapshot: %w", err)
	}
	h := br.Header()
	n.logger.Info("founded a new cluster from a backup", "cluster", n.cfg.ClusterID, "backup", n.cfg.RestoreFrom,
		"backup_index", h.Index, "backup_node", h.NodeID, "state_bytes", h.StateSize)
	return nil
}
