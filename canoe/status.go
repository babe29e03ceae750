package canoe

import (
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/observer"
)

// Status is a snapshot of a node's view of the cluster.
type Status struct {
	ID           uint64
	State        State  // Follower, Candidate, Leader or Shutdown
	LeaderID     uint64 // 0: none known
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64 // last entry the FSM applied
	LastIndex    uint64
	Members      []Peer // the latest configuration, committed or not
	// LastContact is, on the leader, how long ago each other member last
	// answered it (heartbeats included), for the members that have; nil on
	// other nodes.
	LastContact map[uint64]time.Duration
	// CommittedMembers are the IDs of the newest committed configuration
	// this node has applied, sorted; nil before it has applied one. It may
	// lag Members, and unlike Members it is never undone.
	CommittedMembers []uint64
}

// Status returns the node's view of the cluster. It does not block.
func (n *Node) Status() Status {
	rt := n.rt.Load()
	if rt == nil {
		return Status{ID: n.id, State: observer.Shutdown, AppliedIndex: n.fsm.AppliedIndex()}
	}
	members := n.Peers()
	return Status{
		ID:               n.id,
		State:            adapter.State(rt.raft.State()),
		LeaderID:         n.LeaderID(),
		Term:             rt.raft.CurrentTerm(),
		CommitIndex:      rt.raft.CommitIndex(),
		AppliedIndex:     n.fsm.AppliedIndex(),
		LastIndex:        rt.raft.LastIndex(),
		Members:          members,
		LastContact:      n.lastContact(rt, members),
		CommittedMembers: n.committedMembers(),
	}
}

// committedMembers returns the IDs of the newest committed configuration
// the FSM holds, sorted; nil before it holds one.
func (n *Node) committedMembers() []uint64 {
	servers, _ := n.fsm.CommittedConfiguration()
	if len(servers) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(servers))
}

func (n *Node) isVoter(rt *run) bool {
	cfg, _, err := configuration(rt)
	if err != nil {
		return false
	}
	s := findServer(cfg, n.id)
	return s != nil && s.Suffrage == raft.Voter
}
