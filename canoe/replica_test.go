package canoe

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// onDisk gives every node of a test cluster its own DataDir under dir.
func onDisk(dir string) func(*NodeConfig) {
	return func(cfg *NodeConfig) { cfg.DataDir = filepath.Join(dir, fmt.Sprint(cfg.ID)) }
}

// addReplica starts a node with NodeConfig.NonVoter and has via add it
// as a read replica.
func (c *testCluster) addReplica(via *Node) *Node {
	c.t.Helper()
	r := c.addNodeWith(false, func(cfg *NodeConfig) { cfg.NonVoter = true })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := via.AddPeer(ctx, Peer{ID: r.id, Host: "127.0.0.1", RaftPort: int(10000 + r.id), NonVoter: true}); err != nil {
		c.t.Fatalf("AddPeer(read replica %d) via %d: %v", r.id, via.id, err)
	}
	return r
}

// restart replaces old by a new Node on the same DataDir, as a new process
// would: ID 0 (read back), a fresh FSM, tweak applied to the config.
func (c *testCluster) restart(old *Node, tweak func(*NodeConfig)) *Node {
	c.t.Helper()
	id := old.id
	if err := old.Stop(); err != nil {
		c.t.Fatalf("Stop(%d): %v", id, err)
	}
	fsm := &testFSM{}
	cfg := old.cfg
	cfg.ID, cfg.FSM, cfg.BootstrapNode = 0, fsm, false
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := NewNode(&cfg)
	if err != nil {
		c.t.Fatalf("NewNode(%d): %v", id, err)
	}
	c.heal(id) // Stop closed its transport
	if err := n.Start(); err != nil {
		c.t.Fatalf("Start(%d): %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.fsms[id] = n, fsm
	c.mu.Unlock()
	return n
}

// memberAs returns member id as node n sees it.
func memberAs(n *Node, id uint64) (Peer, bool) {
	peers := n.Peers()
	i := slices.IndexFunc(peers, func(p Peer) bool { return p.ID == id })
	if i < 0 {
		return Peer{}, false
	}
	return peers[i], true
}

// holdsFor checks cond every 10 ms for d and fails the test the first
// time it does not hold: for what must not happen (a promotion, a commit).
func holdsFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// isReplicaEverywhere reports an error unless every running node sees
// member id as a read replica.
func (c *testCluster) isReplicaEverywhere(id uint64) error {
	for _, n := range c.running() {
		p, ok := memberAs(n, id)
		if !ok || p.Voter || !p.NonVoter {
			return fmt.Errorf("node %d sees member %d as %+v (member %v), want a read replica", n.id, id, p, ok)
		}
	}
	return nil
}

func TestReadReplicaCatchesUpAndServesReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, nil)
		leader := c.leader()
		for i := range 20 {
			propose(t, leader, fmt.Sprintf("e%d", i))
		}
		// Added through the follower: the request goes to the leader.
		r := c.addReplica(c.followers()[0])
		c.waitConverged(20)
		holdsFor(t, 3*time.Second, "the leader's promotion rounds", func() error { return c.isReplicaEverywhere(r.id) })
		if self := r.Self(); self.Voter || !self.NonVoter {
			t.Fatalf("the replica's Self() is %+v, want a read replica", self)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 5 {
			data := fmt.Sprintf("w%d", i)
			propose(t, leader, data)
			if err := r.ReadBarrier(ctx); err != nil {
				t.Fatalf("ReadBarrier on the replica: %v", err)
			}
			if got := c.fsm(r.id).list(); got[len(got)-1] != data {
				t.Fatalf("after ReadBarrier the replica's last entry is %q, want %q", got[len(got)-1], data)
			}
		}
		propose(t, r, "from the replica") // forwarded, then applied here
		if got := c.fsm(r.id).list(); got[len(got)-1] != "from the replica" {
			t.Fatalf("read-your-writes on the replica: last entry %q", got[len(got)-1])
		}
		c.waitConverged(26)
		if err := c.isReplicaEverywhere(r.id); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReadReplicaIsNotCountedTowardQuorum: 2 voters and a read replica;
// with one voter stopped nothing commits and the replica never leads.
func TestReadReplicaIsNotCountedTowardQuorum(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, onDisk(dir))
		leader := c.leader()
		r := c.addReplica(leader)
		propose(t, leader, "before")
		c.waitConverged(1)
		voter := c.followers()[0]
		if voter == r {
			voter = c.followers()[1]
		}
		if err := voter.Stop(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := leader.ProposeContext(ctx, []byte("without quorum"))
		cancel()
		if err == nil {
			t.Fatal("a proposal committed with 1 of 2 voters up (the read replica counted toward quorum)")
		}
		holdsFor(t, 3*time.Second, "with 1 of 2 voters up", func() error {
			if n := c.fsm(r.id).len(); n != 1 {
				return fmt.Errorf("the replica applied %d entries, want 1: something committed", n)
			}
			if n := c.fsm(leader.id).len(); n != 1 {
				return fmt.Errorf("the voter applied %d entries, want 1: something committed", n)
			}
			if st := r.Status().State; st != Follower {
				return fmt.Errorf("the replica is %s; a non-voter never campaigns", st)
			}
			return nil
		})
		back := c.restart(voter, nil)
		propose(t, back, "quorum again")
		// "without quorum" may have committed since (its outcome was unknown):
		// back has applied all that precedes its own proposal.
		want := c.fsm(back.id).len()
		c.waitConverged(want)
		if err := c.isReplicaEverywhere(r.id); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReadReplicaSurvivesRestart: a replica restarted without NonVoter
// stays a replica, and a voter restarted with NonVoter stays a voter.
func TestReadReplicaSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, onDisk(dir))
		leader := c.leader()
		r := c.addReplica(leader)
		propose(t, leader, "before")
		c.waitConverged(1)

		r = c.restart(r, func(cfg *NodeConfig) { cfg.NonVoter = false })
		propose(t, leader, "after the replica's restart")
		c.waitConverged(2)
		holdsFor(t, 2*time.Second, "the restarted replica", func() error { return c.isReplicaEverywhere(r.id) })

		var voter *Node
		for _, n := range c.followers() {
			if n != r {
				voter = n
			}
		}
		voter = c.restart(voter, func(cfg *NodeConfig) { cfg.NonVoter = true })
		propose(t, voter, "after the voter's restart")
		c.waitConverged(3)
		holdsFor(t, 2*time.Second, "the voter restarted with NonVoter", func() error {
			for _, n := range c.running() {
				if p, ok := memberAs(n, voter.id); !ok || !p.Voter || p.NonVoter {
					return fmt.Errorf("node %d sees %+v, want a voter", n.id, p)
				}
			}
			return c.isReplicaEverywhere(r.id)
		})
		// The leader of a new term must know the replica too.
		if err := c.leader().TransferLeadership(context.Background()); err != nil {
			t.Fatalf("TransferLeadership: %v", err)
		}
		propose(t, c.leader(), "new term")
		holdsFor(t, 2*time.Second, "after a leader change", func() error { return c.isReplicaEverywhere(r.id) })
	})
}

