package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
)

// raftImpl is raw hashicorp/raft: raft-boltdb/v2 (or raft-wal when wal is
// set) behind a 512-entry log cache, FileSnapshotStore, NetworkTransport
// over TCP, a counter FSM, the default config with canoe's LocalProfile
// timeouts (raft's own defaults when defaultTiming is set), proposals with
// Apply(...).Error() on the leader; for the read cells a kvStore FSM and
// reads with VerifyLeader().Error() then a read of the leader's map (as
// Consul does).
type raftImpl struct {
	nodes         int
	wal           bool
	defaultTiming bool
	rs            []*raft.Raft
	fsms          []raft.FSM // fsms[i] is rs[i]'s
	stores        []io.Closer
	trans         []*raft.NetworkTransport
	target        *raft.Raft
	targetKV      *raftKV // target's FSM when newFSM makes raftKVs

	// For measurements other than the cells: trailingLogs overrides raft's
	// TrailingLogs, newFSM replaces the counter FSM.
	trailingLogs *uint64
	newFSM       func() raft.FSM
}

func (r *raftImpl) name() string {
	if r.wal {
		return "raft-wal"
	}
	return "raft"
}

// logStore is what raft needs of its log: both stores in one.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openLog opens raft-boltdb/v2 or raft-wal in d.
func (r *raftImpl) openLog(d string) (logStore, error) {
	if !r.wal {
		return raftboltdb.NewBoltStore(filepath.Join(d, "raft.db"))
	}
	if err := os.MkdirAll(filepath.Join(d, "wal"), 0o755); err != nil {
		return nil, err
	}
	return wal.Open(filepath.Join(d, "wal")) // its Close closes the meta database too (v0.4.1)
}

// raftCounter is the trivial FSM: it counts the entries applied.
type raftCounter struct{ n uint64 }

func (f *raftCounter) Apply(*raft.Log) any { f.n++; return nil }

func (f *raftCounter) Snapshot() (raft.FSMSnapshot, error) { return counterSnap(f.n), nil }

func (f *raftCounter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.n = binary.BigEndian.Uint64(b[:])
	return nil
}

type counterSnap uint64

func (s counterSnap) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(s))); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (counterSnap) Release() {}

func (r *raftImpl) start(dir string) error {
	var servers []raft.Server
	for i := range r.nodes {
		rf, srv, err := r.startNode(dir, i)
		if err != nil {
			return err
		}
		r.rs = append(r.rs, rf)
		servers = append(servers, srv)
	}
	if err := r.rs[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return err
	}
	if err := waitFor(30*time.Second, func() bool { return r.leader() != nil }); err != nil {
		return fmt.Errorf("raft cluster did not elect a leader: %w", err)
	}
	r.target = r.leader()
	for i, rf := range r.rs {
		if rf == r.target {
			r.targetKV, _ = r.fsms[i].(*raftKV)
		}
	}
	return nil
}

func (r *raftImpl) useKV() { r.newFSM = func() raft.FSM { return &raftKV{} } }

// read is VerifyLeader on the leader, then a read of its map.
func (r *raftImpl) read(_ context.Context, key uint64) ([]byte, error) {
	if err := r.target.VerifyLeader().Error(); err != nil {
		return nil, err
	}
	return r.targetKV.get(key), nil
}

// startNode starts node i with fresh stores under dir.
func (r *raftImpl) startNode(dir string, i int) (*raft.Raft, raft.Server, error) {
	null := hclog.NewNullLogger()
	d := filepath.Join(dir, fmt.Sprintf("n%d", i))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, raft.Server{}, err
	}
	store, err := r.openLog(d)
	if err != nil {
		return nil, raft.Server{}, err
	}
	r.stores = append(r.stores, store)
	cache, err := raft.NewLogCache(512, store)
	if err != nil {
		return nil, raft.Server{}, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(d, 2, null)
	if err != nil {
		return nil, raft.Server{}, err
	}
	trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, null)
	if err != nil {
		return nil, raft.Server{}, err
	}
	r.trans = append(r.trans, trans)
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(fmt.Sprint(i))
	if !r.defaultTiming {
		conf.HeartbeatTimeout = 200 * time.Millisecond
		conf.ElectionTimeout = 200 * time.Millisecond
		conf.LeaderLeaseTimeout = 100 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
	}
	if r.trailingLogs != nil {
		conf.TrailingLogs = *r.trailingLogs
	}
	conf.Logger = null
	var fsm raft.FSM = &raftCounter{}
	if r.newFSM != nil {
		fsm = r.newFSM()
	}
	rf, err := raft.NewRaft(conf, fsm, cache, store, snaps, trans)
	if err != nil {
		return nil, raft.Server{}, err
	}
	r.fsms = append(r.fsms, fsm)
	return rf, raft.Server{ID: conf.LocalID, Address: trans.LocalAddr()}, nil
}

// addNode starts one more node and adds it as a voter on the leader.
func (r *raftImpl) addNode(dir string) error {
	var l *raft.Raft
	if err := waitFor(10*time.Second, func() bool { l = r.leader(); return l != nil }); err != nil {
		return errors.New("no leader")
	}
	rf, srv, err := r.startNode(dir, len(r.rs))
	if err != nil {
		return err
	}
	r.rs = append(r.rs, rf)
	return l.AddVoter(srv.ID, srv.Address, 0, 0).Error()
}

func (r *raftImpl) leader() *raft.Raft {
	for _, rf := range r.rs {
		if rf.State() == raft.Leader {
			return rf
		}
	}
	return nil
}

func (r *raftImpl) propose(_ context.Context, data []byte) error {
	return r.target.Apply(data, 0).Error()
}

func (r *raftImpl) stop() {
	for _, rf := range r.rs {
		rf.Shutdown().Error()
	}
	for _, t := range r.trans {
		t.Close()
	}
	for _, s := range r.stores {
		s.Close()
	}
}

// stopLeader calls Shutdown on the leader: raft does not hand leadership
// over, so for the followers it looks like a crash.
func (r *raftImpl) stopLeader() (string, error) {
	l := r.leader()
	if l == nil {
		return "", errors.New("no leader")
	}
	for i, rf := range r.rs {
		if rf == l {
			err := l.Shutdown().Error()
			r.trans[i].Close()
			how := "Shutdown() of the leader (no handover) + transport close"
			if r.defaultTiming {
				how += ", raft.DefaultConfig() timeouts"
			}
			return how, err
		}
	}
	return "", errors.New("leader not found")
}

// proposeSurvivor applies on whichever node is leader now; followers
// answer ErrNotLeader, so the caller retries.
func (r *raftImpl) proposeSurvivor(_ context.Context, data []byte) error {
	l := r.leader()
	if l == nil {
		return raft.ErrNotLeader
	}
	return l.Apply(data, 0).Error()
}

func (r *raftImpl) term() uint64 {
	t, _ := strconv.ParseUint(r.target.Stats()["term"], 10, 64)
	return t
}
