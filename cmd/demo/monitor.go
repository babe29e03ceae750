package main

import (
	"context"
	"math"
	"sync"
	"time"
)

const (
	sampleInterval = time.Second // between two history samples
	historySamples = 300         // samples kept: five minutes
)

// clusterSource describes the whole cluster as this process sees it.
type clusterSource interface {
	Cluster(ctx context.Context) clusterView
}

// sample is the cluster at one moment, for the dashboard's charts.
type sample struct {
	T      int64         `json:"t"`      // Unix milliseconds
	Leader string        `json:"leader"` // "" if none
	Nodes  []samplePoint `json:"nodes"`
}

// samplePoint is one node in a sample.
type samplePoint struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Commit uint64 `json:"commit"` // last known when the node is not running
	// WPS is the commands per second the node's store applied since the
	// previous sample; nil when not known (a store in another process, a
	// node that just started).
	WPS *float64 `json:"wps,omitempty"`
}

// monitor samples a clusterSource for the dashboard, once per interval and
// whenever kicked (after an event, a stop or a start). It keeps the latest
// view, a bounded history for the charts and each node's last view while
// it answered, which stands in for a stopped or unreachable node's indexes.
// A node that stops, starts, becomes unreachable or answers again is an
// event.
type monitor struct {
	source   clusterSource
	events   *eventLog
	interval time.Duration
	keep     int // history samples kept
	now      func() time.Time
	kicks    chan struct{}

	refreshMu sync.Mutex // serializes refresh

	mu         sync.Mutex // guards view, viewed, samples, last, prevWrites
	view       clusterView
	viewed     bool // view holds a refresh
	samples    []sample
	last       map[string]seenNode
	prevWrites map[string]writeMark
}

// seenNode is a node's latest view while it answered.
type seenNode struct {
	view nodeView
	at   time.Time
}

// writeMark is a node's write counter at the previous history sample.
type writeMark struct {
	gen, writes uint64
	at          time.Time
}

// newMonitor returns a monitor of source that records node events in
// events and refreshes whenever events gets a new one.
func newMonitor(source clusterSource, events *eventLog) *monitor {
	m := &monitor{
		source:     source,
		events:     events,
		interval:   sampleInterval,
		keep:       historySamples,
		now:        time.Now,
		kicks:      make(chan struct{}, 1),
		last:       map[string]seenNode{},
		prevWrites: map[string]writeMark{},
	}
	events.notify(m.kick)
	return m
}

// start runs the monitor in a goroutine until stop is called; stop waits
// for it.
func (m *monitor) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// run samples until ctx ends.
func (m *monitor) run(ctx context.Context) {
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	m.refresh(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.refresh(ctx, true)
		case <-m.kicks:
			m.refresh(ctx, false)
		}
	}
}

// kick asks run for a refresh soon. It never blocks.
func (m *monitor) kick() {
	select {
	case m.kicks <- struct{}{}:
	default:
	}
}

// current returns the latest view, refreshing first if there is none yet.
func (m *monitor) current(ctx context.Context) clusterView {
	m.mu.Lock()
	viewed := m.viewed
	m.mu.Unlock()
	if !viewed {
		m.refresh(ctx, false)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.view
	v.Nodes = append([]nodeView{}, m.view.Nodes...)
	return v
}

// history returns the samples taken after Unix millisecond t, oldest first.
func (m *monitor) history(t int64) []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []sample{}
	for _, s := range m.samples {
		if s.T > t {
			out = append(out, s)
		}
	}
	return out
}

// refresh asks the source for a new view; with record it also appends a
// history sample.
func (m *monitor) refresh(ctx context.Context, record bool) {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	v := m.source.Cluster(ctx)
	now := m.now()

	type change struct{ what, node, text, msg string }
	var changes []change
	m.mu.Lock()
	prev := map[string]string{}
	if m.viewed {
		for _, n := range m.view.Nodes {
			prev[n.ID] = n.State
		}
	}
	for i := range v.Nodes {
		n := &v.Nodes[i]
		if n.running() {
			m.last[n.ID] = seenNode{view: *n, at: now}
		} else if seen, ok := m.last[n.ID]; ok {
			n.Term, n.CommitIndex, n.AppliedIndex, n.LastIndex = seen.view.Term, seen.view.CommitIndex, seen.view.AppliedIndex, seen.view.LastIndex
			n.Stale, n.LastSeen = true, seen.at.UnixMilli()
		}
		was, known := prev[n.ID]
		if !known || was == n.State {
			continue
		}
		wasUp := nodeView{State: was}.running()
		switch {
		case wasUp && n.State == "stopped":
			changes = append(changes, change{"stopped", n.ID, "node " + n.ID + " stopped", "node stopped"})
		case wasUp && n.State == "unreachable":
			changes = append(changes, change{"unreachable", n.ID, "node " + n.ID + " unreachable", "node unreachable"})
		case !wasUp && n.running() && was == "stopped":
			changes = append(changes, change{"started", n.ID, "node " + n.ID + " started", "node started"})
		case !wasUp && n.running():
			changes = append(changes, change{"answers", n.ID, "node " + n.ID + " answers again", "node answers again"})
		}
	}
	m.view, m.viewed = v, true
	if record {
		m.record(v, now)
	}
	m.mu.Unlock()
	for _, c := range changes {
		m.events.add(kindNode, c.what, c.node, c.text, c.msg, "node", c.node)
	}
}

// record appends a history sample of v taken at now. m.mu is held.
func (m *monitor) record(v clusterView, now time.Time) {
	s := sample{T: now.UnixMilli(), Leader: v.LeaderID, Nodes: make([]samplePoint, 0, len(v.Nodes))}
	for _, n := range v.Nodes {
		p := samplePoint{ID: n.ID, State: n.State, Commit: n.CommitIndex}
		if n.Writes == nil {
			delete(m.prevWrites, n.ID)
		} else {
			cur := writeMark{gen: n.writesGen, writes: *n.Writes, at: now}
			if prev, ok := m.prevWrites[n.ID]; ok && prev.gen == cur.gen && cur.writes >= prev.writes {
				if dt := cur.at.Sub(prev.at).Seconds(); dt > 0 {
					r := math.Round(float64(cur.writes-prev.writes)/dt*10) / 10
					p.WPS = &r
				}
			}
			m.prevWrites[n.ID] = cur
		}
		s.Nodes = append(s.Nodes, p)
	}
	m.samples = append(m.samples, s)
	if len(m.samples) > m.keep {
		m.samples = append(m.samples[:0:0], m.samples[len(m.samples)-m.keep:]...)
	}
}
