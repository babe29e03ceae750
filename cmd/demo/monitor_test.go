package main

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// scriptedSource returns the view it is given, then the same until told
// otherwise.
type scriptedSource struct {
	mu    sync.Mutex // guards view, calls
	view  clusterView
	calls int
}

func (s *scriptedSource) set(nodes ...nodeView) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view = clusterView{Nodes: nodes}
	s.view.finish()
}

func (s *scriptedSource) Cluster(context.Context) clusterView {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	v := s.view
	v.Nodes = append([]nodeView{}, s.view.Nodes...)
	return v
}

func writes(n uint64) *uint64 { return &n }

func running(id, state string, term, commit uint64, w *uint64, gen uint64) nodeView {
	return nodeView{ID: id, State: state, Voter: true, Term: term, CommitIndex: commit, AppliedIndex: commit, LastIndex: commit, Writes: w, writesGen: gen}
}

func nodeByID(v clusterView, id string) nodeView {
	for _, n := range v.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nodeView{}
}

func TestMonitor(t *testing.T) {
	src := &scriptedSource{}
	events := newEventLog(hclog.NewNullLogger())
	m := newMonitor(src, events)
	t0 := time.Unix(1700000000, 0)
	clock := t0
	m.now = func() time.Time { return clock }
	events.now = m.now
	ctx := context.Background()
	step := func(d time.Duration, nodes ...nodeView) clusterView {
		t.Helper()
		clock = clock.Add(d)
		src.set(nodes...)
		m.refresh(ctx, true)
		return m.current(ctx)
	}

	step(0, running("1", "leader", 2, 10, writes(5), 1), running("2", "follower", 2, 10, writes(5), 2))
	// Node 2 stops: it keeps its last term and indexes, marked stale; the
	// stop is an event.
	v := step(time.Second, running("1", "leader", 2, 20, writes(15), 1), nodeView{ID: "2", State: "stopped", Voter: true})
	n2 := nodeByID(v, "2")
	if !n2.Stale || n2.Term != 2 || n2.CommitIndex != 10 || n2.LastSeen != t0.UnixMilli() || !n2.Voter {
		t.Fatalf("stopped node shown as %+v, want term 2, commit 10, stale, last seen at t0", n2)
	}
	if ev := events.recent(); len(ev) != 1 || ev[0].Kind != kindNode || ev[0].What != "stopped" || ev[0].Node != "2" || ev[0].Text != "node 2 stopped" {
		t.Fatalf("events %+v, want one 'node 2 stopped'", ev)
	}
	// It starts again with a new store: its rate is unknown for one sample.
	step(time.Second, running("1", "leader", 2, 30, writes(25), 1), running("2", "follower", 2, 30, writes(2), 3))
	step(2*time.Second, running("1", "leader", 2, 40, writes(45), 1), running("2", "follower", 2, 40, writes(10), 3))
	// Node 2 becomes unreachable, then answers again.
	step(time.Second, running("1", "leader", 2, 40, writes(45), 1), nodeView{ID: "2", State: "unreachable", Voter: true})
	step(time.Second, running("1", "leader", 2, 40, writes(45), 1), running("2", "follower", 2, 40, nil, 0))

	var whats []string
	for _, e := range events.recent() {
		whats = append(whats, e.Node+" "+e.What)
	}
	if got, want := len(whats), 4; got != want || whats[1] != "2 started" || whats[2] != "2 unreachable" || whats[3] != "2 answers" {
		t.Fatalf("events %q, want 2 stopped, started, unreachable, answers", whats)
	}

	h := m.history(0)
	if len(h) != 6 {
		t.Fatalf("%d samples, want 6", len(h))
	}
	rate := func(s sample, id string) string {
		for _, p := range s.Nodes {
			if p.ID == id {
				if p.WPS == nil {
					return "nil"
				}
				return strconv.FormatFloat(*p.WPS, 'f', -1, 64)
			}
		}
		return "absent"
	}
	for i, tc := range []struct{ n1, n2 string }{
		{"nil", "nil"}, // first sample: no previous
		{"10", "nil"},  // 10 writes in 1 s; node 2 stopped
		{"10", "nil"},  // node 2: a new store (gen 3)
		{"10", "4"},    // 20 writes in 2 s; node 2: 8 in 2 s
		{"0", "nil"},   // node 2 unreachable
		{"0", "nil"},   // node 2 answers, writes unknown
	} {
		if got := rate(h[i], "1"); got != tc.n1 {
			t.Errorf("sample %d: node 1 rate %s, want %s", i, got, tc.n1)
		}
		if got := rate(h[i], "2"); got != tc.n2 {
			t.Errorf("sample %d: node 2 rate %s, want %s", i, got, tc.n2)
		}
	}
	if h[1].Nodes[1].Commit != 10 || h[1].Nodes[1].State != "stopped" {
		t.Errorf("stopped node's sample %+v, want its last commit 10 and state stopped", h[1].Nodes[1])
	}
	if got := m.history(h[3].T); len(got) != 2 || got[0].T != h[4].T {
		t.Errorf("history after sample 3: %d samples, want samples 4 and 5", len(got))
	}

	// The history keeps the newest m.keep samples.
	m.keep = 3
	step(time.Second, running("1", "leader", 2, 50, writes(55), 1))
	if h := m.history(0); len(h) != 3 || h[2].T != clock.UnixMilli() {
		t.Fatalf("history of %d samples ending at %d, want 3 ending now", len(h), h[len(h)-1].T)
	}
}

// TestMonitorRun: run samples at once and on every event, and returns
// when its context ends.
func TestMonitorRun(t *testing.T) {
	src := &scriptedSource{}
	src.set(running("1", "leader", 1, 1, nil, 0))
	events := newEventLog(hclog.NewNullLogger())
	m := newMonitor(src, events)
	m.interval = time.Hour // only kicks refresh
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.run(ctx)
	}()
	calls := func() int {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.calls
	}
	testutil.WaitFor(t, 5*time.Second, "the first sample", func() bool { return calls() >= 1 && len(m.history(0)) == 1 })
	src.set(running("1", "follower", 2, 1, nil, 0))
	events.add(kindLeader, "none", "", "no leader", "no leader")
	testutil.WaitFor(t, 5*time.Second, "a refresh after the event", func() bool { return m.current(ctx).Nodes[0].State == "follower" })
	if n := len(m.history(0)); n != 1 {
		t.Errorf("a kick added a history sample: %d samples, want 1", n)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
