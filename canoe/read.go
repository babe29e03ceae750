package canoe

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ReadBarrier returns nil once this node's FSM reflects every proposal
// committed before the call, so a read of the FSM right after is
// linearizable (etcd's ReadIndex). The leader confirms it still leads with a
// round of heartbeats; a follower asks the leader for its commit index and
// waits until it has applied that far. No entry is written, beyond one
// barrier per leader term.
func (n *Node) ReadBarrier(ctx context.Context) error {
	for {
		rt, err := n.current()
		if err != nil {
			return err
		}
		changed := n.leaderBC.wait()
		var index uint64
		switch leader := n.LeaderID(); {
		case leader == n.id && rt.raft.State() == raft.Leader:
			index, err = n.readIndex(rt)
		case leader != 0:
			index, err = n.fwd.ReadIndex(ctx, leader)
		default:
			err = ErrNoLeader
		}
		if err == nil {
			return n.waitApplied(ctx, rt, index)
		}
		if !retriable(err) {
			return err
		}
		select {
		case <-changed:
		case <-time.After(retryPause(n.cfg.Timing)):
		case <-ctx.Done():
			if n.LeaderID() == 0 {
				return fmt.Errorf("%w: read barrier: %w", ErrNoLeader, ctx.Err())
			}
			return fmt.Errorf("%w: read barrier: %w", ErrTimeout, ctx.Err())
		}
	}
}

// readIndex returns the leader's read index: its commit index, once it has
// committed an entry of its own term and confirmed it still leads.
func (n *Node) readIndex(rt *runtime) (uint64, error) {
	if err := n.ensureLeaderReady(rt); err != nil {
		return 0, err
	}
	index := rt.raft.CommitIndex()
	if err := n.await(rt, rt.raft.VerifyLeader()); err != nil {
		return 0, n.raftErr(err)
	}
	return index, nil
}

// ensureLeaderReady commits a barrier once per term, so that the leader's
// commit index covers every entry committed by earlier leaders.
func (n *Node) ensureLeaderReady(rt *runtime) error {
	term := rt.raft.CurrentTerm()
	if rt.readyTerm.Load() == term {
		return nil
	}
	if err := n.await(rt, rt.raft.Barrier(enqueueTimeout)); err != nil {
		return n.raftErr(err)
	}
	rt.readyTerm.Store(term)
	return nil
}

// waitApplied waits until the FSM holds the effects of every entry up to
// index. Entries the FSM never sees (raft's no-ops and barriers) do not move
// its applied index, so once raft has handed everything up to index to the
// FSM goroutine, entries past the FSM's applied index that are not commands
// need no waiting.
func (n *Node) waitApplied(ctx context.Context, rt *runtime, index uint64) error {
	pause := 100 * time.Microsecond
	for {
		advanced := n.fsm.Advanced()
		applied := n.fsm.AppliedIndex()
		if applied >= index {
			return nil
		}
		if rt.raft.AppliedIndex() >= index && !hasCommands(rt.stores.Logs, applied+1, index) {
			return nil
		}
		select {
		case <-advanced:
		case <-time.After(pause):
			pause = min(2*pause, 10*time.Millisecond)
		case <-rt.stop:
			return ErrNotRunning
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting to apply index %d: %w", ErrTimeout, index, ctx.Err())
		}
	}
}

// hasCommands reports whether logs[lo..hi] may hold an entry the FSM must
// apply. Entries already compacted away are covered by a snapshot the FSM
// has restored or taken.
func hasCommands(logs raft.LogStore, lo, hi uint64) bool {
	if hi-lo > 256 {
		return true
	}
	var l raft.Log
	for i := lo; i <= hi; i++ {
		if err := logs.GetLog(i, &l); err != nil {
			continue
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return true
		}
	}
	return false
}
