package canoe

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
)

// Read replicas are members that get every entry and serve reads
// (ReadBarrier, then the local FSM) but never vote: they do not count
// toward quorum and never lead. A node becomes one when it is added with
// NonVoter set (NodeConfig.NonVoter, Peer.NonVoter in AddPeer, "nonvoter"
// in POST /peers, the NonVoter flag in its gossip metadata). The leader
// records the flag in canoe's replicated member metadata before the member
// enters the configuration, and its promotion loop skips flagged members,
// so every leader knows to leave the replica a non-voter, across
// failovers and restarts. Promote clears the flag.

// isReplica reports whether the replicated metadata marks member id as a
// read replica.
func (n *Node) isReplica(id uint64) bool {
	m, ok := n.fsm.Peer(id)
	return ok && m.NonVoter
}

// fsmCaughtUp waits until this leader's FSM holds every entry before now
// (a raft barrier), and with them the member metadata, replica flags among
// them, that earlier leaders recorded: a new leader's commit index runs
// ahead of its FSM until it has applied its predecessors' entries. *term,
// owned by the caller, records the term in which it last did, so that the
// barrier is written once per term.
func (n *Node) fsmCaughtUp(ctx context.Context, rt *run, term *uint64) bool {
	t := rt.raft.CurrentTerm()
	if *term == t {
		return true
	}
	if err := n.await(ctx, rt, rt.raft.Barrier(enqueueTimeout)); err != nil {
		return false
	}
	*term = t
	return true
}

// Promote makes member id a voter and returns once its promotion is
// committed. For a read replica it clears the replica flag (replicated,
// so no later leader keeps it a non-voter); the leader then promotes the
// member as it promotes any non-voter: once the member has caught up, as
// far as the leader knows from what it replicated. A replica that is down
// or far behind is not promoted until it catches up, so that it cannot cost
// the cluster its quorum; if ctx ends first, Promote returns an error
// matching ErrTimeout and the promotion still happens later. Promote of a
// voter changes nothing and returns nil; of an ID that is not a member,
// ErrPeerNotFound. On a follower the request goes to the leader.
func (n *Node) Promote(ctx context.Context, id uint64) error {
	if id == 0 {
		return fmt.Errorf("%w: id is 0", ErrInvalidPeer)
	}
	return n.onLeader(ctx, func(rt *run, leader uint64) error {
		if leader == n.id {
			return n.promoteLocal(ctx, rt, id)
		}
		return n.fwd.Promote(ctx, leader, id)
	})
}

func (n *Node) promoteLocal(ctx context.Context, rt *run, id uint64) error {
	tick := time.NewTicker(pollInterval(n.cfg.Timing))
	defer tick.Stop()
	wait := func() error {
		select {
		case <-tick.C:
			return nil
		case <-rt.ctx.Done():
			return ErrNotRunning
		case <-ctx.Done():
			return fmt.Errorf("%w: %d is not caught up yet; the leader promotes it once it is: %w", ErrTimeout, id, ctx.Err())
		}
	}
	var term uint64
	if !n.fsmCaughtUp(ctx, rt, &term) { // the replica flag must be known to clear it
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return &NotLeaderError{LeaderID: n.LeaderID()}
	}
	cfg, _, err := configuration(rt)
	if err != nil {
		return n.raftErr(err)
	}
	server := findServer(cfg, id)
	if server == nil {
		return fmt.Errorf("%w: %d", ErrPeerNotFound, id)
	}
	if m, ok := n.fsm.Peer(id); ok && m.NonVoter {
		m.NonVoter = false
		if err := n.await(ctx, rt, rt.raft.Apply(adapter.EncodePeerMeta(m), enqueueTimeout)); err != nil {
			return n.raftErr(err)
		}
		n.logger.Info("read replica to be promoted", "peer", strconv.FormatUint(id, 10))
	}
	if server.Suffrage == raft.Voter {
		return nil
	}
	kick(rt) // the manager's promotion loop does the rest
	for {
		if servers, _ := n.fsm.CommittedConfiguration(); isVoterIn(servers, id) {
			return nil
		}
		if rt.raft.State() != raft.Leader {
			// The next leader finishes the promotion; onLeader asks it.
			return &NotLeaderError{LeaderID: n.LeaderID()}
		}
		cfg, _, err := configuration(rt)
		if err != nil {
			return n.raftErr(err)
		}
		if findServer(cfg, id) == nil {
			return fmt.Errorf("%w: %d was removed while being promoted", ErrPeerNotFound, id)
		}
		if err := wait(); err != nil {
			return err
		}
	}
}

// isVoterIn reports whether servers holds id as a voter (raft.Voter is the
// zero ServerSuffrage, so a plain lookup would say so of a missing id).
func isVoterIn(servers map[uint64]raft.ServerSuffrage, id uint64) bool {
	s, ok := servers[id]
	return ok && s == raft.Voter
}
