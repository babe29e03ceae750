package transport

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

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

// Hedge bounds: a round asks the other voters it has not asked yet once
// the ones it asked took hedgeRTTs of their usual round trip, and never
// later than maxHedge.
const (
	hedgeRTTs = 4
	minHedge  = 200 * time.Microsecond
	maxHedge  = 5 * time.Millisecond
)

// Confirmer confirms that this node still leads, as etcd's ReadIndex does:
// it sends other voters a heartbeat of its term (an AppendEntries without
// entries, which raft answers at once) and reports once a quorum of voters,
// this node included, answered in that term. A leader confirmed at time t
// was the only leader at t, so its commit index read before the round
// covers every entry committed before t.
//
// A round asks only as many voters as a quorum needs, the ones that answered
// fastest lately, and the others only when one of those fails or is slow:
// on loopback or a LAN each heartbeat costs both ends a write and a read,
// the largest part of a read's cost. Each voter has one goroutine that
// sends its heartbeats, one at a time, so a round starts no goroutine.
type Confirmer struct {
	progress *Progress
	header   raft.RPCHeader
	self     raft.ServerID
	ctx      context.Context

	mu    sync.Mutex // guards peers
	peers map[raft.ServerID]*beater
	wg    sync.WaitGroup // the beaters
}

// NewConfirmer returns a Confirmer that sends through p as self until ctx
// ends.
func NewConfirmer(ctx context.Context, p *Progress, self raft.ServerID) *Confirmer {
	return &Confirmer{
		progress: p,
		self:     self,
		ctx:      ctx,
		header:   raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(self), Addr: p.EncodePeer(self, p.LocalAddr())},
		peers:    make(map[raft.ServerID]*beater),
	}
}

// Confirm runs one round in term with the voters of servers. It returns
// nil once a quorum answered in term, ErrDeposed when a voter knows a newer
// term, ErrNoQuorum when a quorum can no longer answer, and ctx's error
// when ctx ends first. A heartbeat still in flight when it returns finishes
// in the background.
func (c *Confirmer) Confirm(ctx context.Context, term uint64, servers []raft.Server) error {
	voters, selfVotes := 0, false
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
			selfVotes = selfVotes || s.ID == c.self
		}
	}
	if !selfVotes {
		return ErrDeposed
	}
	quorum := voters/2 + 1
	if quorum == 1 {
		return nil
	}
	others := c.beaters(servers)
	answers := make(chan answer, len(others))
	next := 0
	ask := func() {
		others[next].ask(term, answers)
		next++
	}
	for next < quorum-1 {
		ask()
	}
	hedge := time.NewTimer(others[next-1].hedge())
	defer hedge.Stop()
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
				if next < len(others) {
					ask()
				}
			}
		case <-hedge.C:
			for _, b := range others[:next] {
				b.markSlow()
			}
			for next < len(others) {
				ask()
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type answer struct{ ok, newer bool }

// beaters returns a beater for every voter of servers but this node, the
// ones to ask first first, and stops the beaters of servers no longer
// voters.
func (c *Confirmer) beaters(servers []raft.Server) []*beater {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*beater
	for _, s := range servers {
		if s.Suffrage != raft.Voter || s.ID == c.self {
			continue
		}
		b := c.peers[s.ID]
		if b == nil || b.addr != s.Address {
			if b != nil {
				b.stop()
			}
			b = c.newBeater(s.ID, s.Address)
			c.peers[s.ID] = b
		}
		out = append(out, b)
	}
	if len(out) < len(c.peers) {
		for id, b := range c.peers {
			if !slices.Contains(out, b) {
				b.stop()
				delete(c.peers, id)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b *beater) int { return a.rank().compare(b.rank()) })
	return out
}

// Wait waits for the beaters, which end once the Confirmer's context has
// ended and their heartbeat in flight has (closing the transport ends it).
func (c *Confirmer) Wait() { c.wg.Wait() }

// beater sends one voter's heartbeats, one at a time.
type beater struct {
	c    *Confirmer
	id   raft.ServerID
	addr raft.ServerAddress
	wake chan struct{} // capacity 1
	quit chan struct{}

	mu      sync.Mutex // guards the fields below
	pending *beat      // the newest round waiting for a heartbeat
	rtt     time.Duration
	slow    bool // failed, or did not answer in time, since it last answered
}

type beat struct {
	term    uint64
	answers chan<- answer
}

func (c *Confirmer) newBeater(id raft.ServerID, addr raft.ServerAddress) *beater {
	b := &beater{c: c, id: id, addr: addr, wake: make(chan struct{}, 1), quit: make(chan struct{})}
	c.wg.Go(b.run)
	return b
}

func (b *beater) stop() { close(b.quit) }

// ask queues a heartbeat for a round. A round still waiting for this voter
// has ended (rounds run one at a time), so its heartbeat is not sent.
func (b *beater) ask(term uint64, answers chan<- answer) {
	b.mu.Lock()
	b.pending = &beat{term: term, answers: answers}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *beater) run() {
	for {
		select {
		case <-b.wake:
		case <-b.quit:
			return
		case <-b.c.ctx.Done():
			return
		}
		b.mu.Lock()
		bt := b.pending
		b.pending = nil
		b.mu.Unlock()
		if bt != nil {
			bt.answers <- b.send(bt.term)
		}
	}
}

// send sends one heartbeat of term and records how it went.
func (b *beater) send(term uint64) answer {
	req := raft.AppendEntriesRequest{RPCHeader: b.c.header, Term: term}
	var resp raft.AppendEntriesResponse
	start := time.Now()
	err := b.c.progress.AppendEntries(b.id, b.addr, &req, &resp)
	took := time.Since(start)
	a := answer{ok: err == nil && resp.Term == term, newer: err == nil && resp.Term > term}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !a.ok {
		b.slow = true
		return a
	}
	b.slow = false
	if b.rtt == 0 {
		b.rtt = took
	} else {
		b.rtt += (took - b.rtt) / 8
	}
	return a
}

func (b *beater) markSlow() {
	b.mu.Lock()
	b.slow = true
	b.mu.Unlock()
}

// hedge is how long a round waits for this voter before asking the others.
func (b *beater) hedge() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return min(max(hedgeRTTs*b.rtt, minHedge), maxHedge)
}

// rank orders voters for asking: the ones that answered last first, by
// their usual round trip, ones never asked before among them (an unknown
// round trip counts as none).
type rank struct {
	slow bool
	rtt  time.Duration
}

func (b *beater) rank() rank {
	b.mu.Lock()
	defer b.mu.Unlock()
	return rank{b.slow, b.rtt}
}

func (r rank) compare(o rank) int {
	if r.slow != o.slow {
		if r.slow {
			return 1
		}
		return -1
	}
	return cmp.Compare(r.rtt, o.rtt)
}
