package canoe

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/canoe/internal/transport"
)

// A proposal's life:
//
//  1. Propose registers a waiter under a tag: this run's session (random
//     per Start) and the next sequence number.
//  2. The leader's batcher packs the queued proposals, its own and those
//     followers forwarded, into one tagged raft entry (group commit), and
//     registers the batch under a tag of its own.
//  3. Every node applies the entry, and its adapter hands each of this
//     node's proposals in it the result its own FSM produced (delivered).
//     A follower so answers its forwarded proposals from its own FSM: the
//     answer is the same on every node, and read-your-writes holds.
//  4. The leader learns from the same delivery that its batch committed.
//     A batch of a term this node no longer leads in is settled once a
//     later term's entry has committed and been applied: if it was not
//     delivered by then, it never commits (settleBatches).
//
// No goroutine waits on a raft future for a proposal: raft drops the
// futures of entries it has not applied when it shuts down.

// proposeResult is the outcome of one proposal.
type proposeResult struct {
	index uint64
	value []byte
	err   error
	// lost: committed and reflected in the state, but its result was not
	// kept (a snapshot installed past the entry replaced the FSM's state).
	lost bool
}

// waiter is one of this run's proposals waiting for its result.
type waiter struct {
	done  chan proposeResult // buffered: receives exactly one result
	index uint64             // the entry's index once the leader told it
}

// batch is one of the leader's raft entries in flight.
type batch struct {
	seq    uint64
	term   uint64
	local  []uint64     // seqs of this run's proposals
	remote []remoteItem // forwarded proposals
	slot   bool         // holds a group-commit slot
}

// remoteItem is item i of a forwarded request.
type remoteItem struct {
	req *forwardRequest
	i   int
}

// proposals are one run's proposals and batches in flight.
type proposals struct {
	session  uint64
	seq      atomic.Uint64
	batchSeq uint64 // only the batcher uses it

	mu        sync.Mutex // guards the fields below
	waiting   map[uint64]*waiter
	batches   map[uint64]*batch
	slots     int           // batches holding a group-commit slot
	restored  uint64        // highest index a restored snapshot covered
	slotFreed chan struct{} // capacity 1: wakes the batcher
}

func newProposals() *proposals {
	return &proposals{
		session:   Uint64UUID(),
		waiting:   make(map[uint64]*waiter),
		batches:   make(map[uint64]*batch),
		slotFreed: make(chan struct{}, 1),
	}
}

// register returns a new tag of this session and its waiter.
func (p *proposals) register() (adapter.Tag, *waiter) {
	w := &waiter{done: make(chan proposeResult, 1)}
	seq := p.seq.Add(1)
	p.mu.Lock()
	p.waiting[seq] = w
	p.mu.Unlock()
	return adapter.Tag{Session: p.session, Seq: seq}, w
}

// forget drops a waiter whose proposer stopped waiting.
func (p *proposals) forget(seq uint64) {
	p.mu.Lock()
	delete(p.waiting, seq)
	p.mu.Unlock()
}

// resolve hands proposal seq its result, once.
func (p *proposals) resolve(seq uint64, r proposeResult) {
	p.mu.Lock()
	w, ok := p.waiting[seq]
	delete(p.waiting, seq)
	p.mu.Unlock()
	if ok {
		w.done <- r
	}
}

// committedAt records that the leader committed proposal seq at index. If
// a snapshot restored here already covers it, it is resolved: its effect is
// in the state, its result is gone.
func (p *proposals) committedAt(seq, index uint64) {
	p.mu.Lock()
	w, ok := p.waiting[seq]
	if ok && index <= p.restored {
		delete(p.waiting, seq)
	} else if ok {
		w.index = index
		ok = false
	}
	p.mu.Unlock()
	if ok {
		w.done <- proposeResult{index: index, lost: true}
	}
}

// delivered is the adapter's Delivered hook: it runs on raft's FSM
// goroutine after a tagged entry is applied.
func (n *Node) delivered(d adapter.Delivery) {
	p := n.props.Load()
	if p == nil {
		return
	}
	for _, r := range d.Results {
		if r.Tag.Session != p.session {
			continue
		}
		res := proposeResult{index: d.Index, value: r.Value}
		if r.Err != nil {
			res.err = &ApplyError{Index: d.Index, Err: r.Err}
		}
		p.resolve(r.Tag.Seq, res)
	}
	if d.Batch.Session != p.session {
		return
	}
	p.mu.Lock()
	b, ok := p.batches[d.Batch.Seq]
	delete(p.batches, d.Batch.Seq)
	p.freeSlotLocked(b)
	p.mu.Unlock()
	if !ok {
		return
	}
	for _, it := range b.remote {
		it.req.done(it.i, d.Index, d.Term, nil)
	}
}

