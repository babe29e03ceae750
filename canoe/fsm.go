package canoe

import "github.com/canoe-raft/canoe/adapter"

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
	Snapshot() (SnapshotData, error)

	// Restore replaces the whole state with a snapshot's: on restart from
	// DataDir and when a lagging node receives the leader's snapshot.
	Restore(SnapshotData) error
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
