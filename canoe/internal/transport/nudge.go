package transport

import (
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A follower's raft learns a new commit index only from the leader's next
// AppendEntries: the next batch of entries (which it first writes to disk)
// or, when the leader is idle, the CommitTimeout tick. A follower that
// forwarded a proposal must apply it before Propose returns, so it would
// wait for that. The Nudger sends each follower, as soon as such a commit
// happens and the leader knows the follower holds the entry (Progress), the
// AppendEntries raft would send with no entries: the entry's term, the
// committed entry as the previous entry, and the commit index. It is an
// ordinary raft message: the follower advances its commit index (entries up
// to a committed index that match the leader's are committed, by raft's log
// matching). A follower that does not hold the entry yet is nudged once the
// answer to the AppendEntries that carries it arrives, never before (raft
// would log the miss as a warning). The answers change nothing but the
// follower's slot: raft's own replication is untouched.

// Leader is the node as the Nudger sees it.
type Leader interface {
	// CurrentTerm returns raft's current term.
	CurrentTerm() uint64
	// IsLeader reports whether this node leads now.
	IsLeader() bool
	// EntryTerm returns the term of log entry index, if the log holds it.
	EntryTerm(index uint64) (uint64, bool)
	// Servers returns the latest configuration's servers.
	Servers() []raft.Server
	// LastIndex returns the index of the last entry in this node's log
	// (durable: raft's leader stores entries before replicating them).
	LastIndex() uint64
}

// Nudger tells followers about commits they wait for.
type Nudger struct {
	leader   Leader
	progress *Progress
	header   raft.RPCHeader
	self     raft.ServerID

	wake chan struct{} // capacity 1
	wg   sync.WaitGroup

	mu      sync.Mutex               // guards the fields below
	index   uint64                   // highest committed index to announce
	waiting int                      // followers' requests waiting for a commit
	sent    map[raft.ServerID]uint64 // highest index announced to each server
	busy    map[raft.ServerID]bool   // a nudge to this server is in flight
	servers []raft.Server            // the configuration, refreshed every serversTTL
	fetched time.Time                // when servers was read
}

const serversTTL = 100 * time.Millisecond

// NewNudger returns a Nudger that sends through p as self, and learns
// from p which follower holds what.
func NewNudger(leader Leader, p *Progress, self raft.ServerID) *Nudger {
	u := &Nudger{
		leader:   leader,
		progress: p,
		self:     self,
		header:   raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(self), Addr: p.EncodePeer(self, p.LocalAddr())},
		wake:     make(chan struct{}, 1),
		sent:     make(map[raft.ServerID]uint64),
		busy:     make(map[raft.ServerID]bool),
	}
	p.setOnMatch(u.poke)
	return u
}

// Committed announces that index is committed. It never blocks.
func (u *Nudger) Committed(index uint64) {
	u.mu.Lock()
	grew := index > u.index
	u.index = max(u.index, index)
	u.mu.Unlock()
	if grew {
		u.poke()
	}
}

// Waiting adds delta to the followers' requests that wait for an entry to
// commit (a batch holding forwarded proposals). While any wait, the Nudger
// works out the commit index itself from what the voters acknowledged, as
// raft's leader does, and tells the followers at once, instead of after the
// leader's FSM applied the entry.
func (u *Nudger) Waiting(delta int) {
	u.mu.Lock()
	u.waiting += delta
	u.mu.Unlock()
	if delta > 0 {
		u.poke()
	}
}

// quorumIndex returns the highest index a quorum of voters holds: the
// leader's last index and what followers acknowledged. An entry of the
// current term at or below it is committed.
func (u *Nudger) quorumIndex(servers []raft.Server) uint64 {
	var held []uint64
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if s.ID == u.self {
			held = append(held, u.leader.LastIndex())
			continue
		}
		m, _ := u.progress.Matched(s.ID)
		held = append(held, m)
	}
	if len(held) == 0 {
		return 0
	}
	slices.Sort(held)
	return held[len(held)-(len(held)/2+1)]
}

func (u *Nudger) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Run sends the nudges until stop is closed, then waits for the sends in
// flight (a closed transport ends them).
func (u *Nudger) Run(stop <-chan struct{}) {
	defer u.wg.Wait()
	for {
		select {
		case <-u.wake:
		case <-stop:
			return
		}
		u.sendDue()
	}
}

// sendDue nudges every follower that holds a committed entry of this term
// beyond what it was told.
func (u *Nudger) sendDue() {
	u.mu.Lock()
	index, waiting := u.index, u.waiting
	u.mu.Unlock()
	// The term first, then the state: a leader that stepped down in between
	// has a newer term, and the entry check below skips the send.
	term := u.leader.CurrentTerm()
	if !u.leader.IsLeader() {
		return
	}
	servers := u.followers()
	if waiting > 0 {
		index = max(index, u.quorumIndex(servers))
	}
	if index == 0 {
		return
	}
	for _, s := range servers {
		if s.ID == u.self {
			continue
		}
		held, _ := u.progress.Matched(s.ID)
		at := min(index, held)
		u.mu.Lock()
		due := at > u.sent[s.ID] && !u.busy[s.ID]
		u.mu.Unlock()
		if !due {
			continue
		}
		if t, ok := u.leader.EntryTerm(at); !ok || t != term {
			continue // compacted away, or from an earlier term: raft's own messages will do
		}
		// The entry's term, never a later one: a follower in a newer term
		// rejects this as it would a late message from this leader.
		req := &raft.AppendEntriesRequest{
			RPCHeader:         u.header,
			Term:              term,
			PrevLogEntry:      at,
			PrevLogTerm:       term,
			LeaderCommitIndex: at,
		}
		u.mu.Lock()
		u.busy[s.ID], u.sent[s.ID] = true, at
		u.mu.Unlock()
		u.wg.Go(func() {
			var resp raft.AppendEntriesResponse
			_ = u.progress.AppendEntries(s.ID, s.Address, req, &resp)
			u.mu.Lock()
			delete(u.busy, s.ID)
			u.mu.Unlock()
			u.poke() // a newer commit may have waited for this slot
		})
	}
}

// followers returns the servers of the configuration, this node included.
func (u *Nudger) followers() []raft.Server {
	u.mu.Lock()
	defer u.mu.Unlock()
	if time.Since(u.fetched) > serversTTL {
		u.mu.Unlock()
		servers := u.leader.Servers()
		u.mu.Lock()
		u.servers, u.fetched = servers, time.Now()
	}
	return u.servers
}
