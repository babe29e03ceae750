package canoe

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
)

// A follower's raft learns a new commit index only from the leader's next
// AppendEntries: the next batch of entries (which it first writes to disk)
// or, when the leader is idle, the CommitTimeout tick. A follower that
// forwarded a proposal must apply it before Propose returns, so it would
// wait for that. The nudger sends each follower, as soon as a batch with
// forwarded proposals commits, the AppendEntries raft would send with no
// entries: the leader's term, the committed entry as the previous entry,
// and the commit index. It is an ordinary raft message: a follower whose
// log holds that entry in that term advances its commit index (entries up
// to a committed index that match the leader's are committed, by raft's
// log matching); any other follower rejects it and changes nothing. The
// answers only serve to free the follower's slot: raft's own replication
// is untouched.
type nudger struct {
	n  *Node
	rt *runtime

	wake chan struct{} // capacity 1

	mu      sync.Mutex             // guards the fields below
	index   uint64                 // highest committed index to announce
	busy    map[raft.ServerID]bool // a nudge to this server is in flight
	servers []raft.Server          // the configuration, refreshed every serversTTL
	fetched time.Time              // when servers was read
}

const serversTTL = 100 * time.Millisecond

func newNudger(n *Node, rt *runtime) *nudger {
	return &nudger{n: n, rt: rt, wake: make(chan struct{}, 1), busy: make(map[raft.ServerID]bool)}
}

// committed announces that index is committed. It never blocks.
func (u *nudger) committed(index uint64) {
	u.mu.Lock()
	u.index = max(u.index, index)
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// run sends the nudges until the node stops. The goroutines sending them
// are owned by rt.wg; a stopped transport ends their calls.
func (u *nudger) run() {
	var sent uint64
	for {
		select {
		case <-u.wake:
		case <-u.rt.stop:
			return
		}
		u.mu.Lock()
		index := u.index
		u.mu.Unlock()
		if index <= sent {
			continue
		}
		sent = index
		u.send(index)
	}
}

func (u *nudger) send(index uint64) {
	rt := u.rt
	// The term first, then the state: a leader that stepped down in between
	// has a newer term, and the entry check below skips the send.
	term := rt.raft.CurrentTerm()
	if rt.raft.State() != raft.Leader {
		return
	}
	var entry raft.Log
	if err := rt.stores.Logs.GetLog(index, &entry); err != nil || entry.Term != term {
		return // compacted away, or from an earlier term: raft's own messages will do
	}
	self := adapter.ServerID(u.n.id)
	addr := rt.trans.LocalAddr()
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(self), Addr: rt.trans.EncodePeer(self, addr)}
	for _, s := range u.followers(self) {
		// The entry's term, never a later one: a follower in a newer term
		// rejects this as it would a late message from this leader.
		req := &raft.AppendEntriesRequest{
			RPCHeader:         header,
			Term:              entry.Term,
			PrevLogEntry:      index,
			PrevLogTerm:       entry.Term,
			LeaderCommitIndex: index,
		}
		rt.wg.Add(1)
		go func() {
			defer rt.wg.Done()
			defer u.release(s.ID)
			var resp raft.AppendEntriesResponse
			_ = rt.trans.Transport.AppendEntries(s.ID, s.Address, req, &resp)
		}()
	}
}

// followers returns the other servers of the configuration that have no
// nudge in flight, and marks them busy.
func (u *nudger) followers(self raft.ServerID) []raft.Server {
	u.mu.Lock()
	stale := time.Since(u.fetched) > serversTTL
	u.mu.Unlock()
	if stale {
		if conf, _, err := configuration(u.rt); err == nil {
			u.mu.Lock()
			u.servers, u.fetched = conf.Servers, time.Now()
			u.mu.Unlock()
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []raft.Server
	for _, s := range u.servers {
		if s.ID != self && !u.busy[s.ID] {
			u.busy[s.ID] = true
			out = append(out, s)
		}
	}
	return out
}

func (u *nudger) release(id raft.ServerID) {
	u.mu.Lock()
	delete(u.busy, id)
	u.mu.Unlock()
}
