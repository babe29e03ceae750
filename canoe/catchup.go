package canoe

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// A follower learns that an entry is committed from the leader's answer to
// a forwarded proposal or read-index request, before its raft does: raft
// hears of the commit index only with the leader's next AppendEntries. The
// catch-up goroutine applies such entries from the follower's own log at
// once, through the adapter, which applies each entry once whichever of
// raft and catch-up comes first. It only applies what is certainly
// committed: the log must hold the entry the leader named, in the term the
// leader named, so that by raft's log matching the log equals the leader's
// up to there. An entry not in the log yet is applied as soon as raft
// stores it (catchUpLogs).

// maxCatchUp bounds the entries one catch-up step reads; a follower further
// behind lets raft bring it up to date (or install a snapshot).
const maxCatchUp = 4096

// catchUp is what the catch-up goroutine is to apply.
type catchUp struct {
	mu    sync.Mutex // guards index, term
	index uint64     // a committed entry the leader named
	term  uint64     // its term
	want  atomic.Uint64
	wake  chan struct{} // capacity 1
}

func newCatchUp() *catchUp { return &catchUp{wake: make(chan struct{}, 1)} }

// learn records that the entry at index, of term, is committed (term 0:
// unknown, nothing to do).
func (c *catchUp) learn(index, term uint64) {
	if term == 0 {
		return
	}
	c.mu.Lock()
	if index <= c.index {
		c.mu.Unlock()
		return
	}
	c.index, c.term = index, term
	c.want.Store(index)
	c.mu.Unlock()
	c.poke()
}

func (c *catchUp) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// stored is called after raft stored entries up to last.
func (c *catchUp) stored(last uint64) {
	if w := c.want.Load(); w != 0 && last >= w {
		c.poke()
	}
}

// runCatchUp is the catch-up goroutine.
func (n *Node) runCatchUp(rt *run) {
	for {
		select {
		case <-rt.catchUp.wake:
		case <-rt.ctx.Done():
			return
		}
		n.catchUpOnce(rt)
	}
}

func (n *Node) catchUpOnce(rt *run) {
	c := rt.catchUp
	c.mu.Lock()
	index, term := c.index, c.term
	c.mu.Unlock()
	applied := n.fsm.AppliedIndex()
	if applied >= index {
		c.want.CompareAndSwap(index, 0)
		return
	}
	logs := rt.stores.Logs
	var l raft.Log
	if err := logs.GetLog(index, &l); err != nil || l.Term != term {
		return // not stored yet (stored wakes us), or another entry: raft will do
	}
	first, err := logs.FirstIndex()
	if err != nil || applied+1 < first || index-applied > maxCatchUp {
		return // compacted, or far behind: raft will do
	}
	entries := make([]*raft.Log, 0, index-applied)
	for i := applied + 1; i <= index; i++ {
		e := new(raft.Log)
		if err := logs.GetLog(i, e); err != nil {
			return
		}
		entries = append(entries, e)
	}
	n.fsm.ReplayCommitted(entries)
	c.want.CompareAndSwap(index, 0)
}

// catchUpLogs is raft's log store, telling the catch-up goroutine what
// raft stores.
type catchUpLogs struct {
	raft.LogStore
	c *catchUp
}

func (s catchUpLogs) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

func (s catchUpLogs) StoreLogs(logs []*raft.Log) error {
	if err := s.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	if len(logs) > 0 {
		s.c.stored(logs[len(logs)-1].Index)
	}
	return nil
}

// IsMonotonic passes raft.MonotonicLogStore on.
func (s catchUpLogs) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
