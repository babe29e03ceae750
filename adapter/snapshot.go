package adapter

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/observer"
)

// snapshotMagic opens every snapshot canoe writes; the last byte is the
// format version.
var snapshotMagic = [4]byte{'C', 'N', 'S', 1}

// ErrBadSnapshot reports a snapshot canoe cannot read.
var ErrBadSnapshot = errors.New("adapter: bad snapshot")

// snapshotState is what canoe itself keeps in a snapshot beside the user's
// state. JSON: it is small and read rarely.
type snapshotState struct {
	Peers   []PeerMeta       `json:"peers"`
	Removed []uint64         `json:"removed,omitempty"`
	Servers []snapshotServer `json:"servers"`
}

type snapshotServer struct {
	ID    uint64 `json:"id"`
	Voter bool   `json:"voter"`
}

// Snapshot implements raft.FSM. It runs on raft's FSM goroutine (Apply and
// ReplayCommitted wait meanwhile): it takes the user's state and canoe's, and leaves writing to
// Persist, which runs concurrently with later Applies.
func (a *Adapter) Snapshot() (raft.FSMSnapshot, error) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	data, err := a.fsm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("canoe: FSM.Snapshot: %w", err)
	}
	a.mu.Lock()
	st := snapshotState{Peers: make([]PeerMeta, 0, len(a.peers)), Servers: make([]snapshotServer, 0, len(a.servers))}
	for _, m := range a.peers {
		st.Peers = append(st.Peers, m)
	}
	for id := range a.removed {
		st.Removed = append(st.Removed, id)
	}
	for id, s := range a.servers {
		st.Servers = append(st.Servers, snapshotServer{ID: id, Voter: s == raft.Voter})
	}
	term := a.lastTerm
	a.mu.Unlock()
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].ID < st.Peers[j].ID })
	sort.Slice(st.Removed, func(i, j int) bool { return st.Removed[i] < st.Removed[j] })
	sort.Slice(st.Servers, func(i, j int) bool { return st.Servers[i].ID < st.Servers[j].ID })
	return &fsmSnapshot{a: a, index: a.applied.Load(), term: term, state: st, data: data}, nil
}

type fsmSnapshot struct {
	a           *Adapter
	index, term uint64
	state       snapshotState
	data        []byte
}

// Persist writes the snapshot: magic, applied index, term, canoe's state and
// the user's bytes.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	meta, err := json.Marshal(s.state)
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("canoe: encode snapshot state: %w", err)
	}
	hdr := append([]byte(nil), snapshotMagic[:]...)
	hdr = binary.AppendUvarint(hdr, s.index)
	hdr = binary.AppendUvarint(hdr, s.term)
	hdr = binary.AppendUvarint(hdr, uint64(len(meta)))
	hdr = append(hdr, meta...)
	for _, b := range [][]byte{hdr, s.data} {
		if _, err := sink.Write(b); err != nil {
			sink.Cancel()
			return fmt.Errorf("canoe: write snapshot: %w", err)
		}
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("canoe: close snapshot: %w", err)
	}
	if s.a.notify != nil {
		s.a.notify.Notify(observer.SnapshotTaken{Index: s.index, Term: s.term})
	}
	return nil
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// Restore implements raft.FSM: it replaces the user's state and canoe's with
// the snapshot's. Raft calls it on its FSM goroutine (and in NewRaft); it
// never runs concurrently with Apply or ReplayCommitted.
func (a *Adapter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	index, term, st, data, err := readSnapshot(bufio.NewReader(rc))
	if err != nil {
		return err
	}
	if err := a.fsm.Restore(data); err != nil {
		return fmt.Errorf("canoe: FSM.Restore: %w", err)
	}
	a.mu.Lock()
	a.removed = make(map[uint64]bool, len(st.Removed))
	for _, id := range st.Removed {
		a.removed[id] = true
	}
	a.peers = make(map[uint64]PeerMeta, len(st.Peers))
	for _, m := range st.Peers {
		a.peers[m.ID] = m
	}
	a.servers = make(map[uint64]raft.ServerSuffrage, len(st.Servers))
	for _, s := range st.Servers {
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		a.servers[s.ID] = suffrage
	}
	a.configAt = index // the snapshot's configuration is in effect at its index
	a.lastTerm = term
	a.applied.Store(index)
	close(a.advanced)
	a.advanced = make(chan struct{})
	a.mu.Unlock()
	if a.restored != nil {
		a.restored(index)
	}
	if a.notify != nil {
		a.notify.Notify(observer.SnapshotRestored{Index: index, Term: term})
	}
	return nil
}

func readSnapshot(r *bufio.Reader) (index, term uint64, st snapshotState, data []byte, err error) {
	var magic [4]byte
	if _, err = io.ReadFull(r, magic[:]); err != nil {
		return 0, 0, st, nil, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if magic != snapshotMagic {
		return 0, 0, st, nil, fmt.Errorf("%w: unknown format %q", ErrBadSnapshot, magic[:])
	}
	if index, err = binary.ReadUvarint(r); err != nil {
		return 0, 0, st, nil, fmt.Errorf("%w: index: %v", ErrBadSnapshot, err)
	}
	if term, err = binary.ReadUvarint(r); err != nil {
		return 0, 0, st, nil, fmt.Errorf("%w: term: %v", ErrBadSnapshot, err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 64<<20 {
		return 0, 0, st, nil, fmt.Errorf("%w: state length", ErrBadSnapshot)
	}
	meta := make([]byte, n)
	if _, err = io.ReadFull(r, meta); err != nil {
		return 0, 0, st, nil, fmt.Errorf("%w: state: %v", ErrBadSnapshot, err)
	}
	if err = json.Unmarshal(meta, &st); err != nil {
		return 0, 0, st, nil, fmt.Errorf("%w: state: %v", ErrBadSnapshot, err)
	}
	if data, err = io.ReadAll(r); err != nil {
		return 0, 0, st, nil, fmt.Errorf("%w: data: %v", ErrBadSnapshot, err)
	}
	return index, term, st, data, nil
}
