package observer

import (
	"strconv"
	"time"
)

// Observation is a single event delivered to observers. Its dynamic type is
// always one of the event structs declared in this package, delivered by
// value; use a type switch to handle it.
type Observation any

// State is the raft role of a node.
type State int

// The raft roles a node moves between. Shutdown is terminal.
const (
	Follower State = iota
	Candidate
	Leader
	Shutdown
)

// String returns the lower-case name of the state ("follower", "candidate",
// "leader", "shutdown"), or "state(N)" for a value outside the constants.
func (s State) String() string {
	switch s {
	case Follower:
		return "follower"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	case Shutdown:
		return "shutdown"
	default:
		return "state(" + strconv.Itoa(int(s)) + ")"
	}
}

// LeaderChanged is emitted on every node when the leader it knows of changes:
// a new leader is elected or discovered, or the node loses track of the
// leader. LeaderID is 0 when no leader is known. Term is the node's raft
// term when the event was delivered: raft does not report the term of the
// change itself, so after quick successive elections it may be newer than
// the term LeaderID was elected in.
type LeaderChanged struct {
	LeaderID uint64
	Term     uint64
}

// StateChanged is emitted on every node when its own raft role changes, for
// example Follower to Candidate, Candidate to Leader, or any state to
// Shutdown. From and To always differ.
type StateChanged struct {
	From State
	To   State
}

// PeerAdded is emitted on every node when it applies a committed cluster
// configuration that holds a new server (a restarted node reports the
// membership history again as it replays its log). Voter reports whether it
// joined as a voter (true) or as a non-voter that receives the log but does
// not vote (false).
type PeerAdded struct {
	ID    uint64
	Voter bool
}

// PeerRemoved is emitted on every node when it applies a committed cluster
// configuration without a server the previous one held.
type PeerRemoved struct {
	ID uint64
}

// PeerPromoted is emitted on every node when it applies a committed cluster
// configuration in which a non-voter became a voter.
type PeerPromoted struct {
	ID uint64
}

// SnapshotTaken is emitted on a node after it has persisted a snapshot of its
// state machine. Index and Term are those of the last log entry the snapshot
// covers; log entries up to Index may be truncated afterwards.
type SnapshotTaken struct {
	Index uint64
	Term  uint64
}

// SnapshotRestored is emitted on a node after its state machine has been
// replaced by a snapshot, either at startup or when the leader installed one
// because the node was too far behind. Index and Term are those of the last
// log entry the snapshot covers.
type SnapshotRestored struct {
	Index uint64
	Term  uint64
}

// EntryApplied is emitted on every node after its state machine has applied
// the raft log entry at Index. Count is the number of proposals batched in
// that entry (at least 1 for a command entry).
type EntryApplied struct {
	Index uint64
	Count int
}

// HeartbeatFailed is emitted on the leader when heartbeats to the peer ID
// start failing. LastContact is the last time the leader heard from the peer
// (the zero Time if never).
type HeartbeatFailed struct {
	ID          uint64
	LastContact time.Time
}

// HeartbeatResumed is emitted on the leader when heartbeats to the peer ID
// succeed again after a HeartbeatFailed.
type HeartbeatResumed struct {
	ID uint64
}
