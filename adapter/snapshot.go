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

// Snapshot formats. Every snapshot canoe writes starts with a 4-byte magic
// whose last byte is the format version, then the applied index and term,
// canoe's Membership (uvarint length, JSON), and then the user's state,
// which runs to the end of the snapshot: no length is needed up front, so
// a StreamingFSM's state streams through.
//
//	v1: "CNS\x01", uvarint index, uvarint term, uvarint n, n bytes JSON, state
//	v2: "CNS\x02", 8-byte big-endian index, 8-byte big-endian term, uvarint n, n bytes JSON, state
//
// Ordinary snapshots are v1, so that nodes of earlier releases still read
// them. v2 differs only in the fixed width of index and term: a restore
// of a backup (NewRestoreReader) states its size before raft picks the
// index it will have.
var (
	snapshotMagicV1 = [4]byte{'C', 'N', 'S', 1}
	snapshotMagicV2 = [4]byte{'C', 'N', 'S', 2}
)

// maxMembershipBytes bounds the Membership JSON a snapshot header may hold.
const maxMembershipBytes = 64 << 20

// ErrBadSnapshot reports a snapshot canoe cannot read.
var ErrBadSnapshot = errors.New("adapter: bad snapshot")

// Membership is what canoe itself keeps in a snapshot beside the user's
// state: the members' addresses, the members removed on purpose, and the
// servers of the last applied configuration. JSON: it is small and read
// rarely.
type Membership struct {
	Peers   []PeerMeta `json:"peers"`
	Removed []uint64   `json:"removed,omitempty"`
	Servers []Server   `json:"servers"`
}

// Server is one server of a configuration.
type Server struct {
	ID    uint64 `json:"id"`
	Voter bool   `json:"voter"`
}

// Membership returns canoe's current membership state, sorted by ID.
func (a *Adapter) Membership() Membership {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.membershipLocked()
}

func (a *Adapter) membershipLocked() Membership {
	m := Membership{Peers: make([]PeerMeta, 0, len(a.peers)), Servers: make([]Server, 0, len(a.servers))}
	for _, p := range a.peers {
		m.Peers = append(m.Peers, p)
	}
	for id := range a.removed {
		m.Removed = append(m.Removed, id)
	}
	for id, s := range a.servers {
		m.Servers = append(m.Servers, Server{ID: id, Voter: s == raft.Voter})
	}
	sort.Slice(m.Peers, func(i, j int) bool { return m.Peers[i].ID < m.Peers[j].ID })
	sort.Slice(m.Removed, func(i, j int) bool { return m.Removed[i] < m.Removed[j] })
	sort.Slice(m.Servers, func(i, j int) bool { return m.Servers[i].ID < m.Servers[j].ID })
	return m
}

// Snapshot implements raft.FSM. It runs on raft's FSM goroutine (Apply and
// ReplayCommitted wait meanwhile): it takes the user's state, or for a
// StreamingFSM the function that will write it, and canoe's, and leaves
// writing to Persist, which runs concurrently with later Applies.
func (a *Adapter) Snapshot() (raft.FSMSnapshot, error) {
	return a.capture()
}

func (a *Adapter) capture() (*fsmSnapshot, error) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	s := &fsmSnapshot{a: a, index: a.applied.Load()}
	var err error
	if a.stream != nil {
		s.write, err = userSnapshotStream(a.stream)
	} else {
		s.data, err = userSnapshot(a.fsm)
	}
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	s.membership = a.membershipLocked()
	s.term = a.lastTerm
	a.mu.Unlock()
	return s, nil
}

// WriteState captures the state as Snapshot does, outside raft (for a
// backup), and writes the user's state to w, streamed for a StreamingFSM;
// canoe's header is not written. It returns the header the state goes
// with (Version and Len are 0). Apply waits only while the state is
// captured.
func (a *Adapter) WriteState(w io.Writer) (SnapshotHeader, error) {
	s, err := a.capture()
	if err != nil {
		return SnapshotHeader{}, err
	}
	if err := s.writeState(w); err != nil {
		return SnapshotHeader{}, err
	}
	return SnapshotHeader{Index: s.index, Term: s.term, Membership: s.membership}, nil
}

type fsmSnapshot struct {
	a           *Adapter
	index, term uint64
	membership  Membership
	data        []byte                // a []byte FSM's state
	write       func(io.Writer) error // a StreamingFSM's writer
}

