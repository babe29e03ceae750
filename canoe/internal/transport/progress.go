package transport

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Progress wraps a raft transport and remembers, per follower, what the
// leader knows it replicated: the last index of the entries of an
// AppendEntries the follower accepted (Success), or of a snapshot it
// installed. It never uses the LastLog a follower reports about itself:
// that is the follower's word, and a stranger could claim any index. It
// also remembers when each follower last answered (heartbeats included).
// Raft does not expose its followers' progress; canoe needs it to promote
// non-voters once they have caught up, and to know which voters can take
// leadership over.
type Progress struct {
	raft.Transport

	mu      sync.Mutex // guards matched, lastAck
	matched map[raft.ServerID]uint64
	lastAck map[raft.ServerID]time.Time
}

// NewProgress wraps t.
func NewProgress(t raft.Transport) *Progress {
	return &Progress{Transport: t, matched: make(map[raft.ServerID]uint64), lastAck: make(map[raft.ServerID]time.Time)}
}

// AppendEntries sends args and records what the answer proves.
func (t *Progress) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.Transport.AppendEntries(id, target, args, resp)
	if err != nil {
		return err
	}
	var last uint64
	if resp.Success && resp.Term == args.Term {
		// A follower that accepts entries holds the leader's log up to the
		// last of them (raft's log matching); a heartbeat proves nothing.
		last = args.PrevLogEntry
		if n := len(args.Entries); n > 0 {
			last = args.Entries[n-1].Index
		}
	}
	t.record(id, last)
	return nil
}

// InstallSnapshot sends a snapshot and records it once installed.
func (t *Progress) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	err := t.Transport.InstallSnapshot(id, target, args, resp, data)
	if err != nil {
		return err
	}
	var last uint64
	if resp.Success && resp.Term == args.Term {
		last = args.LastLogIndex
	}
	t.record(id, last)
	return nil
}

func (t *Progress) record(id raft.ServerID, matched uint64) {
	t.mu.Lock()
	t.matched[id] = max(t.matched[id], matched)
	t.lastAck[id] = time.Now()
	t.mu.Unlock()
}

// Reset forgets what followers were known to hold: call it when this node
// becomes leader, since a later leader may have replaced entries a
// follower acknowledged to an earlier term of this one.
func (t *Progress) Reset() {
	t.mu.Lock()
	clear(t.matched)
	t.mu.Unlock()
}

// Matched returns the highest index the leader knows follower id holds,
// and whether it knows any.
func (t *Progress) Matched(id raft.ServerID) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.matched[id]
	return n, ok && n > 0
}

// AnsweredWithin reports whether follower id answered (see LastAnswer)
// within d.
func (t *Progress) AnsweredWithin(id raft.ServerID, d time.Duration) bool {
	at, ok := t.LastAnswer(id)
	return ok && time.Since(at) < d
}

// LastAnswer returns when follower id last answered an AppendEntries
// (heartbeats included) or InstallSnapshot of this node, and whether it
// ever did.
func (t *Progress) LastAnswer(id raft.ServerID) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.lastAck[id]
	return at, ok
}

// AppendEntriesPipeline turns raft's pipelined replication off. Its
// netPipeline can deadlock at shutdown (hashicorp/raft#612: with the
// default MaxRPCsInFlight the send loop and the decoder wait on each other
// forever, and Shutdown waits for both). canoe batches proposals itself, so
// one AppendEntries in flight per follower loses little.
func (t *Progress) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// RequestPreVote forwards pre-vote requests; raft enables pre-vote only on
// transports that implement it.
func (t *Progress) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	pv, ok := t.Transport.(raft.WithPreVote)
	if !ok {
		return errors.New("canoe: transport does not support pre-vote")
	}
	return pv.RequestPreVote(id, target, args, resp)
}

// Close closes the wrapped transport.
func (t *Progress) Close() error {
	if c, ok := t.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	if c, ok := t.Transport.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

var (
	_ raft.WithPreVote = (*Progress)(nil)
	_ raft.WithClose   = (*Progress)(nil)
)