func TestPromote(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, onDisk(dir))
		leader := c.leader()
		r := c.addReplica(leader)
		propose(t, leader, "before")
		c.waitConverged(1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Promote(ctx, 999); !errors.Is(err, ErrPeerNotFound) {
			t.Fatalf("Promote(unknown): got %v, want ErrPeerNotFound", err)
		}
		if err := r.Promote(ctx, 0); !errors.Is(err, ErrInvalidPeer) {
			t.Fatalf("Promote(0): got %v, want ErrInvalidPeer", err)
		}
		if err := r.Promote(ctx, leader.id); err != nil {
			t.Fatalf("Promote(a voter): %v", err)
		}
		// On the replica itself: the request goes to the leader, and returns
		// once the promotion is committed.
		if err := r.Promote(ctx, r.id); err != nil {
			t.Fatalf("Promote(replica): %v", err)
		}
		if p, ok := memberAs(leader, r.id); !ok || !p.Voter || p.NonVoter {
			t.Fatalf("after Promote the leader sees %+v, want a voter", p)
		}
		c.waitVoters(3)
		if err := r.Promote(ctx, r.id); err != nil {
			t.Fatalf("Promote again: %v", err)
		}
		// A voter now: with it, 2 of 3 voters are a quorum.
		var other *Node
		for _, n := range c.followers() {
			if n != r {
				other = n
			}
		}
		if err := other.Stop(); err != nil {
			t.Fatal(err)
		}
		propose(t, r, "two of three")
		c.restart(other, nil)
		c.waitConverged(2)
		if p, ok := memberAs(c.leader(), r.id); !ok || !p.Voter || p.NonVoter {
			t.Fatalf("after the restart the leader sees %+v, want a voter", p)
		}
	})
}