// Persist writes the snapshot (format v1): canoe's header, then the user's
// state, streamed for a StreamingFSM.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshotHeader(sink, s.index, s.term, s.membership); err != nil {
		sink.Cancel()
		return err
	}
	if err := s.writeState(sink); err != nil {
		sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("canoe: close snapshot: %w", err)
	}
	if s.a.notify != nil {
		s.a.notify.Notify(observer.SnapshotTaken{Index: s.index, Term: s.term})
	}
	return nil
}

// writeState writes the user's state.
func (s *fsmSnapshot) writeState(w io.Writer) error {
	if s.write != nil {
		return runSnapshotWriter(s.write, w)
	}
	if _, err := w.Write(s.data); err != nil {
		return fmt.Errorf("canoe: write snapshot: %w", err)
	}
	return nil
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// WriteSnapshotHeader writes canoe's snapshot header (format v1) to w: the
// user's state is to follow, up to the end of the snapshot.
func WriteSnapshotHeader(w io.Writer, index, term uint64, m Membership) error {
	meta, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("canoe: encode snapshot membership: %w", err)
	}
	hdr := append([]byte(nil), snapshotMagicV1[:]...)
	hdr = binary.AppendUvarint(hdr, index)
	hdr = binary.AppendUvarint(hdr, term)
	hdr = binary.AppendUvarint(hdr, uint64(len(meta)))
	hdr = append(hdr, meta...)
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("canoe: write snapshot: %w", err)
	}
	return nil
}

// Restore implements raft.FSM: it replaces the user's state and canoe's with
// the snapshot's, streaming the state into a StreamingFSM. Raft calls it on
// its FSM goroutine (and in NewRaft); it never runs concurrently with Apply
// or ReplayCommitted.
func (a *Adapter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	br := bufio.NewReaderSize(rc, 64<<10)
	h, err := ReadSnapshotHeader(br)
	if err != nil {
		return err
	}
	if a.stream != nil {
		err = userRestoreStream(a.stream, br)
	} else {
		var data []byte
		if data, err = io.ReadAll(br); err != nil {
			return fmt.Errorf("%w: data: %v", ErrBadSnapshot, err)
		}
		err = userRestore(a.fsm, data)
	}
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.removed = make(map[uint64]bool, len(h.Membership.Removed))
	for _, id := range h.Membership.Removed {
		a.removed[id] = true
	}
	a.peers = make(map[uint64]PeerMeta, len(h.Membership.Peers))
	for _, m := range h.Membership.Peers {
		a.peers[m.ID] = m
	}
	a.servers = make(map[uint64]raft.ServerSuffrage, len(h.Membership.Servers))
	for _, s := range h.Membership.Servers {
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		a.servers[s.ID] = suffrage
	}
	a.configAt = h.Index // the snapshot's configuration is in effect at its index
	a.lastTerm = h.Term
	a.applied.Store(h.Index)
	close(a.advanced)
	a.advanced = make(chan struct{})
	a.mu.Unlock()
	if a.restored != nil {
		a.restored(h.Index)
	}
	if a.notify != nil {
		a.notify.Notify(observer.SnapshotRestored{Index: h.Index, Term: h.Term})
	}
	return nil
}

// SnapshotHeader is what precedes the user's state in a snapshot.
type SnapshotHeader struct {
	Version    int    // format version, 1 or 2
	Index      uint64 // the last log index whose effects the state holds
	Term       uint64 // the term of that entry
	Membership Membership
	Len        int64 // bytes the header takes
}

// ReadSnapshotHeader reads canoe's snapshot header (either format) from r,
// which is left at the first byte of the user's state. Its errors match
// ErrBadSnapshot.
func ReadSnapshotHeader(r *bufio.Reader) (SnapshotHeader, error) {
	cr := &countingByteReader{r: r}
	h, err := readSnapshotHeader(cr)
	h.Len = cr.n
	return h, err
}

