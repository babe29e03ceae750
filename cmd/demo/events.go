package main

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
)

const maxEvents = 20 // events kept for the dashboard

// eventEntry is one cluster event as the dashboard lists it.
type eventEntry struct {
	Time string `json:"time"` // HH:MM:SS.mmm
	Text string `json:"text"`
}

// eventLog writes one log line per cluster event and keeps the latest for
// the dashboard. Every node of a one-process cluster reports the same
// leader change and membership change; the log writes each once.
type eventLog struct {
	logger hclog.Logger
	// leaderOnly logs membership changes only as the leader reports them
	// (one-process mode: every node reports them, and a restarted node
	// replays old ones from its log).
	leaderOnly bool

	mu      sync.Mutex // guards entries, leaders
	entries []eventEntry
	leaders map[[2]uint64]bool // (term, leader) pairs already logged
}

func newEventLog(logger hclog.Logger) *eventLog {
	return &eventLog{logger: logger, leaders: map[[2]uint64]bool{}}
}

func (l *eventLog) recent() []eventEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]eventEntry{}, l.entries...)
}

func (l *eventLog) add(text string, args ...any) {
	l.logger.Info(text, args...)
	for i := 0; i+1 < len(args); i += 2 {
		text += fmt.Sprintf(" %v=%v", args[i], args[i+1])
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, eventEntry{Time: time.Now().Format("15:04:05.000"), Text: text})
	if len(l.entries) > maxEvents {
		l.entries = l.entries[len(l.entries)-maxEvents:]
	}
}

// observe logs one observation reported by node id; leader says whether
// that node leads now.
func (l *eventLog) observe(id uint64, leader bool, o canoe.Observation) {
	node := strconv.FormatUint(id, 10)
	switch o.(type) {
	case canoe.PeerAdded, canoe.PeerRemoved, canoe.PeerPromoted:
		if l.leaderOnly && !leader {
			return
		}
	}
	switch ev := o.(type) {
	case canoe.LeaderChanged:
		l.mu.Lock()
		key := [2]uint64{ev.Term, ev.LeaderID}
		seen := l.leaders[key]
		l.leaders[key] = true
		if len(l.leaders) > 1000 {
			clear(l.leaders)
		}
		l.mu.Unlock()
		if seen {
			return
		}
		if ev.LeaderID == 0 {
			l.add("no leader", "seen_by", node, "term", ev.Term)
		} else {
			l.add("leader elected", "leader", strconv.FormatUint(ev.LeaderID, 10), "term", ev.Term)
		}
	case canoe.PeerAdded:
		l.add("peer added", "peer", strconv.FormatUint(ev.ID, 10), "voter", ev.Voter, "by", node)
	case canoe.PeerRemoved:
		l.add("peer removed", "peer", strconv.FormatUint(ev.ID, 10), "by", node)
	case canoe.PeerPromoted:
		l.add("peer promoted to voter", "peer", strconv.FormatUint(ev.ID, 10), "by", node)
	case canoe.SnapshotTaken:
		l.add("snapshot taken", "node", node, "index", ev.Index, "term", ev.Term)
	case canoe.SnapshotRestored:
		l.add("snapshot restored", "node", node, "index", ev.Index, "term", ev.Term)
	case canoe.StateChanged:
		l.logger.Debug("state changed", "node", node, "from", ev.From, "to", ev.To)
	}
}

// watcher is one node's observer and the goroutine that drains it.
type watcher struct {
	node *canoe.Node
	obs  *canoe.Observer
	quit chan struct{}
	done chan struct{}
}

// watch registers an observer on node that feeds l. Call stop to end it.
func (l *eventLog) watch(node *canoe.Node) *watcher {
	ch := make(chan canoe.Observation, 128)
	w := &watcher{
		node: node,
		obs: canoe.NewObserver(ch, func(o canoe.Observation) bool {
			_, applied := o.(canoe.EntryApplied)
			return !applied
		}),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	node.RegisterObserver(w.obs)
	id := node.UniqueID()
	go func() {
		defer close(w.done)
		for {
			select {
			case o := <-ch:
				l.observe(id, node.IsLeader(), o)
			case <-w.quit:
				return
			}
		}
	}()
	return w
}

func (w *watcher) stop() {
	w.node.UnregisterObserver(w.obs)
	close(w.quit)
	<-w.done
}
