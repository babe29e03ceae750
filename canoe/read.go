package canoe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/canoe/internal/transport"
)

// ReadBarrier returns nil once this node's FSM reflects every proposal
// committed before the call, so a read of the FSM right after is
// linearizable (etcd's ReadIndex). The leader confirms it still leads with
// one round of heartbeats; a follower asks the leader for its read index and
// waits until it has applied that far. Concurrent ReadBarriers share one
// confirmation (and, on a follower, one request to the leader). No entry is
// written, beyond one barrier per leader term.
func (n *Node) ReadBarrier(ctx context.Context) error {
	var d readIndexDone
	err := n.onLeader(ctx, func(rt *run, _ uint64) error {
		d = rt.reads.index(ctx)
		return d.err
	})
	if err != nil {
		return err
	}
	rt, err := n.current()
	if err != nil {
		return err
	}
	rt.catchUp.learn(d.index, d.term)
	return n.waitApplied(ctx, rt, d.index)
}

// readRequest is one ReadBarrier (or a follower's request) waiting for a
// read index: the index of the last entry the FSM applies at or below the
// leader's commit index, taken after every request in the round arrived.
type readRequest struct {
	local  chan readIndexDone  // this node's ReadBarrier
	remote func(readIndexDone) // a follower's request; must not block
}

// reads batches read-index requests: one leadership confirmation, or one
// request to the leader, answers every request queued when it starts.
type reads struct {
	n    *Node
	rt   *run
	wake chan struct{} // capacity 1

	mu    sync.Mutex // guards queue
	queue []readRequest
}

func newReads(n *Node, rt *run) *reads {
	return &reads{n: n, rt: rt, wake: make(chan struct{}, 1)}
}

// index returns a read index for this node's ReadBarrier.
func (r *reads) index(ctx context.Context) readIndexDone {
	done := make(chan readIndexDone, 1)
	r.submit(readRequest{local: done})
	select {
	case d := <-done:
		return d
	case <-ctx.Done():
		return readIndexDone{err: fmt.Errorf("%w: read barrier: %w", ErrTimeout, ctx.Err())}
	case <-r.rt.ctx.Done():
		return readIndexDone{err: ErrNotRunning}
	}
}

// submit queues a request for the next round.
func (r *reads) submit(req readRequest) {
	r.mu.Lock()
	r.queue = append(r.queue, req)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run is the read goroutine: each round takes every queued request and
// answers them all with one read index.
func (r *reads) run() {
	for {
		select {
		case <-r.wake:
		case <-r.rt.ctx.Done():
			r.answer(r.take(), readIndexDone{err: ErrNotRunning})
			return
		}
		batch := r.take()
		if len(batch) == 0 {
			continue
		}
		r.answer(batch, r.round(batch))
	}
}

func (r *reads) take() []readRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queue
	r.queue = nil
	return q
}

func (r *reads) answer(batch []readRequest, d readIndexDone) {
	for _, req := range batch {
		if req.local != nil {
			req.local <- d
		} else {
			req.remote(d)
		}
	}
}

// round gets one read index: on the leader by confirming its leadership,
// on a follower by asking the leader.
func (r *reads) round(batch []readRequest) readIndexDone {
	n, rt := r.n, r.rt
	fail := func(err error) readIndexDone { return readIndexDone{err: err} }
	ctx, cancel := context.WithTimeout(rt.ctx, max(2*n.cfg.Timing.ElectionTimeout, n.cfg.Timing.HeartbeatTimeout))
	defer cancel()
	if rt.raft.State() != raft.Leader {
		for _, req := range batch {
			if req.remote != nil {
				// A follower asked a node that no longer leads.
				return fail(&NotLeaderError{LeaderID: n.LeaderID()})
			}
		}
		index, term, err := rt.fwdClient.readIndex(ctx)
		return readIndexDone{index: index, term: term, err: err}
	}
	if err := n.ensureLeaderReady(ctx, rt); err != nil {
		return fail(err)
	}
	term := rt.raft.CurrentTerm()
	commit := rt.raft.CommitIndex()
	cfg, _, err := configuration(rt)
	if err != nil {
		return fail(n.raftErr(err))
	}
	switch err := rt.confirm.Confirm(ctx, term, cfg.Servers); {
	case errors.Is(err, transport.ErrDeposed):
		return fail(&NotLeaderError{})
	case err != nil:
		return fail(fmt.Errorf("%w: could not confirm leadership: %v", ErrNoLeader, err))
	}
	index := rt.visible.at(rt, commit)
	entryTerm, _ := n.entryTerm(rt, index)
	return readIndexDone{index: index, term: entryTerm}
}

