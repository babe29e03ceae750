package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// TestJoinByURLWithDeadFirstPeer starts a third node whose BootstrapPeers
// list a dead URL first: it moves on to the live member, joins, and becomes
// a voter.
func TestJoinByURLWithDeadFirstPeer(t *testing.T) {
	c := newCluster(t, 2, clusterOpts{})
	live := c.leader()
	start := time.Now()
	m := c.mustStart(c.config(false, deadURL(t), live.url))
	t.Logf("joined through a dead and a live URL in %v", time.Since(start))
	c.waitVoters(3)
	testutil.WaitFor(t, 10*time.Second, "the new node to see itself as a voter", func() bool { return m.node.Self().Voter })
	mustPropose(t, m, "from-the-new-node")
	waitSameState(t, 10*time.Second, 1, c.running()...)
}

// TestDeleteMemberThenLeader removes, through DELETE /peers, first a live
// follower (via another member) and then the leader (via a follower): each
// removed node stops itself and answers ErrorRemovedFromCluster, and the
// survivors elect a leader and keep serving. Removing an unknown id is a 404.
func TestDeleteMemberThenLeader(t *testing.T) {
	c := newCluster(t, 4, clusterOpts{})
	client := httpconfig.NewClient(nil, nil, 0)
	t.Cleanup(client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	fs := c.followers()
	victim, via := fs[0], fs[1]

	// An unknown id: 404, membership unchanged.
	unknown := uint64(0xdead)
	for _, m := range c.running() {
		if m.id == unknown {
			unknown++
		}
	}
	err := client.RemovePeer(ctx, via.url, unknown)
	var se *httpconfig.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || !errors.Is(err, httpconfig.ErrPeerNotFound) {
		t.Fatalf("DELETE /peers of unknown id %x: got %v, want a 404 StatusError matching ErrPeerNotFound", unknown, err)
	}
	c.waitVoters(4)

	// A live follower, through another follower's API.
	if err := client.RemovePeer(ctx, via.url, victim.id); err != nil {
		t.Fatalf("DELETE /peers of follower %v via %v: %v", victim, via, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the removed follower to stop itself", func() bool { return !victim.node.IsRunning() })
	if err := victim.node.Propose([]byte("from-the-removed")); !errors.Is(err, canoe.ErrorRemovedFromCluster) {
		t.Errorf("Propose on the removed follower: got %v, want ErrorRemovedFromCluster", err)
	}
	c.waitVoters(3)
	for _, m := range c.running() {
		mustPropose(t, m, fmt.Sprintf("after-follower-removal-%v", m))
	}

	// The leader, through a follower's API.
	leader := c.leader()
	via = c.followers()[0]
	if err := client.RemovePeer(ctx, via.url, leader.id); err != nil {
		t.Fatalf("DELETE /peers of the leader %v via %v: %v", leader, via, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the removed leader to stop itself", func() bool { return !leader.node.IsRunning() })
	if err := leader.node.Propose([]byte("from-the-removed-leader")); !errors.Is(err, canoe.ErrorRemovedFromCluster) {
		t.Errorf("Propose on the removed leader: got %v, want ErrorRemovedFromCluster", err)
	}
	newLeader := c.leader()
	if newLeader == leader {
		t.Fatalf("the removed node %v still leads", leader)
	}
	c.waitVoters(2)
	survivors := c.running()
	if len(survivors) != 2 {
		t.Fatalf("%d nodes running after two removals from 4, want 2", len(survivors))
	}
	for _, m := range survivors {
		mustPropose(t, m, fmt.Sprintf("after-leader-removal-%v", m))
	}
	waitSameState(t, 10*time.Second, -1, survivors...)
}