func readSnapshotHeader(r *countingByteReader) (h SnapshotHeader, err error) {
	var magic [4]byte
	if _, err = io.ReadFull(r, magic[:]); err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	switch magic {
	case snapshotMagicV1:
		h.Version = 1
		if h.Index, err = binary.ReadUvarint(r); err != nil {
			return h, fmt.Errorf("%w: index: %v", ErrBadSnapshot, err)
		}
		if h.Term, err = binary.ReadUvarint(r); err != nil {
			return h, fmt.Errorf("%w: term: %v", ErrBadSnapshot, err)
		}
	case snapshotMagicV2:
		h.Version = 2
		var fixed [16]byte
		if _, err = io.ReadFull(r, fixed[:]); err != nil {
			return h, fmt.Errorf("%w: index and term: %v", ErrBadSnapshot, err)
		}
		h.Index, h.Term = binary.BigEndian.Uint64(fixed[:8]), binary.BigEndian.Uint64(fixed[8:])
	default:
		return h, fmt.Errorf("%w: unknown format %q", ErrBadSnapshot, magic[:])
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > maxMembershipBytes {
		return h, fmt.Errorf("%w: membership length", ErrBadSnapshot)
	}
	meta := make([]byte, n)
	if _, err = io.ReadFull(r, meta); err != nil {
		return h, fmt.Errorf("%w: membership: %v", ErrBadSnapshot, err)
	}
	if err = json.Unmarshal(meta, &h.Membership); err != nil {
		return h, fmt.Errorf("%w: membership: %v", ErrBadSnapshot, err)
	}
	return h, nil
}

// countingByteReader counts the bytes read through it.
type countingByteReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingByteReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingByteReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// NewRestoreReader returns a snapshot (format v2) that holds m and the
// user's state read from state, exactly stateSize bytes, and its size in
// bytes: what raft.Raft.Restore takes to restore a backup. Raft picks the
// index of that snapshot only once it has started reading it; position is
// called at the first Read, on the goroutine that reads, and returns the
// index and term to record (see Restore: the FSM's applied index becomes
// that index). state must return io.EOF (or an error) after stateSize
// bytes.
func NewRestoreReader(m Membership, state io.Reader, stateSize int64, position func() (index, term uint64)) (io.Reader, int64, error) {
	meta, err := json.Marshal(m)
	if err != nil {
		return nil, 0, fmt.Errorf("canoe: encode snapshot membership: %w", err)
	}
	hdr := append([]byte(nil), snapshotMagicV2[:]...)
	hdr = append(hdr, make([]byte, 16)...) // index and term: filled at the first Read
	hdr = binary.AppendUvarint(hdr, uint64(len(meta)))
	hdr = append(hdr, meta...)
	r := &restoreReader{hdr: hdr, state: state, position: position}
	return r, int64(len(hdr)) + stateSize, nil
}

// restoreReader is the snapshot NewRestoreReader returns. It implements
// only Read, so that io.Copy reads it (and calls position) on the copying
// goroutine.
type restoreReader struct {
	hdr      []byte // unread header bytes
	started  bool
	state    io.Reader
	position func() (index, term uint64)
}

func (r *restoreReader) Read(p []byte) (int, error) {
	if !r.started {
		r.started = true
		index, term := r.position()
		binary.BigEndian.PutUint64(r.hdr[4:12], index)
		binary.BigEndian.PutUint64(r.hdr[12:20], term)
	}
	if len(r.hdr) > 0 {
		n := copy(p, r.hdr)
		r.hdr = r.hdr[n:]
		return n, nil
	}
	return r.state.Read(p)
}

// userSnapshot, userSnapshotStream, runSnapshotWriter, userRestore and
// userRestoreStream call the user's FSM, turning its errors and panics
// into errors that say which method failed.
func userSnapshot(f FSM) (data []byte, err error) {
	defer recoverInto(&err, "FSM.Snapshot")
	if data, err = f.Snapshot(); err != nil {
		return nil, fmt.Errorf("canoe: FSM.Snapshot: %w", err)
	}
	return data, nil
}

func userSnapshotStream(f StreamingFSM) (write func(io.Writer) error, err error) {
	defer recoverInto(&err, "FSM.SnapshotStream")
	if write, err = f.SnapshotStream(); err != nil {
		return nil, fmt.Errorf("canoe: FSM.SnapshotStream: %w", err)
	}
	if write == nil {
		return nil, errors.New("canoe: FSM.SnapshotStream returned a nil function and no error")
	}
	return write, nil
}

func runSnapshotWriter(write func(io.Writer) error, w io.Writer) (err error) {
	defer recoverInto(&err, "the function FSM.SnapshotStream returned")
	if err := write(w); err != nil {
		return fmt.Errorf("canoe: writing the FSM's snapshot: %w", err)
	}
	return nil
}

func userRestore(f FSM, data []byte) (err error) {
	defer recoverInto(&err, "FSM.Restore")
	if err := f.Restore(data); err != nil {
		return fmt.Errorf("canoe: FSM.Restore: %w", err)
	}
	return nil
}

func userRestoreStream(f StreamingFSM, r io.Reader) (err error) {
	defer recoverInto(&err, "FSM.RestoreStream")
	if err := f.RestoreStream(r); err != nil {
		return fmt.Errorf("canoe: FSM.RestoreStream: %w", err)
	}
	return nil
}

func recoverInto(err *error, what string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("canoe: %s panicked: %v", what, p)
	}
}