// ensureLeaderReady waits until this leader has committed an entry of its
// own term (raft appends a no-op when it takes over), so that its commit
// index covers every entry committed by earlier leaders.
func (n *Node) ensureLeaderReady(ctx context.Context, rt *run) error {
	pause := time.Millisecond
	for {
		term := rt.raft.CurrentTerm()
		if rt.readyTerm.Load() == term {
			return nil
		}
		if rt.raft.State() != raft.Leader {
			return &NotLeaderError{LeaderID: n.LeaderID()}
		}
		if t, ok := n.entryTerm(rt, rt.raft.CommitIndex()); ok && t == term {
			rt.readyTerm.Store(term)
			return nil
		}
		timer := time.NewTimer(pause)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w: waiting for this leader's first commit: %w", ErrTimeout, ctx.Err())
		}
		pause = min(2*pause, n.cfg.Timing.HeartbeatTimeout/10)
	}
}

// waitApplied waits until the FSM holds the effects of the entry at index
// (a read index names an entry the FSM applies).
func (n *Node) waitApplied(ctx context.Context, rt *run, index uint64) error {
	for {
		advanced := n.fsm.Advanced()
		if n.fsm.AppliedIndex() >= index {
			return nil
		}
		select {
		case <-advanced:
		case <-rt.ctx.Done():
			return ErrNotRunning
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting to apply index %d: %w", ErrTimeout, index, ctx.Err())
		}
	}
}

// visible maps a commit index to the last entry at or below it that the
// FSM applies. Entries the FSM never sees (raft's no-ops and barriers,
// canoe's per-term barrier) do not move its applied index, so a reader
// waits for that entry instead of the commit index itself: with hundreds of
// leader changes in a row and no write, the commit index runs far ahead of
// anything the FSM will ever apply.
type visible struct {
	mu      sync.Mutex // guards scanned, last
	scanned uint64     // entries up to here were looked at
	last    uint64     // the last entry up to scanned that the FSM applies
}

// at returns the last FSM-applied entry at or below index, reading each
// log entry once.
func (v *visible) at(rt *run, index uint64) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if index <= v.scanned {
		if index >= v.last {
			return v.last
		}
		return lastAppliedBelow(rt, index) // an older index than the last asked
	}
	v.last = lastApplied(rt, v.scanned, index, v.last)
	v.scanned = index
	return v.last
}

// lastAppliedBelow scans back from index for the last entry the FSM
// applies.
func lastAppliedBelow(rt *run, index uint64) uint64 {
	first, err := rt.stores.Logs.FirstIndex()
	if err != nil {
		return index
	}
	var l raft.Log
	for i := index; i >= first && i > 0; i-- {
		if err := rt.stores.Logs.GetLog(i, &l); err != nil {
			return i
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return min(rt.adapterApplied(), index)
}

// lastApplied scans (from, to] for the last entry the FSM applies, starting
// from last. Entries compacted away are covered by a snapshot of this
// node's FSM, whose applied index is a lower bound for them.
func lastApplied(rt *run, from, to, last uint64) uint64 {
	first, err := rt.stores.Logs.FirstIndex()
	if err != nil {
		return max(last, to) // cannot tell: the conservative answer
	}
	if from+1 < first {
		last = max(last, min(rt.adapterApplied(), to))
		from = first - 1
	}
	var l raft.Log
	for i := from + 1; i <= to; i++ {
		if err := rt.stores.Logs.GetLog(i, &l); err != nil {
			last = max(last, i) // cannot tell: the conservative answer
			continue
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			last = i
		}
	}
	return last
}
