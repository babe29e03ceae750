package canoe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// counterFSM is a ResultFSM: "incr" answers the new value; "cas:OLD:NEW"
// sets the value to NEW if it is OLD and answers the value it found;
// "fail" fails with errFail; "panic" panics.
type counterFSM struct {
	mu sync.Mutex // guards v
	v  int
}

func (f *counterFSM) ApplyResult(d LogData) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch s := string(d); {
	case s == "incr":
		f.v++
		return strconv.AppendInt(nil, int64(f.v), 10), nil
	case s == "fail":
		return nil, errFail
	case s == "panic":
		panic("asked to panic")
	case len(s) > 4 && s[:4] == "cas:":
		var old, next int
		if _, err := fmt.Sscanf(s, "cas:%d:%d", &old, &next); err != nil {
			return nil, err
		}
		found := f.v
		if found == old {
			f.v = next
		}
		return strconv.AppendInt(nil, int64(found), 10), nil
	}
	return nil, fmt.Errorf("unknown command %q", d)
}

func (f *counterFSM) Apply(d LogData) error {
	_, err := f.ApplyResult(d)
	return err
}

func (f *counterFSM) Snapshot() (SnapshotData, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strconv.AppendInt(nil, int64(f.v), 10), nil
}

func (f *counterFSM) Restore(d SnapshotData) error {
	v, err := strconv.Atoi(string(d))
	f.mu.Lock()
	f.v = v
	f.mu.Unlock()
	return err
}

func (f *counterFSM) value() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v
}

func withCounters(fsms map[uint64]*counterFSM, mu *sync.Mutex) func(*NodeConfig) {
	return func(cfg *NodeConfig) {
		f := &counterFSM{}
		mu.Lock()
		fsms[cfg.ID] = f
		mu.Unlock()
		cfg.FSM = f
	}
}

// TestProposeResult: ProposeResult answers with the FSM's value on the
// leader and on a follower (from the follower's own FSM), per proposal
// under concurrency (batches), and Propose still works for a ResultFSM.
func TestProposeResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		fsms := map[uint64]*counterFSM{}
		c := newTestCluster(t, 3, withCounters(fsms, &mu))
		ctx := context.Background()
		leader, f := c.leader(), c.followers()[0]
		for i, n := range []*Node{leader, f, leader, f} {
			v, err := n.ProposeResult(ctx, []byte("incr"))
			if err != nil || string(v) != strconv.Itoa(i+1) {
				t.Fatalf("incr #%d on node %d: %q, %v; want %d", i+1, n.id, v, err, i+1)
			}
		}
		if v, err := f.ProposeResult(ctx, []byte("cas:4:10")); err != nil || string(v) != "4" {
			t.Fatalf("cas on a follower: %q, %v; want it to find 4", v, err)
		}
		if v, err := leader.ProposeResult(ctx, []byte("cas:4:20")); err != nil || string(v) != "10" {
			t.Fatalf("failed cas on the leader: %q, %v; want it to find 10", v, err)
		}
		if err := f.ProposeContext(ctx, []byte("incr")); err != nil {
			t.Fatalf("Propose on a follower with a ResultFSM: %v", err)
		}

		// Many at once, on every node: each caller gets its own value, and
		// together they are 12..11+N without a gap or a repeat.
		const each = 20
		var wg sync.WaitGroup
		got := make(chan int, 3*each)
		for _, n := range c.running() {
			for range each {
				wg.Go(func() {
					v, err := n.ProposeResult(ctx, []byte("incr"))
					if err != nil {
						t.Errorf("concurrent incr on node %d: %v", n.id, err)
						return
					}
					i, _ := strconv.Atoi(string(v))
					got <- i
				})
			}
		}
		wg.Wait()
		close(got)
		seen := map[int]bool{}
		for i := range got {
			if seen[i] || i < 12 || i >= 12+3*each {
				t.Fatalf("value %d answered twice or out of range", i)
			}
			seen[i] = true
		}
		testutil.WaitFor(t, 10*time.Second, "every FSM at the last value", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, f := range fsms {
				if f.value() != 11+3*each {
					return false
				}
			}
			return true
		})
	})
}

// TestApplyErrorIsTheFSMsOwnEverywhere: an Apply error reaches the
// proposer as a *canoe.ApplyError wrapping the FSM's own error value, on
// a follower as on the leader (the follower answers from its own FSM), and
// a panic in Apply is reported the same way.
func TestApplyErrorIsTheFSMsOwnEverywhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		c := newTestCluster(t, 3, withCounters(map[uint64]*counterFSM{}, &mu))
		for _, n := range []*Node{c.leader(), c.followers()[0]} {
			_, err := n.ProposeResult(context.Background(), []byte("fail"))
			var ae *ApplyError
			if !errors.As(err, &ae) || !errors.Is(err, errFail) || ae.Index == 0 {
				t.Errorf("node %d: got %v (%T), want a *canoe.ApplyError wrapping errFail", n.id, err, err)
			}
			if _, err := n.ProposeResult(context.Background(), []byte("panic")); !errors.As(err, &ae) {
				t.Errorf("node %d: a panicking Apply gave %v, want an *ApplyError", n.id, err)
			}
		}
	})
}

