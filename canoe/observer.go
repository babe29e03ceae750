package canoe

import (
	"strconv"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/observer"
)

// Observation is an event a node reports to its observers: one of the
// types below (LeaderChanged, StateChanged, PeerAdded, ...).
type Observation = observer.Observation

// FilterFn selects the observations an Observer receives. It runs on canoe's
// goroutines: keep it fast and non-blocking.
type FilterFn = observer.FilterFn

// Observer delivers observations to a channel without ever blocking the
// node: when the channel is full the observation is dropped and counted
// (see Observer.Dropped).
type Observer = observer.Observer

// The observations a node reports.
type (
	LeaderChanged    = observer.LeaderChanged
	StateChanged     = observer.StateChanged
	PeerAdded        = observer.PeerAdded
	PeerRemoved      = observer.PeerRemoved
	PeerPromoted     = observer.PeerPromoted
	SnapshotTaken    = observer.SnapshotTaken
	SnapshotRestored = observer.SnapshotRestored
	EntryApplied     = observer.EntryApplied
	HeartbeatFailed  = observer.HeartbeatFailed
	HeartbeatResumed = observer.HeartbeatResumed
	State            = observer.State
)

// The raft roles a node moves between (Status.State, StateChanged).
const (
	Follower  = observer.Follower
	Candidate = observer.Candidate
	Leader    = observer.Leader
	Shutdown  = observer.Shutdown
)

// NewObserver returns an observer that sends the observations filter accepts
// (all of them if filter is nil) to ch. Give ch a buffer.
func NewObserver(ch chan Observation, filter FilterFn) *Observer {
	return observer.New(ch, filter)
}

// RegisterObserver starts delivering observations to o.
func (n *Node) RegisterObserver(o *Observer) { n.observers.Register(o) }

// UnregisterObserver stops delivering observations to o.
func (n *Node) UnregisterObserver(o *Observer) { n.observers.Unregister(o) }

// observe is the observation goroutine: it turns raft's observations into
// canoe's, fans them out to the registered observers (never blocking), and
// wakes whatever waits for a leader.
func (n *Node) observe(rt *run, ch <-chan raft.Observation) {
	for {
		select {
		case o := <-ch:
			n.handleObservation(rt, o)
		case <-rt.ctx.Done():
			return
		}
	}
}

func (n *Node) handleObservation(rt *run, o raft.Observation) {
	ev, ok := n.translator.Translate(o)
	if ok {
		n.observers.Notify(ev)
	}
	switch ev := ev.(type) {
	case observer.LeaderChanged:
		n.leaderBC.fire()
		n.metrics.leaderChanges.Inc()
		if ev.LeaderID == 0 {
			n.logger.Info("no leader", "term", ev.Term)
		} else {
			n.logger.Info("leader changed", "leader", strconv.FormatUint(ev.LeaderID, 10), "term", ev.Term)
		}
		kick(rt)
	case observer.StateChanged:
		if ev.To == observer.Leader {
			rt.trans.Reset() // what followers acknowledged to an earlier term may be gone
		}
		if ev.To == observer.Shutdown || ev.To == observer.Leader {
			kick(rt)
		}
	}
}
