package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/canoe"
)

// The snapshot measurement builds a large state (256 MiB by default) with
// one "grow" entry, makes the cluster snapshot it and drop its log, and
// times a new node from its start until its FSM holds the whole state:
// the state can only reach it as a snapshot install.

// blob is the state: a byte slice grown by entries that carry the size to
// grow to (8 bytes, big endian); the bytes are a fixed pattern.
type blob struct {
	mu       sync.Mutex // guards b
	b        []byte
	ready    atomic.Int64 // len(b), for polling
	restores atomic.Int64
}

func (f *blob) grow(data []byte) error {
	if len(data) != 8 {
		return nil // ordinary entries leave the state alone
	}
	size := int(binary.BigEndian.Uint64(data))
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := len(f.b); size > old {
		// Only the new bytes: a snapshot may still be reading the old ones.
		f.b = slices.Grow(f.b, size-old)[:size]
		for i := old; i < size; i++ {
			f.b[i] = byte(i * 31)
		}
	}
	f.ready.Store(int64(len(f.b)))
	return nil
}

func (f *blob) snapshot() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.b // Apply only appends: the prefix never changes
}

func (f *blob) restore(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.b = b
	f.ready.Store(int64(len(b)))
	f.restores.Add(1)
}

// canoeBlob adapts blob to canoe.FSM.
type canoeBlob struct{ blob }

func (f *canoeBlob) Apply(d canoe.LogData) error           { return f.grow(d) }
func (f *canoeBlob) Snapshot() (canoe.SnapshotData, error) { return f.snapshot(), nil }
func (f *canoeBlob) Restore(s canoe.SnapshotData) error    { f.restore(s); return nil }

// raftBlob adapts blob to raft.FSM.
type raftBlob struct{ blob }

func (f *raftBlob) Apply(l *raft.Log) any { return f.grow(l.Data) }

func (f *raftBlob) Snapshot() (raft.FSMSnapshot, error) { return blobSnap(f.snapshot()), nil }

func (f *raftBlob) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	f.restore(b)
	return nil
}

type blobSnap []byte

func (s blobSnap) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (blobSnap) Release() {}

func growEntry(size int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(size)) }

// runSnapshotInstall measures a snapshot install of sp.Payload bytes.
func runSnapshotInstall(im impl, sp spec, r *result) error {
	switch c := im.(type) {
	case *canoeImpl:
		return canoeSnapshotInstall(c, sp, r)
	case *raftImpl:
		return raftSnapshotInstall(c, sp, r)
	}
	return fmt.Errorf("snapshot install is measured for canoe and raft, not %s", sp.Impl)
}

// snapThreshold is canoe's MinCommittedLogs in the snapshot measurement:
// reached by the state and the filler entries, not by the membership
// entries of the join. The log keeps that many entries behind a snapshot,
// all after the one that built the state.
const snapThreshold = 100

func canoeSnapshotInstall(c *canoeImpl, sp spec, r *result) error {
	// Bolt: raft-wal keeps the entries a snapshot compacted readable until
	// their whole 64 MiB segment goes, and the new node would replay the
	// log (the grow entry) instead of installing the snapshot.
	c.store = canoe.LogStoreBolt
	fsms := map[*canoe.Node]*canoeBlob{}
	c.configure = func(cfg *canoe.NodeConfig) {
		f := &canoeBlob{}
		cfg.FSM = f
		// Snapshot once snapThreshold entries are committed (the state and
		// the filler below), and not again for the few entries the join adds.
		cfg.SnapshotConfig = &canoe.SnapshotConfig{Interval: 50 * time.Millisecond, MinCommittedLogs: snapThreshold, MaxRetainedSnapshots: 1}
	}
	c.started = func(n *canoe.Node, cfg *canoe.NodeConfig) { fsms[n] = cfg.FSM.(*canoeBlob) }
	if err := c.start(sp.Dir); err != nil {
		c.stop()
		return fmt.Errorf("start: %w", err)
	}
	defer c.stop()
	l := c.leader()
	if err := buildAndSnapshot(c, l, sp.Payload, r); err != nil {
		return err
	}
	if err := joinAndInstall(c, sp, func(n *canoe.Node) *blob { return &fsms[n].blob }, r); err != nil {
		return err
	}
	r.How = "NewNode+Start joining by URL until its FSM holds the state (canoe snapshots automatically: MinCommittedLogs 100, 100 filler entries; Bolt log)"
	return nil
}

