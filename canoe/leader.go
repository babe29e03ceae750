package canoe

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
)

// TransferLeadershipTo hands leadership to voter id and returns once this
// node has stepped down and another leader is known (usually id, which
// raft asks to campaign at once). Only the leader can call it: on another
// node it returns a *NotLeaderError. If id is this node, which leads, there
// is nothing to do and it returns nil. It fails with ErrPeerNotFound when
// id is not a member, ErrInvalidPeer when id is a non-voter, and an error
// saying so when id did not take over within the election timeout (this
// node then stays leader).
func (n *Node) TransferLeadershipTo(ctx context.Context, id uint64) error {
	rt, err := n.current()
	if err != nil {
		return err
	}
	if rt.raft.State() != raft.Leader {
		return &NotLeaderError{LeaderID: n.LeaderID()}
	}
	if id == n.id {
		return nil
	}
	cfg, _, err := configuration(rt)
	if err != nil {
		return n.raftErr(err)
	}
	target := findServer(cfg, id)
	switch {
	case target == nil:
		return fmt.Errorf("%w: %d", ErrPeerNotFound, id)
	case target.Suffrage != raft.Voter:
		return fmt.Errorf("%w: %d is a non-voter and cannot lead", ErrInvalidPeer, id)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	// As transferLeadership: raft refuses new entries while a transfer is
	// under way, so the batcher waits.
	rt.transferMu.Lock()
	err = n.await(ctx, rt, rt.raft.LeadershipTransferToServer(target.ID, target.Address))
	rt.transferMu.Unlock()
	if err != nil {
		return fmt.Errorf("canoe: leadership transfer to %d: %w", id, n.raftErr(err))
	}
	n.awaitOtherLeader(ctx)
	return nil
}

// awaitOtherLeader waits until a leader other than this node is known, or
// ctx ends, and returns it (0 if none is known by then).
func (n *Node) awaitOtherLeader(ctx context.Context) uint64 {
	for {
		changed := n.leaderBC.wait()
		if l := n.LeaderID(); l != 0 && l != n.id {
			return l
		}
		select {
		case <-changed:
		case <-time.After(retryPause(n.cfg.Timing)):
		case <-ctx.Done():
			return 0
		}
	}
}

// lastContact returns, on the leader, how long ago each other member last
// answered it; nil on other nodes.
func (n *Node) lastContact(rt *run, members []Peer) map[uint64]time.Duration {
	if rt.raft.State() != raft.Leader {
		return nil
	}
	out := make(map[uint64]time.Duration, len(members))
	now := time.Now()
	for _, p := range members {
		if p.ID == n.id {
			continue
		}
		if at, ok := rt.trans.LastAnswer(adapter.ServerID(p.ID)); ok {
			out[p.ID] = now.Sub(at)
		}
	}
	return out
}