// TestReadBarrierAfterManyLeaderChanges: three hundred leadership transfers
// with no write in between leave the commit index hundreds of entries
// ahead of the last entry the FSM applied (each term adds raft's no-op);
// ReadBarrier must still return at once on every node.
func TestReadBarrierAfterManyLeaderChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		propose(t, c.leader(), "before")
		for done := 0; done < 300; {
			err := c.leader().TransferLeadership(context.Background())
			switch {
			case err == nil:
				done++
			case !errors.Is(err, ErrNotLeader): // the leader moved on meanwhile
				t.Fatalf("transfer %d: %v", done, err)
			}
		}
		l := c.leader()
		st := l.Status()
		t.Logf("commit index %d, applied %d", st.CommitIndex, st.AppliedIndex)
		if st.CommitIndex-st.AppliedIndex < 280 {
			t.Fatalf("commit index %d only %d past the applied index: the test does not build the state it means to", st.CommitIndex, st.CommitIndex-st.AppliedIndex)
		}
		barriers := func(when string) {
			for _, n := range c.running() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := n.ReadBarrier(ctx); err != nil {
					t.Errorf("ReadBarrier on node %d %s: %v", n.id, when, err)
				}
				cancel()
			}
		}
		barriers("after the transfers")
		// The same after a restart of every node.
		nodes := c.running()
		for _, n := range nodes {
			if err := n.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range nodes {
			c.heal(n.id) // Stop closed its transport
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
		}
		c.leader()
		barriers("after a restart")
	})
}

// TestMembershipCallsHonorContext: with the followers unreachable and
// long timeouts, a membership change cannot commit for seconds; AddPeer
// and RemovePeer return when their context ends, saying the outcome is
// unknown, instead of waiting on raft.
func TestMembershipCallsHonorContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := Timing{HeartbeatTimeout: 5 * time.Second, ElectionTimeout: 5 * time.Second, LeaderLeaseTimeout: 5 * time.Second, CommitTimeout: time.Millisecond}
		c := newTestCluster(t, 3, func(cfg *NodeConfig) { cfg.Timing = slow })
		leader := c.leader()
		for _, f := range c.followers() {
			c.partition(f.id)
		}
		for name, call := range map[string]func(context.Context) error{
			"AddPeer": func(ctx context.Context) error {
				return leader.AddPeer(ctx, Peer{ID: 99, Host: "127.0.0.1", RaftPort: 10099})
			},
			"RemovePeer": func(ctx context.Context) error { return leader.RemovePeer(ctx, c.followers()[0].id) },
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			start := time.Now()
			err := call(ctx)
			cancel()
			if d := time.Since(start); d > 250*time.Millisecond {
				t.Errorf("%s took %v with a 200ms deadline", name, d)
			}
			if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrNoLeader) {
				t.Errorf("%s: %v, want ErrTimeout", name, err)
			}
		}
		for _, f := range c.followers() {
			c.heal(f.id)
		}
	})
}

// TestMetricsReflectStatus: the status gauges, read once per scrape.
func TestMetricsReflectStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		propose(t, leader, "x")
		rec := httptest.NewRecorder()
		leader.metrics.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body := rec.Body.String()
		st := leader.Status()
		for _, want := range []string{
			"canoe_members 3", "canoe_voters 3", "canoe_is_leader 1",
			fmt.Sprintf("canoe_raft_term %d", st.Term),
			`canoe_proposals_total{result="ok"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
}

// TestProposalSizeLimit: a proposal over MaxProposalSize is refused before it
// reaches raft, on the leader and on a follower; one of exactly the limit
// commits.
func TestProposalSizeLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		for _, n := range []*Node{c.leader(), c.followers()[0]} {
			err := n.ProposeContext(context.Background(), make([]byte, MaxProposalSize+1))
			if !errors.Is(err, ErrInvalidProposal) {
				t.Errorf("node %d: a proposal of MaxProposalSize+1 bytes: %v, want ErrInvalidProposal", n.id, err)
			}
		}
		big := bytes.Repeat([]byte("x"), MaxProposalSize)
		if err := c.followers()[0].ProposeContext(context.Background(), big); err != nil {
			t.Fatalf("a proposal of MaxProposalSize bytes on a follower: %v", err)
		}
	})
}
