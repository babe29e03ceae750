package test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// TestRestartEveryNodeKeepsState proposes 1,000 entries to a 3-node cluster
// from every node, then restarts each node in turn as a new Node on the same
// DataDir (ID 0, ports 0, fresh FSM) and proposes more after each restart.
// Small snapshot thresholds make the restarts restore from a snapshot plus
// the log. At the end every FSM holds the same entries in the same order,
// each exactly once, and every node kept its ID.
func TestRestartEveryNodeKeepsState(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{snapshot: &canoe.SnapshotConfig{
		Interval:         20 * time.Millisecond,
		MinCommittedLogs: 64,
	}})
	ms := c.running()
	ids := make([]uint64, len(ms))
	for i, m := range ms {
		ids[i] = m.id
	}

	// A leader may step down under load (LocalProfile's 100ms lease on a
	// slow machine): a proposal then fails with ErrUnknownOutcome and may
	// or may not be applied. Every other error fails the test; every
	// acknowledged proposal must be applied exactly once.
	const total, workers = 1000, 12 // 4 proposers per node
	var wg sync.WaitGroup
	var mu sync.Mutex // guards uncertain
	uncertain := map[string]bool{}
	for w := range workers {
		m := ms[w%len(ms)]
		wg.Go(func() {
			for k := w; k < total; k += workers {
				v := fmt.Sprintf("e%04d", k)
				err := propose(m, v)
				if errors.Is(err, canoe.ErrUnknownOutcome) {
					t.Logf("propose %q on %v: %v", v, m, err)
					mu.Lock()
					uncertain[v] = true
					mu.Unlock()
					continue
				}
				if err != nil {
					t.Errorf("propose %q on %v: %v", v, m, err)
					return
				}
				if !m.fsm.has(v) {
					t.Errorf("propose %q on %v returned nil but its FSM does not hold it", v, m)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var want []string // acknowledged proposals
	for k := range total {
		if v := fmt.Sprintf("e%04d", k); !uncertain[v] {
			want = append(want, v)
		}
	}
	if len(uncertain) > 0 {
		t.Logf("%d proposals with unknown outcome (leader changes under load)", len(uncertain))
	}
	waitSameState(t, 30*time.Second, -1, ms...)

	for i, m := range ms {
		c.restart(m)
		c.leader()
		// Propose on the restarted node and on another one.
		other := ms[(i+1)%len(ms)]
		for j := range 3 {
			for _, p := range []*member{m, other} {
				v := fmt.Sprintf("r%d-%v-%d", i, p, j)
				mustPropose(t, p, v)
				want = append(want, v)
			}
		}
		waitSameState(t, 30*time.Second, -1, ms...)
	}

	got := ms[0].fsm.state().Entries
	counts := make(map[string]int, len(got))
	for _, e := range got {
		counts[e]++
	}
	for _, v := range want {
		if counts[v] != 1 {
			t.Errorf("acknowledged entry %q applied %d times, want once", v, counts[v])
		}
	}
	for v, n := range counts {
		if n != 1 || (!uncertain[v] && !slices.Contains(want, v)) {
			t.Errorf("entry %q applied %d times; it was never proposed or is a duplicate", v, n)
		}
	}
	for i, m := range ms {
		if m.node.UniqueID() != ids[i] || m.node.Self().ID != ids[i] {
			t.Errorf("node %d has ID %x (Self %x) after restart, want %x", i, m.node.UniqueID(), m.node.Self().ID, ids[i])
		}
	}
	c.waitVoters(3)
}

// TestProposeFromEveryNodeConcurrently runs 8 proposers on each of 3 nodes,
// checks read-your-writes after every proposal on the proposing node, and
// then that an FSM.Apply error comes back to the proposer (from a follower
// and from the leader) while the cluster keeps serving.
func TestProposeFromEveryNodeConcurrently(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	ms := c.running()

	const perNode, perProposer = 8, 25
	var wg sync.WaitGroup
	for _, m := range ms {
		for g := range perNode {
			wg.Go(func() {
				for k := range perProposer {
					v := fmt.Sprintf("%v/g%d/%d", m, g, k)
					if err := propose(m, v); err != nil {
						t.Errorf("propose %q on %v: %v", v, m, err)
						return
					}
					if !m.fsm.has(v) {
						t.Errorf("read-your-writes: propose %q on %v returned nil but its FSM does not hold it", v, m)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	total := len(ms) * perNode * perProposer
	waitSameState(t, 30*time.Second, total, ms...)
	seen := map[string]int{}
	for _, e := range ms[0].fsm.state().Entries {
		seen[e]++
	}
	for _, m := range ms {
		for g := range perNode {
			for k := range perProposer {
				if v := fmt.Sprintf("%v/g%d/%d", m, g, k); seen[v] != 1 {
					t.Errorf("entry %q applied %d times, want once", v, seen[v])
				}
			}
		}
	}

	// FSM.Apply errors come back to the proposer.
	f, l := c.followers()[0], c.leader()
	for _, tc := range []struct {
		name string
		m    *member
	}{{"follower", f}, {"leader", l}} {
		data := "fail:from-" + tc.name
		err := propose(tc.m, data)
		var ae *canoe.ApplyError
		if !errors.As(err, &ae) {
			t.Fatalf("propose %q on the %s: got %v (%T), want a *canoe.ApplyError", data, tc.name, err, err)
		}
		wantMsg := fmt.Errorf("%w: %s", errRefused, data).Error()
		if ae.Err == nil || ae.Err.Error() != wantMsg {
			t.Errorf("propose %q on the %s: ApplyError.Err = %v, want the FSM's message %q", data, tc.name, ae.Err, wantMsg)
		}
		if ae.Index == 0 {
			t.Errorf("propose %q on the %s: ApplyError.Index = 0, want the entry's log index", data, tc.name)
		}
		if tc.m == l && !errors.Is(err, errRefused) {
			t.Errorf("propose %q on the leader: %v does not match the FSM's own error", data, err)
		}
	}
	// The cluster keeps serving, from every node.
	for _, m := range ms {
		mustPropose(t, m, fmt.Sprintf("after-failures-%v", m))
	}
	waitSameState(t, 30*time.Second, total+len(ms), ms...)
	for _, m := range ms {
		if got := m.fsm.state().Failed; len(got) != 2 || got[0] != "fail:from-follower" || got[1] != "fail:from-leader" {
			t.Errorf("node %v refused %q, want [fail:from-follower fail:from-leader]", m, got)
		}
	}
}

// TestReadBarrierOnFollowerSeesLatestWrite proposes on the leader and then
// checks that, once ReadBarrier returns on a follower, its FSM has the write.
func TestReadBarrierOnFollowerSeesLatestWrite(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	l, fs := c.leader(), c.followers()
	for i := range 50 {
		v := fmt.Sprintf("rb-%d", i)
		mustPropose(t, l, v)
		for _, f := range fs {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := f.node.ReadBarrier(ctx)
			cancel()
			if err != nil {
				t.Fatalf("round %d: ReadBarrier on follower %v: %v", i, f, err)
			}
			if !f.fsm.has(v) {
				t.Fatalf("round %d: ReadBarrier on follower %v returned nil but its FSM lacks %q (it has %d entries)", i, f, v, f.fsm.len())
			}
		}
	}
}

// TestNoLeaderErrorIsBounded stops two of three nodes and checks that a
// proposal (and a read barrier) on the survivor fails with ErrNoLeader or
// ErrTimeout once its context ends, instead of hanging.
func TestNoLeaderErrorIsBounded(t *testing.T) {
	for _, survivorLeads := range []bool{true, false} {
		name := "survivor was follower"
		if survivorLeads {
			name = "survivor was leader"
		}
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 3, clusterOpts{})
			survivor := c.leader()
			if !survivorLeads {
				survivor = c.followers()[0]
			}
			// Stop the others, a leader first so that it hands over to a
			// node still running.
			var others []*member
			for _, m := range c.running() {
				if m != survivor {
					others = append(others, m)
				}
			}
			if others[1].node.IsLeader() {
				others[0], others[1] = others[1], others[0]
			}
			for _, m := range others {
				if err := stopNode(m); err != nil {
					t.Fatalf("stop %v: %v", m, err)
				}
			}
			testutil.WaitFor(t, 10*time.Second, "the survivor to know no leader", func() bool {
				return survivor.node.LeaderID() == 0
			})

			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := survivor.node.ProposeContext(ctx, []byte("orphan"))
			cancel()
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("propose without a quorum returned nil")
			}
			if !errors.Is(err, canoe.ErrNoLeader) && !errors.Is(err, canoe.ErrTimeout) {
				t.Errorf("propose without a quorum: got %v, want ErrNoLeader or ErrTimeout", err)
			}
			if elapsed > 3*time.Second {
				t.Errorf("propose with a 2s context returned after %v, want at most ~3s", elapsed)
			}

			start = time.Now()
			ctx, cancel = context.WithTimeout(context.Background(), time.Second)
			err = survivor.node.ReadBarrier(ctx)
			cancel()
			elapsed = time.Since(start)
			if !errors.Is(err, canoe.ErrNoLeader) && !errors.Is(err, canoe.ErrTimeout) {
				t.Errorf("ReadBarrier without a quorum: got %v, want ErrNoLeader or ErrTimeout", err)
			}
			if elapsed > 2*time.Second {
				t.Errorf("ReadBarrier with a 1s context returned after %v, want at most ~2s", elapsed)
			}
		})
	}
}

// TestRestartLeaderUnderLoad restarts the current leader eight times while
// proposers keep writing through every node. No acknowledged write is lost,
// nothing is applied twice, nothing unproposed appears, and the FSMs end
// identical.
func TestRestartLeaderUnderLoad(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{snapshot: &canoe.SnapshotConfig{
		Interval:         20 * time.Millisecond,
		MinCommittedLogs: 64,
	}})
	var (
		mu       sync.Mutex // guards acked, proposed
		acked    = map[string]bool{}
		proposed = map[string]bool{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range 6 {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				targets := c.snapshot()
				m := targets[(p+k)%len(targets)]
				v := fmt.Sprintf("load-%d-%d", p, k)
				mu.Lock()
				proposed[v] = true
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := m.node.ProposeContext(ctx, []byte(v))
				cancel()
				switch {
				case err == nil:
					if !m.fsm.has(v) {
						t.Errorf("propose %q on %v returned nil but its FSM does not hold it", v, &m)
					}
					mu.Lock()
					acked[v] = true
					mu.Unlock()
				case errors.Is(err, canoe.ErrNotRunning), errors.Is(err, canoe.ErrUnknownOutcome),
					errors.Is(err, canoe.ErrTimeout), errors.Is(err, canoe.ErrNoLeader):
					// The node is restarting or lost its leader: allowed.
					// Wait a moment so that a stopped node is not spun on.
					time.Sleep(5 * time.Millisecond)
				default:
					t.Errorf("propose %q on %v: unexpected error %v", v, &m, err)
				}
			}
		})
	}
	for range 8 {
		c.restart(c.leader())
		c.waitVoters(3)
	}
	close(stop)
	wg.Wait()

	ms := c.running()
	waitSameState(t, 30*time.Second, -1, ms...)
	counts := map[string]int{}
	for _, e := range ms[0].fsm.state().Entries {
		counts[e]++
	}
	for v := range acked {
		if counts[v] != 1 {
			t.Errorf("acknowledged write %q applied %d times, want once", v, counts[v])
		}
	}
	for v, n := range counts {
		if !proposed[v] {
			t.Errorf("entry %q was never proposed", v)
		}
		if n != 1 {
			t.Errorf("entry %q applied %d times", v, n)
		}
	}
	t.Logf("%d acknowledged writes, %d applied, %d proposed", len(acked), len(counts), len(proposed))
}
