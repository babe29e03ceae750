package transport

import (
	"context"
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// Errors of Confirm.
var (
	// ErrDeposed: a voter knows a newer term (another node leads, or will),
	// or this node is no voter.
	ErrDeposed = errors.New("canoe: a newer term exists: this node no longer leads")
	// ErrNoQuorum: too many voters failed to answer for a quorum.
	ErrNoQuorum = errors.New("canoe: a quorum of voters did not answer the leader")
)

// Confirmer confirms that this node still leads, as etcd's ReadIndex does:
// it sends every other voter a heartbeat of its term (an AppendEntries
// without entries, which raft answers at once) and reports once a quorum of
// voters, this node included, answered in that term. A leader confirmed at
// time t was the only leader at t, so its commit index read before the
// round covers every entry committed before t.
type Confirmer struct {
	progress *Progress
	header   raft.RPCHeader
	self     raft.ServerID
	wg       sync.WaitGroup // heartbeats still in flight after Confirm returned
}

// NewConfirmer returns a Confirmer that sends through p as self.
func NewConfirmer(p *Progress, self raft.ServerID) *Confirmer {
	return &Confirmer{
		progress: p,
		self:     self,
		header:   raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(self), Addr: p.EncodePeer(self, p.LocalAddr())},
	}
}

// Confirm runs one round in term with the voters of servers. It returns
// nil once a quorum answered in term, ErrDeposed when a voter knows a newer
// term, ErrNoQuorum when a quorum can no longer answer, and ctx's error
// when ctx ends first. Heartbeats still in flight when it returns finish in the
// background; Wait waits for them.
func (c *Confirmer) Confirm(ctx context.Context, term uint64, servers []raft.Server) error {
	voters, selfVotes := 0, false
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
			if s.ID == c.self {
				selfVotes = true
			}
		}
	}
	if !selfVotes {
		return ErrDeposed
	}
	quorum := voters/2 + 1
	if quorum == 1 {
		return nil
	}
	answers := make(chan answer, voters)
	asked := 0
	for _, s := range servers {
		if s.Suffrage != raft.Voter || s.ID == c.self {
			continue
		}
		asked++
		req := &raft.AppendEntriesRequest{RPCHeader: c.header, Term: term}
		c.wg.Go(func() {
			var resp raft.AppendEntriesResponse
			err := c.progress.AppendEntries(s.ID, s.Address, req, &resp)
			answers <- answer{ok: err == nil && resp.Term == term, newer: err == nil && resp.Term > term}
		})
	}
	yes, no := 1, 0
	for yes < quorum {
		select {
		case a := <-answers:
			switch {
			case a.ok:
				yes++
			case a.newer:
				return ErrDeposed
			default:
				no++
				if voters-no < quorum {
					return ErrNoQuorum
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type answer struct{ ok, newer bool }

// Wait waits for the heartbeats in flight (a closed transport ends them).
func (c *Confirmer) Wait() { c.wg.Wait() }
