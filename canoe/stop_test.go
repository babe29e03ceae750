package canoe

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
)

// TestStopRefusesQueuedProposals: a leader cut off from the others has one
// batch in raft that cannot commit; the proposals queued behind it never
// reached raft, so stopping refuses them with ErrNotRunning, not with an
// unknown outcome. The node stops without handing leadership over, as Stop
// does when no voter has answered lately (and Destroy and a removed node
// always do): a handover would depose it first, and a deposed leader
// refuses what it holds anyway.
func TestStopRefusesQueuedProposals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		c.partition(leader.id)
		rt := leader.rt.Load()
		last := rt.raft.LastIndex()

		results := make([]chan error, 4)
		propose := func(i int) {
			results[i] = make(chan error, 1)
			go func() { results[i] <- leader.ProposeContext(context.Background(), fmt.Appendf(nil, "p%d", i)) }()
			synctest.Wait()
		}
		propose(0) // in raft, uncommitted: its batch holds the only slot
		if rt.raft.LastIndex() != last+1 {
			t.Fatalf("the first proposal did not reach raft (last index %d, was %d)", rt.raft.LastIndex(), last)
		}
		for i := 1; i < len(results); i++ {
			propose(i) // the batcher's pending one, then the queue
		}
		leader.lifeMu.Lock()
		err := leader.stopLocked(false)
		leader.lifeMu.Unlock()
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
		if err := <-results[0]; err == nil {
			t.Errorf("the uncommitted proposal succeeded")
		}
		for i := 1; i < len(results); i++ {
			if err := <-results[i]; !errors.Is(err, ErrNotRunning) || errors.Is(err, ErrUnknownOutcome) {
				t.Errorf("proposal %d, which never reached raft: got %v, want ErrNotRunning", i, err)
			}
		}
	})
}