// buildAndSnapshot grows the state of leader l to payload bytes with one
// entry, commits the filler entries that make a snapshot due, and waits
// for the leader's snapshot of the whole state on disk. It records the
// build time and the time from the last filler to the snapshot.
func buildAndSnapshot(c *canoeImpl, l *canoe.Node, payload int, r *result) error {
	t0 := time.Now()
	if err := l.Propose(growEntry(payload)); err != nil {
		return err
	}
	r.BuildMs = msSince(t0)
	for range snapThreshold {
		if err := l.Propose([]byte("filler")); err != nil {
			return err
		}
	}
	t1 := time.Now()
	snaps := filepath.Join(c.dirs[l], "snapshots")
	if err := waitFor(30*time.Minute, func() bool { return hasSnapshot(snaps, payload) }); err != nil {
		return fmt.Errorf("no snapshot of the state in %s: %w", snaps, err)
	}
	r.SnapshotMs = msSince(t1)
	return nil
}

// readyFSM is what joinAndInstall watches on the new node.
type readyFSM interface {
	readyBytes() int64
	restored() int64
}

func (f *blob) readyBytes() int64  { return f.ready.Load() }
func (f *blob) restored() int64    { return f.restores.Load() }
func (f *vblob) readyBytes() int64 { return f.ready.Load() }
func (f *vblob) restored() int64   { return f.restores.Load() }

// joinAndInstall starts a new node that joins through the leader, waits
// until its FSM (fsm returns it) holds the whole state, records the time
// from NewNode, and fails if the state came by replaying the log rather
// than by installing the snapshot.
func joinAndInstall[F readyFSM](c *canoeImpl, sp spec, fsm func(*canoe.Node) F, r *result) error {
	t0 := time.Now()
	n, err := c.join(sp.Dir)
	if err != nil {
		return err
	}
	f := fsm(n)
	if err := waitFor(30*time.Minute, func() bool { return f.readyBytes() == int64(sp.Payload) }); err != nil {
		return fmt.Errorf("the new node never held the state: %w", err)
	}
	r.InstallMs = msSince(t0)
	if f.restored() == 0 {
		return errors.New("the new node replayed the log instead of installing the snapshot")
	}
	return nil
}

// hasSnapshot reports whether dir holds a finished snapshot of at least
// size bytes (FileSnapshotStore: <dir>/<name>/state.bin, .tmp while
// being written).
func hasSnapshot(dir string, size int) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !e.IsDir() || filepath.Ext(e.Name()) == ".tmp" {
			continue
		}
		st, err := os.Stat(filepath.Join(dir, e.Name(), "state.bin"))
		if err == nil && st.Size() >= int64(size) {
			return true
		}
	}
	return false
}

func raftSnapshotInstall(ri *raftImpl, sp spec, r *result) error {
	ri.trailingLogs = new(uint64) // compact the whole log at a snapshot
	var fsms []*raftBlob
	ri.newFSM = func() raft.FSM {
		f := &raftBlob{}
		fsms = append(fsms, f)
		return f
	}
	if err := ri.start(sp.Dir); err != nil {
		ri.stop()
		return fmt.Errorf("start: %w", err)
	}
	defer ri.stop()
	l := ri.leader()
	t0 := time.Now()
	if err := l.Apply(growEntry(sp.Payload), 0).Error(); err != nil {
		return err
	}
	r.BuildMs = msSince(t0)
	t1 := time.Now()
	if err := l.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	r.SnapshotMs = msSince(t1)
	t2 := time.Now()
	if err := ri.addNode(sp.Dir); err != nil {
		return err
	}
	f := fsms[len(fsms)-1]
	if err := waitFor(5*time.Minute, func() bool { return f.ready.Load() == int64(sp.Payload) }); err != nil {
		return errors.New("the new node never held the state")
	}
	r.InstallMs = msSince(t2)
	r.How = "new raft node + AddVoter on the leader until its FSM holds the state (after leader.Snapshot(), TrailingLogs 0)"
	return nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1e3 }