// restoredTo is the adapter's Restored hook: a snapshot replaced the state
// with one that reflects every entry up to index.
func (n *Node) restoredTo(index uint64) {
	p := n.props.Load()
	if p == nil {
		return
	}
	p.mu.Lock()
	p.restored = max(p.restored, index)
	var done []*waiter
	for seq, w := range p.waiting {
		if w.index != 0 && w.index <= index {
			done = append(done, w)
			delete(p.waiting, seq)
		}
	}
	p.mu.Unlock()
	for _, w := range done {
		w.done <- proposeResult{index: w.index, lost: true}
	}
}

// owns is the adapter's Owns hook.
func (n *Node) owns(session uint64) bool {
	p := n.props.Load()
	return p != nil && p.session == session
}

// freeSlotLocked releases b's group-commit slot. The caller holds p.mu.
func (p *proposals) freeSlotLocked(b *batch) {
	if b == nil || !b.slot {
		return
	}
	b.slot = false
	p.slots--
	select {
	case p.slotFreed <- struct{}{}:
	default:
	}
}

// takeSlot takes a group-commit slot if fewer than max are taken.
func (p *proposals) takeSlot(max int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots >= max {
		return false
	}
	p.slots++
	return true
}

// returnSlot gives back a slot takeSlot took for a batch never written.
func (p *proposals) returnSlot() {
	p.mu.Lock()
	p.slots--
	p.mu.Unlock()
}

// failBatch settles b as failed with err for every proposal in it.
func (p *proposals) failBatch(b *batch, err error) {
	p.mu.Lock()
	delete(p.batches, b.seq)
	p.freeSlotLocked(b)
	p.mu.Unlock()
	for _, seq := range b.local {
		p.resolve(seq, proposeResult{err: err})
	}
	for _, it := range b.remote {
		it.req.done(it.i, 0, 0, err)
	}
}

// orphans returns the batches not written in term, releasing their slots:
// they no longer hold up group commit while they are settled.
func (p *proposals) orphans(term uint64, leading bool) []*batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*batch
	for _, b := range p.batches {
		if b.term != term || !leading {
			p.freeSlotLocked(b)
			out = append(out, b)
		}
	}
	return out
}

// failAll fails every waiter and batch at Stop: proposals handed to raft
// may still commit.
func (p *proposals) failAll() {
	p.mu.Lock()
	batches := p.batches
	p.batches = make(map[uint64]*batch)
	waiting := p.waiting
	p.waiting = make(map[uint64]*waiter)
	p.mu.Unlock()
	for _, b := range batches {
		for _, it := range b.remote {
			it.req.done(it.i, 0, 0, errStoppedInFlight)
		}
	}
	for _, w := range waiting {
		w.done <- proposeResult{err: errStoppedInFlight}
	}
}

var errStoppedInFlight = fmt.Errorf("%w: the node stopped with the proposal in flight", ErrUnknownOutcome)

// forwardRequest is a follower's request being served by the leader: its
// proposals join the leader's batches, and reply is called once all have
// an outcome.
type forwardRequest struct {
	id    uint64
	reply func(*transport.Reply) // must not block

	mu      sync.Mutex // guards the fields below
	indexes []uint64
	last    uint64 // the highest index
	term    uint64 // the term of the entry at last
	left    int
	err     error // the first failure
	unknown bool  // a failure left the outcome unknown
}

func newForwardRequest(id uint64, items int, reply func(*transport.Reply)) *forwardRequest {
	return &forwardRequest{id: id, reply: reply, indexes: make([]uint64, items), left: items}
}

// done records item i's outcome: committed at index (an entry of term), or
// err.
func (r *forwardRequest) done(i int, index, term uint64, err error) {
	r.mu.Lock()
	if index >= r.last {
		r.last, r.term = index, term
	}
	r.indexes[i] = index
	if err != nil && r.err == nil {
		r.err = err
	}
	if err != nil && !retriable(err) {
		r.unknown = true
	}
	r.left--
	last := r.left == 0
	r.mu.Unlock()
	if !last {
		return
	}
	rep := &transport.Reply{ID: r.id, Status: transport.ReplyOK, Indexes: r.indexes, Term: r.term}
	var nle *NotLeaderError
	switch {
	case r.err == nil:
	case !r.unknown && r.allFailed() && errors.As(r.err, &nle):
		rep = &transport.Reply{ID: r.id, Status: transport.ReplyNotLeader, Leader: nle.LeaderID}
	default:
		rep = &transport.Reply{ID: r.id, Status: transport.ReplyUnknown, Message: r.err.Error()}
	}
	r.reply(rep)
}

// allFailed reports whether no item committed.
func (r *forwardRequest) allFailed() bool {
	for _, ix := range r.indexes {
		if ix != 0 {
			return false
		}
	}
	return true
}
