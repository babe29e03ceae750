package main

import (
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
)

const maxEvents = 200 // events kept for the dashboard

// Event kinds, as the dashboard's timeline groups them.
const (
	kindLeader   = "leader"   // Node is the new leader, "" for none
	kindMember   = "member"   // Node joined, was promoted or was removed
	kindNode     = "node"     // Node stopped, started, became unreachable or answered again
	kindSnapshot = "snapshot" // Node took or restored a snapshot
)

// eventEntry is one cluster event as the dashboard lists it.
type eventEntry struct {
	Seq  uint64 `json:"seq"`  // 1, 2, ...: the cursor of GET /api/dashboard?events_after=
	T    int64  `json:"t"`    // Unix milliseconds
	Time string `json:"time"` // HH:MM:SS.mmm, local time
	Kind string `json:"kind"` // leader, member, node or snapshot
	// What is the change within Kind: leads, none (leader); added,
	// promoted, removed (member); stopped, started, unreachable, answers
	// (node); taken, restored (snapshot).
	What string `json:"what"`
	Node string `json:"node"` // the node the event is about; "" for "no leader"
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
	now        func() time.Time

	mu      sync.Mutex // guards entries, seq, leaders, onAdd
	onAdd   func()     // called after each new event, outside mu; see notify
	entries []eventEntry
	seq     uint64
	leaders map[[2]uint64]bool // (term, leader) pairs already logged
}

func newEventLog(logger hclog.Logger) *eventLog {
	return &eventLog{logger: logger, leaders: map[[2]uint64]bool{}, now: time.Now}
}

// recent returns every kept event, oldest first.
func (l *eventLog) recent() []eventEntry { return l.since(0) }

// since returns the kept events after sequence number seq, oldest first.
func (l *eventLog) since(seq uint64) []eventEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []eventEntry{}
	for _, e := range l.entries {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// add records an event and logs msg with args.
func (l *eventLog) add(kind, what, node, text, msg string, args ...any) {
	l.logger.Info(msg, args...)
	now := l.now()
	l.mu.Lock()
	l.seq++
	l.entries = append(l.entries, eventEntry{
		Seq: l.seq, T: now.UnixMilli(), Time: now.Format("15:04:05.000"),
		Kind: kind, What: what, Node: node, Text: text,
	})
	if len(l.entries) > maxEvents {
		l.entries = append(l.entries[:0:0], l.entries[len(l.entries)-maxEvents:]...)
	}
	onAdd := l.onAdd
	l.mu.Unlock()
	if onAdd != nil {
		onAdd()
	}
}

// notify makes f be called after each new event. f must not block.
func (l *eventLog) notify(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onAdd = f
}

// observe logs one observation reported by node id; leader says whether
// that node leads now.
func (l *eventLog) observe(id uint64, leader bool, o canoe.Observation) {
	node := idString(id)
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
		term := strconv.FormatUint(ev.Term, 10)
		if ev.LeaderID == 0 {
			l.add(kindLeader, "none", "", "no leader (term "+term+", seen by node "+node+")",
				"no leader", "seen_by", node, "term", ev.Term)
		} else {
			leaderID := idString(ev.LeaderID)
			l.add(kindLeader, "leads", leaderID, "node "+leaderID+" leads (term "+term+")",
				"leader elected", "leader", leaderID, "term", ev.Term)
		}
	case canoe.PeerAdded:
		peer, as := idString(ev.ID), "non-voter"
		if ev.Voter {
			as = "voter"
		}
		l.add(kindMember, "added", peer, "node "+peer+" added as "+as,
			"peer added", "peer", peer, "voter", ev.Voter, "by", node)
	case canoe.PeerRemoved:
		peer := idString(ev.ID)
		l.add(kindMember, "removed", peer, "node "+peer+" removed", "peer removed", "peer", peer, "by", node)
	case canoe.PeerPromoted:
		peer := idString(ev.ID)
		l.add(kindMember, "promoted", peer, "node "+peer+" promoted to voter", "peer promoted to voter", "peer", peer, "by", node)
	case canoe.SnapshotTaken:
		l.add(kindSnapshot, "taken", node, "node "+node+" took a snapshot at index "+strconv.FormatUint(ev.Index, 10),
			"snapshot taken", "node", node, "index", ev.Index, "term", ev.Term)
	case canoe.SnapshotRestored:
		l.add(kindSnapshot, "restored", node, "node "+node+" restored a snapshot at index "+strconv.FormatUint(ev.Index, 10),
			"snapshot restored", "node", node, "index", ev.Index, "term", ev.Term)
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
