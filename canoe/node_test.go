package canoe

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/canoe-raft/canoe/internal/testutil"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight, nor for an
	// indirect ping it relays for another member; with the LAN profile
	// (BenchmarkGossipJoinAndLeave) such a goroutine ends up to a probe
	// interval (1s) after Shutdown. Everything canoe starts is joined by Stop.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).handleIndirectPing.func2"))
}

func propose(t *testing.T, n *Node, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.ProposeContext(ctx, []byte(data)); err != nil {
		t.Fatalf("node %d: Propose(%q): %v", n.id, data, err)
	}
}

func TestReplication(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, size, nil)
				leader := c.leader()
				for i := range 50 {
					propose(t, leader, fmt.Sprintf("L%d", i))
				}
				// Proposals on followers are forwarded, and each is applied
				// on the proposing node when Propose returns.
				for i, f := range c.followers() {
					data := fmt.Sprintf("F%d", i)
					propose(t, f, data)
					if got := c.fsm(f.id).list(); got[len(got)-1] != data {
						t.Fatalf("read-your-writes: node %d last entry %q, want %q", f.id, got[len(got)-1], data)
					}
				}
				c.waitConverged(50 + size - 1)
			})
		})
	}
}

func TestConcurrentProposalsBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		nodes := c.running()
		errs := make(chan error, 300)
		for i := range 300 {
			go func() {
				n := nodes[i%len(nodes)]
				errs <- n.ProposeContext(context.Background(), []byte(fmt.Sprintf("p%d", i)))
			}()
		}
		for range 300 {
			if err := <-errs; err != nil {
				t.Fatalf("Propose: %v", err)
			}
		}
		got := c.waitConverged(300)
		seen := make(map[string]bool)
		for _, e := range got {
			if seen[e] {
				t.Fatalf("entry %q applied twice", e)
			}
			seen[e] = true
		}
	})
}

func TestLeaderFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		old := c.leader()
		propose(t, old, "before")
		if err := old.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		next := c.leader()
		if next == old {
			t.Fatal("stopped node is still leader")
		}
		propose(t, next, "after")
		for _, f := range c.followers() {
			propose(t, f, fmt.Sprintf("via %d", f.id))
		}
		// The old leader comes back as a follower and catches up.
		c.heal(old.id) // Stop closed its transport
		if err := old.Start(); err != nil {
			t.Fatalf("restart: %v", err)
		}
		propose(t, old, "old is back")
		c.waitConverged(4)
	})
}

func TestLeaderPartitionedFailsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		old := c.leader()
		propose(t, old, "a")
		c.partition(old.id)
		// The isolated leader cannot commit; the majority elects a new one.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := old.ProposeContext(ctx, []byte("lost"))
		cancel()
		if err == nil {
			t.Fatal("isolated leader committed a proposal")
		}
		if !errors.Is(err, ErrUnknownOutcome) && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrNoLeader) {
			t.Fatalf("isolated proposal: got %v, want unknown outcome, timeout or no leader", err)
		}
		var next *Node
		testutil.WaitFor(t, 10*time.Second, "new leader in majority", func() bool {
			for _, n := range c.running() {
				if n != old && n.IsLeader() {
					next = n
					return true
				}
			}
			return false
		})
		propose(t, next, "b")
		c.heal(old.id)
		propose(t, old, "c")
		got := c.waitConverged(3)
		if got[0] != "a" || got[1] != "b" || got[2] != "c" {
			t.Fatalf("entries %v, want [a b c]", got)
		}
	})
}

func TestApplyErrorReturnedAndClusterServes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		err := leader.Propose([]byte("fail"))
		var ae *ApplyError
		if !errors.As(err, &ae) || !errors.Is(err, errFail) {
			t.Fatalf("leader Propose(fail): got %v, want an ApplyError wrapping errFail", err)
		}
		f := c.followers()[0]
		err = f.Propose([]byte("fail"))
		if !errors.As(err, &ae) || ae.Err.Error() != errFail.Error() {
			t.Fatalf("follower Propose(fail): got %v, want an ApplyError saying %q", err, errFail)
		}
		propose(t, leader, "still serving")
		propose(t, f, "still serving too")
		c.waitConverged(2)
	})
}

func TestNoLeaderDoesNotHang(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		for _, f := range c.followers() {
			if err := f.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		testutil.WaitFor(t, 10*time.Second, "leader to step down", func() bool { return !leader.IsLeader() })
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := leader.ProposeContext(ctx, []byte("x"))
		if !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Propose without quorum: got %v, want ErrNoLeader", err)
		}
		if err := leader.ReadBarrier(ctx); !errors.Is(err, ErrNoLeader) {
			t.Fatalf("ReadBarrier without quorum: got %v, want ErrNoLeader", err)
		}
	})
}

