package adapter

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/observer"
)

// ServerID is the raft server ID of canoe node id: its decimal form.
func ServerID(id uint64) raft.ServerID {
	return raft.ServerID(strconv.FormatUint(id, 10))
}

// ParseServerID returns the canoe node ID behind a raft server ID.
func ParseServerID(s raft.ServerID) (uint64, error) {
	id, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("adapter: %q is not a canoe server id", s)
	}
	return id, nil
}

// Translator turns raft observations into canoe observations. Raft's
// PeerObservation is not translated: peers are reported from the applied
// configuration instead, on every node rather than only on the leader.
type Translator struct {
	mu   sync.Mutex // guards last
	last observer.State
}

// Translate returns the canoe observation for o, or false if there is none.
func (t *Translator) Translate(o raft.Observation) (observer.Observation, bool) {
	switch d := o.Data.(type) {
	case raft.LeaderObservation:
		id, _ := ParseServerID(d.LeaderID) // no leader: 0
		var term uint64
		if o.Raft != nil {
			term = o.Raft.CurrentTerm()
		}
		return observer.LeaderChanged{LeaderID: id, Term: term}, true
	case raft.RaftState:
		to := State(d)
		t.mu.Lock()
		from := t.last
		t.last = to
		t.mu.Unlock()
		return observer.StateChanged{From: from, To: to}, true
	case raft.FailedHeartbeatObservation:
		id, err := ParseServerID(d.PeerID)
		if err != nil {
			return nil, false
		}
		return observer.HeartbeatFailed{ID: id, LastContact: d.LastContact}, true
	case raft.ResumedHeartbeatObservation:
		id, err := ParseServerID(d.PeerID)
		if err != nil {
			return nil, false
		}
		return observer.HeartbeatResumed{ID: id}, true
	}
	return nil, false
}

// State maps a raft state to canoe's.
func State(s raft.RaftState) observer.State {
	switch s {
	case raft.Leader:
		return observer.Leader
	case raft.Candidate:
		return observer.Candidate
	case raft.Shutdown:
		return observer.Shutdown
	default:
		return observer.Follower
	}
}
