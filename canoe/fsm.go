package canoe

import (
	"io"

	"github.com/canoe-raft/canoe/adapter"
)

// LogData is the data of one proposal: what Propose takes and FSM.Apply gets.
type LogData []byte

// SnapshotData is the whole state of an FSM, as FSM.Snapshot returns it and
// FSM.Restore takes it.
type SnapshotData []byte

// FSM is the replicated state machine a user implements. canoe calls its
// methods from one goroutine at a time, never concurrently.
type FSM interface {
	// Apply applies one committed proposal. It must be deterministic: every
	// node applies the same proposals in the same order and must reach the
	// same state and return the same error. An error is returned to the
	// proposer; the proposal still counts as applied and the cluster keeps
	// serving. Apply must not call the Node's blocking methods.
	Apply(LogData) error

	// Snapshot returns the whole state. Apply is not called while it runs,
	// so it should copy quickly; canoe writes the bytes out afterwards.
	// Not called for a StreamingFSM.
	Snapshot() (SnapshotData, error)

	// Restore replaces the whole state with a snapshot's: on restart from
	// DataDir and when a lagging node receives the leader's snapshot.
	// Not called for a StreamingFSM.
	Restore(SnapshotData) error
}

// StreamingFSM is optional on the user's FSM: snapshots as streams
// (hashicorp/raft's FSMSnapshot.Persist model), for states too large to
// copy into one []byte. When the FSM implements it, canoe calls these
// instead of Snapshot and Restore, and never holds the whole state in
// memory: taking a snapshot, installing one on a new or lagging node,
// restarting, Backup and RestoreBackup all stream.
//
// The bytes written are the FSM's own format, and the state canoe restores
// may come from a snapshot written by an earlier version of the program:
// RestoreStream must read what Snapshot (before the FSM streamed) or
// SnapshotStream ever wrote, or the format must carry its own version.
type StreamingFSM interface {
	// SnapshotStream captures the state and returns a function that
	// writes it. Apply is not called while SnapshotStream runs, so it must
	// return quickly: take what writing needs (a copy-on-write reference,
	// a version number, a read transaction), not a copy of the state.
	// canoe then calls the function, at most once and maybe not at all
	// (a snapshot abandoned), on another goroutine while later Applies go
	// on: it must write the state as it was when SnapshotStream ran, and
	// must not keep w after it returns. The functions of two snapshots may
	// run at the same time (Backup's while raft persists its own). An
	// error from either aborts the snapshot; canoe tries again later.
	SnapshotStream() (write func(w io.Writer) error, err error)

	// RestoreStream replaces the whole state with the one read from r,
	// which holds exactly what a write function wrote (r ends where the
	// state ends; canoe discards what RestoreStream leaves unread). It is
	// called on restart from DataDir, when a node installs the leader's
	// snapshot, and when a backup is restored. If it fails, the state it
	// leaves is the FSM's business: build the new state aside and swap it
	// in at the end, so that a damaged stream leaves the old one.
	RestoreStream(r io.Reader) error
}

// ResultFSM is an FSM whose Apply answers the proposer with a value: a
// compare-and-swap telling what it found, an increment returning the new
// value, a create returning the ID it chose. When the FSM implements it,
// canoe calls ApplyResult instead of Apply, and ProposeResult returns its
// value on the node that proposed (the leader or a follower: each answers
// from its own FSM, and since Apply is deterministic the answers agree).
// The same rules as Apply hold: deterministic, no blocking calls into the
// Node. The returned slice may be kept by canoe; do not change it after.
type ResultFSM interface {
	ApplyResult(LogData) ([]byte, error)
}

// fsmShim adapts a user FSM to adapter.FSM.
type fsmShim struct{ fsm FSM }

func (s fsmShim) Apply(b []byte) error      { return s.fsm.Apply(LogData(b)) }
func (s fsmShim) Snapshot() ([]byte, error) { return s.fsm.Snapshot() }
func (s fsmShim) Restore(b []byte) error    { return s.fsm.Restore(SnapshotData(b)) }

// resultShim is fsmShim for a ResultFSM: the adapter sees ApplyResult.
type resultShim struct {
	fsmShim
	r ResultFSM
}

func (s resultShim) ApplyResult(b []byte) ([]byte, error) { return s.r.ApplyResult(LogData(b)) }

// shimFor returns the adapter's view of fsm.
func shimFor(fsm FSM) adapter.FSM {
	if r, ok := fsm.(ResultFSM); ok {
		return resultShim{fsmShim{fsm}, r}
	}
	return fsmShim{fsm}
}

// streamShim adapts a user StreamingFSM to adapter.StreamingFSM.
type streamShim struct{ s StreamingFSM }

func (s streamShim) SnapshotStream() (func(io.Writer) error, error) { return s.s.SnapshotStream() }
func (s streamShim) RestoreStream(r io.Reader) error                { return s.s.RestoreStream(r) }

// streamFor returns the adapter's view of fsm as a StreamingFSM, nil if it
// is not one.
func streamFor(fsm FSM) adapter.StreamingFSM {
	if s, ok := fsm.(StreamingFSM); ok {
		return streamShim{s}
	}
	return nil
}