func TestReadBarrierOnFollower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		for i := range 20 {
			propose(t, leader, fmt.Sprintf("w%d", i))
			for _, f := range c.followers() {
				if err := f.ReadBarrier(context.Background()); err != nil {
					t.Fatalf("ReadBarrier: %v", err)
				}
				if got := c.fsm(f.id).len(); got != i+1 {
					t.Fatalf("after ReadBarrier node %d has %d entries, want %d", f.id, got, i+1)
				}
			}
		}
		if err := leader.ReadBarrier(context.Background()); err != nil {
			t.Fatalf("leader ReadBarrier: %v", err)
		}
	})
}

func TestSnapshotTruncateAndInstall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, func(cfg *NodeConfig) {
			cfg.SnapshotConfig = &SnapshotConfig{Interval: 50 * time.Millisecond, MinCommittedLogs: 20, MaxRetainedSnapshots: 1}
		})
		leader := c.leader()
		taken := make(chan Observation, 16)
		obs := NewObserver(taken, func(o Observation) bool { _, ok := o.(SnapshotTaken); return ok })
		leader.RegisterObserver(obs)
		for i := range 200 {
			propose(t, leader, fmt.Sprintf("e%d", i))
		}
		select {
		case <-taken:
		case <-time.After(10 * time.Second):
			t.Fatal("no snapshot taken")
		}
		leader.UnregisterObserver(obs)
		rt := leader.rt.Load()
		testutil.WaitFor(t, 10*time.Second, "log truncation", func() bool {
			first, err := rt.stores.Logs.FirstIndex()
			return err == nil && first > 1
		})
		// A new node far behind gets the snapshot, then the rest of the log.
		n := c.join()
		c.waitVoters(4)
		propose(t, n, "late")
		c.waitConverged(201)
	})
}

func TestRestartFromDataDirKeepsIDAndState(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, func(cfg *NodeConfig) {
			cfg.DataDir = filepath.Join(dir, fmt.Sprint(cfg.ID))
			cfg.SnapshotConfig = &SnapshotConfig{Interval: 50 * time.Millisecond, MinCommittedLogs: 30}
		})
		for i := range 100 {
			propose(t, c.running()[i%3], fmt.Sprintf("e%d", i))
		}
		c.waitConverged(100)
		// Replace every node in turn by a new process-like Node: a fresh FSM,
		// ID 0 (read back from DataDir), the same DataDir.
		for _, old := range c.running() {
			id := old.id
			if err := old.Stop(); err != nil {
				t.Fatal(err)
			}
			fsm := &testFSM{}
			cfg := old.cfg
			cfg.ID, cfg.FSM, cfg.BootstrapNode = 0, fsm, false
			n, err := NewNode(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			if n.UniqueID() != id {
				t.Fatalf("restarted node has ID %d, want %d", n.UniqueID(), id)
			}
			c.heal(id) // Stop closed its transport
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			c.nodes[id], c.fsms[id] = n, fsm
			c.mu.Unlock()
			propose(t, n, fmt.Sprintf("after restart of %d", id))
			if got := len(n.Peers()); got != 3 {
				t.Fatalf("restarted node sees %d members, want 3", got)
			}
		}
		c.waitConverged(103)
	})
}

func TestDestroyAndRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 4, nil)
		leader := c.leader()
		fs := c.followers()
		// Destroy on a follower: it leaves through the leader.
		if err := fs[0].Destroy(); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		if err := fs[0].Start(); !errors.Is(err, ErrorRemovedFromCluster) {
			t.Fatalf("Start after Destroy: got %v, want ErrorRemovedFromCluster", err)
		}
		// RemovePeer of a live follower: it notices and stops itself.
		if err := leader.RemovePeer(context.Background(), fs[1].id); err != nil {
			t.Fatalf("RemovePeer: %v", err)
		}
		testutil.WaitFor(t, 10*time.Second, "removed node to stop", func() bool { return !fs[1].IsRunning() })
		if err := fs[1].Propose([]byte("x")); !errors.Is(err, ErrorRemovedFromCluster) {
			t.Fatalf("Propose on removed node: got %v, want ErrorRemovedFromCluster", err)
		}
		if err := leader.RemovePeer(context.Background(), 999); !errors.Is(err, ErrPeerNotFound) {
			t.Fatalf("RemovePeer(unknown): got %v, want ErrPeerNotFound", err)
		}
		if got := len(leader.Peers()); got != 2 {
			t.Fatalf("leader sees %d members, want 2", got)
		}
		propose(t, leader, "two left")
		propose(t, fs[2], "still a quorum")
		c.waitConverged(2)
		// Removing the leader makes it step down; the survivor leads alone.
		if err := fs[2].RemovePeer(context.Background(), leader.id); err != nil {
			t.Fatalf("RemovePeer(leader): %v", err)
		}
		testutil.WaitFor(t, 10*time.Second, "survivor to lead", func() bool { return fs[2].IsLeader() })
		propose(t, fs[2], "alone")
		if err := fs[2].RemovePeer(context.Background(), fs[2].id); !errors.Is(err, ErrInvalidPeer) {
			t.Fatalf("removing the last voter: got %v, want ErrInvalidPeer", err)
		}
	})
}

func TestObserversSeeLeaderAndPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		ch := make(chan Observation, 64)
		obs := NewObserver(ch, nil)
		f := c.followers()[0]
		f.RegisterObserver(obs)
		c.join()
		c.waitVoters(4)
		var added, promoted bool
		for !added || !promoted {
			select {
			case o := <-ch:
				switch o.(type) {
				case PeerAdded:
					added = true
				case PeerPromoted:
					promoted = true
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("follower saw added=%v promoted=%v", added, promoted)
			}
		}
		leader := c.leader()
		if err := leader.TransferLeadership(context.Background()); err != nil {
			t.Fatalf("TransferLeadership: %v", err)
		}
		for {
			select {
			case o := <-ch:
				if lc, ok := o.(LeaderChanged); ok && lc.LeaderID != 0 && lc.LeaderID != leader.id {
					f.UnregisterObserver(obs)
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no LeaderChanged observation after transfer")
			}
		}
	})
}

func TestStopIsIdempotentAndSafeBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, err := NewNode(&NodeConfig{FSM: &testFSM{}, BootstrapNode: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Stop(); err != nil {
			t.Fatalf("Stop before Start: %v", err)
		}
		if err := n.Propose([]byte("x")); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("Propose before Start: got %v, want ErrNotRunning", err)
		}
		c := newTestCluster(t, 1, nil)
		l := c.leader()
		for range 3 {
			if err := l.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
		}
		if l.IsRunning() {
			t.Fatal("IsRunning after Stop")
		}
	})
}

func TestNodeRemovedWhileDownLearnsOfIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		f := c.followers()[0]
		if err := f.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := leader.RemovePeer(context.Background(), f.id); err != nil {
			t.Fatalf("RemovePeer: %v", err)
		}
		// f comes back believing it is a member; the leader never contacts
		// a removed server, so only asking the others tells f.
		c.heal(f.id)
		if err := f.Start(); err != nil {
			t.Fatalf("Start: %v", err)
		}
		testutil.WaitFor(t, 30*time.Second, "the removed node to notice and stop", func() bool { return !f.IsRunning() })
		if err := f.Propose([]byte("x")); !errors.Is(err, ErrorRemovedFromCluster) {
			t.Fatalf("Propose on removed node: got %v, want ErrorRemovedFromCluster", err)
		}
		propose(t, leader, "two left")
	})
}

func TestNodeRemovedWhilePartitionedAsksTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		f := c.followers()[0]
		c.partition(f.id)
		time.Sleep(time.Second) // RPCs already in flight to f land or time out
		// The leader never sends f the configuration that drops it; only
		// asking the other members (over the API, here the forwarder) tells f.
		if err := leader.RemovePeer(context.Background(), f.id); err != nil {
			t.Fatalf("RemovePeer: %v", err)
		}
		testutil.WaitFor(t, 30*time.Second, "the removed node to notice and stop", func() bool { return !f.IsRunning() })
		if err := f.Propose([]byte("x")); !errors.Is(err, ErrorRemovedFromCluster) {
			t.Fatalf("Propose on removed node: got %v, want ErrorRemovedFromCluster", err)
		}
	})
}

// TestFollowerLearnsCommitAtOnce: a follower's forwarded Propose and its
// ReadBarrier wait until the follower has applied the entry, and raft tells
// a follower of a new commit index only with the next entries or the
// CommitTimeout tick. With CommitTimeout at 300 ms, both must still return
// in a few milliseconds of (virtual) time: the leader tells the followers
// of those commits at once.
func TestFollowerLearnsCommitAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, func(cfg *NodeConfig) { cfg.Timing.CommitTimeout = 300 * time.Millisecond })
		leader := c.leader()
		f := c.followers()[0]
		const bound = 50 * time.Millisecond
		for i := range 10 {
			start := time.Now()
			propose(t, f, fmt.Sprintf("f%d", i))
			if d := time.Since(start); d > bound {
				t.Fatalf("Propose on a follower took %v; want under %v (CommitTimeout is 300ms)", d, bound)
			}
			propose(t, leader, fmt.Sprintf("l%d", i))
			start = time.Now()
			if err := f.ReadBarrier(context.Background()); err != nil {
				t.Fatalf("ReadBarrier: %v", err)
			}
			if d := time.Since(start); d > bound {
				t.Fatalf("ReadBarrier on a follower took %v; want under %v (CommitTimeout is 300ms)", d, bound)
			}
			if got := c.fsm(f.id).len(); got != 2*(i+1) {
				t.Fatalf("after ReadBarrier the follower has %d entries, want %d", got, 2*(i+1))
			}
		}
	})
}