// TestPromoteWaitsForCatchUp: a replica that is cut off is not promoted
// (it could cost the cluster its quorum); Promote says so when its context
// ends, and the leader promotes the replica once it is back.
func TestPromoteWaitsForCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, nil)
		leader := c.leader()
		r := c.addReplica(leader)
		c.waitConverged(0)
		c.partition(r.id)
		for i := range 300 {
			propose(t, leader, fmt.Sprintf("e%d", i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := leader.Promote(ctx, r.id)
		cancel()
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Promote of a cut-off replica: got %v, want ErrTimeout and DeadlineExceeded", err)
		}
		if p, _ := memberAs(leader, r.id); p.Voter || p.NonVoter {
			t.Fatalf("the leader sees %+v, want a non-voter no longer flagged as a replica", p)
		}
		c.heal(r.id)
		c.waitVoters(3)
		c.waitConverged(300)
	})
}

// slowFSM is a testFSM whose Apply takes delay (of synctest's virtual time).
type slowFSM struct {
	*testFSM
	delay time.Duration
}

func (f slowFSM) Apply(d LogData) error {
	time.Sleep(f.delay)
	return f.testFSM.Apply(d)
}

// TestNewLeaderWithLaggingFSMKeepsReplica: a leader's commit index can run
// ahead of its FSM, which holds the replica flags. A follower whose FSM is
// still applying older entries when it takes over must not take the
// replica, whose flag it has not applied yet, for a member to promote.
func TestNewLeaderWithLaggingFSMKeepsReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, nil)
		leader := c.leader()
		slow := c.addNodeWith(false, func(cfg *NodeConfig) {
			cfg.FSM = slowFSM{testFSM: c.fsm(cfg.ID), delay: 50 * time.Millisecond}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := leader.AddPeer(ctx, Peer{ID: slow.id, Host: "127.0.0.1", RaftPort: int(10000 + slow.id)}); err != nil {
			t.Fatalf("AddPeer: %v", err)
		}
		c.waitVoters(2)
		for i := range 40 {
			propose(t, leader, fmt.Sprintf("e%d", i)) // the slow follower applies these for 2s
		}
		r := c.addReplica(leader)
		if err := leader.TransferLeadership(ctx); err != nil {
			t.Fatalf("TransferLeadership: %v", err)
		}
		testutil.WaitFor(t, 5*time.Second, "the slow follower to take over", slow.IsLeader)
		if got := c.fsm(slow.id).len(); got == 40 {
			t.Fatal("the new leader's FSM has caught up already; the test needs it behind")
		}
		holdsFor(t, 4*time.Second, "a new leader whose FSM lags", func() error {
			p, ok := memberAs(slow, r.id)
			if !ok || p.Voter {
				return fmt.Errorf("the new leader sees the replica as %+v (member %v)", p, ok)
			}
			return nil
		})
		c.waitConverged(40)
		if err := c.isReplicaEverywhere(r.id); err != nil {
			t.Fatal(err)
		}
	})
}
