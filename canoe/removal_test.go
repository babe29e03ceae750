package canoe

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// latestHolds reports whether node n's latest raft configuration (committed
// or not) holds member id; running is false once n has stopped.
func latestHolds(n *Node, id uint64) (holds, running bool) {
	rt := n.rt.Load()
	if rt == nil {
		return false, false
	}
	cfg, _, err := configuration(rt)
	if err != nil {
		return false, true
	}
	return findServer(cfg, id) != nil, true
}

// mustKeepRunning fails the test if n has stopped, with what a Start says.
func mustKeepRunning(t *testing.T, n *Node, what string) {
	t.Helper()
	if n.IsRunning() {
		return
	}
	t.Fatalf("%s: node %d stopped itself (removed=%v); Start now returns %v", what, n.id, n.removed.Load(), n.Start())
}

// TestUncommittedRemovalKeepsTheMember: 5 nodes; the leader appends the
// configuration that removes E, the entry reaches only E (raft sends a
// server what it has before it stops replicating to it), and then the
// leader loses leadership. The new leader never had the entry, so E is
// still a voter: E must not stop itself, and must keep working.
func TestUncommittedRemovalKeepsTheMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, nil)
		leader := c.leader()
		propose(t, leader, "before")
		c.waitConverged(1)
		fs := c.followers()
		e := fs[0]
		for _, f := range fs[1:] {
			c.cut(leader.id, f.id)
		}
		// RemovePeer would first commit a peer-forget entry, which cannot
		// commit now; append the configuration change itself.
		removal := leader.rt.Load().raft.RemoveServer(adapter.ServerID(e.id), 0, 0)
		testutil.WaitFor(t, 5*time.Second, "the removal to reach E", func() bool {
			holds, running := latestHolds(e, e.id)
			return !holds || !running
		})
		mustKeepRunning(t, e, "right after the uncommitted removal reached it")
		var next *Node
		testutil.WaitFor(t, 10*time.Second, "a new leader among the others", func() bool {
			for _, f := range fs[1:] {
				if f.IsLeader() {
					next = f
					return true
				}
			}
			return false
		})
		if err := removal.Error(); err == nil {
			t.Fatalf("the removal of %d committed; the test needs it lost", e.id)
		}
		// The new leader's log never held the removal: it brings E back to
		// its own configuration.
		testutil.WaitFor(t, 10*time.Second, "E to hold itself in its configuration again", func() bool {
			holds, running := latestHolds(e, e.id)
			return holds || !running
		})
		mustKeepRunning(t, e, "after the new leader took over")
		for _, f := range fs[1:] {
			c.connect(leader.id, f.id)
		}
		propose(t, e, "from E")
		propose(t, next, "from the new leader")
		c.waitConverged(3)
		mustKeepRunning(t, e, "at the end")
		voters := 0
		for _, p := range c.leader().Peers() {
			if p.Voter {
				voters++
			}
		}
		if voters != 5 {
			t.Fatalf("the leader sees %d voters, want 5", voters)
		}
	})
}

// TestLeaderRemovingItselfInPartition: a leader appends the configuration
// that removes itself, but it is cut off from every other node, so the
// change cannot commit; the others elect a leader without it. Once the
// partition heals the old leader is still a member and must still run.
func TestLeaderRemovingItselfInPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, nil)
		old := c.leader()
		others := c.followers()
		c.partition(old.id)
		removal := old.rt.Load().raft.RemoveServer(adapter.ServerID(old.id), 0, 0)
		testutil.WaitFor(t, 5*time.Second, "the leader to append its own removal", func() bool {
			holds, running := latestHolds(old, old.id)
			return !holds || !running
		})
		var next *Node
		testutil.WaitFor(t, 10*time.Second, "a new leader among the others", func() bool {
			for _, f := range others {
				if f.IsLeader() {
					next = f
					return true
				}
			}
			return false
		})
		if err := removal.Error(); err == nil {
			t.Fatal("the leader's removal of itself committed; the test needs it lost")
		}
		mustKeepRunning(t, old, "after losing leadership with its removal uncommitted")
		c.heal(old.id)
		testutil.WaitFor(t, 10*time.Second, "the old leader to hold itself in its configuration again", func() bool {
			holds, running := latestHolds(old, old.id)
			return holds || !running
		})
		mustKeepRunning(t, old, "after the partition healed")
		for i, n := range []*Node{old, next} {
			propose(t, n, fmt.Sprintf("after %d", i))
		}
		c.waitConverged(2)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := old.ReadBarrier(ctx); err != nil {
			t.Fatalf("ReadBarrier on the old leader: %v", err)
		}
	})
}
