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
)

// raftImpl is raw hashicorp/raft: raft-boltdb/v2 behind a 512-entry log
// cache, FileSnapshotStore, NetworkTransport over TCP, a counter FSM, the
// default config with canoe's LocalProfile timeouts, proposals with
// Apply(...).Error() on the leader.
type raftImpl struct {
	nodes  int
	rs     []*raft.Raft
	bolts  []*raftboltdb.BoltStore
	trans  []*raft.NetworkTransport
	target *raft.Raft
}

func (r *raftImpl) name() string { return "raft" }

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
	null := hclog.NewNullLogger()
	var servers []raft.Server
	for i := range r.nodes {
		d := filepath.Join(dir, fmt.Sprintf("n%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		bolt, err := raftboltdb.NewBoltStore(filepath.Join(d, "raft.db"))
		if err != nil {
			return err
		}
		r.bolts = append(r.bolts, bolt)
		cache, err := raft.NewLogCache(512, bolt)
		if err != nil {
			return err
		}
		snaps, err := raft.NewFileSnapshotStoreWithLogger(d, 2, null)
		if err != nil {
			return err
		}
		trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 10*time.Second, null)
		if err != nil {
			return err
		}
		r.trans = append(r.trans, trans)
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(fmt.Sprint(i))
		conf.HeartbeatTimeout = 200 * time.Millisecond
		conf.ElectionTimeout = 200 * time.Millisecond
		conf.LeaderLeaseTimeout = 100 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
		conf.Logger = null
		rf, err := raft.NewRaft(conf, &raftCounter{}, cache, bolt, snaps, trans)
		if err != nil {
			return err
		}
		r.rs = append(r.rs, rf)
		servers = append(servers, raft.Server{ID: conf.LocalID, Address: trans.LocalAddr()})
	}
	if err := r.rs[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return err
	}
	if err := waitFor(30*time.Second, func() bool { return r.leader() != nil }); err != nil {
		return fmt.Errorf("raft cluster did not elect a leader: %w", err)
	}
	r.target = r.leader()
	return nil
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
	for _, b := range r.bolts {
		b.Close()
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
			return "Shutdown() of the leader (no handover) + transport close", err
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
