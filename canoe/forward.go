package canoe

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// maxInflightForwards bounds the batches of proposals a follower has in
// flight to the leader; proposals arriving meanwhile queue and leave
// together in the next request.
const maxInflightForwards = 4

// forwarder carries a follower's requests to the leader: over the HTTP API
// in production, by direct calls in in-memory tests. Errors must match
// canoe's sentinels: ErrNotLeader or ErrNoLeader when the leader certainly
// did not act (the caller retries), ErrUnknownOutcome when it may have.
type forwarder interface {
	Propose(ctx context.Context, leader uint64, items [][]byte) ([]forwardResult, error)
	ReadIndex(ctx context.Context, leader uint64) (uint64, error)
	AddPeer(ctx context.Context, leader uint64, p Peer) error
	RemovePeer(ctx context.Context, leader uint64, id uint64) error
	Promote(ctx context.Context, leader uint64, id uint64) error
	// Membership asks member peer for the leader it knows (0: none) and the
	// members of the newest committed configuration it has applied (empty
	// when it cannot tell).
	Membership(ctx context.Context, peer uint64) (leader uint64, members []uint64, err error)
}

// forwardResult is the leader's answer for one forwarded proposal.
type forwardResult struct {
	Index uint64
	Err   string // FSM.Apply's error text; "" if none
}

// serveProposals commits forwarded proposals on the leader and returns one
// result per item. The items join the leader's own group commit.
func (n *Node) serveProposals(ctx context.Context, items [][]byte) ([]forwardResult, error) {
	rt, err := n.current()
	if err != nil {
		return nil, err
	}
	if rt.raft.State() != raft.Leader {
		return nil, &NotLeaderError{LeaderID: n.LeaderID()}
	}
	props := make([]*proposal, len(items))
	for i, it := range items {
		if len(it) == 0 {
			return nil, ErrEmptyProposal
		}
		props[i] = &proposal{data: it, done: make(chan proposeResult, 1), forwarded: true}
	}
	out := make([]forwardResult, len(items))
	for i, p := range props {
		select {
		case rt.proposals <- p:
		case <-rt.stop:
			return nil, n.notRunningAfter(i)
		case <-ctx.Done():
			return nil, n.timeoutAfter(i, ctx.Err())
		}
	}
	var failed, notAppended int
	var firstErr error
	for i, p := range props {
		var res proposeResult
		select {
		case res = <-p.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
		}
		switch {
		case res.err == nil:
			out[i] = forwardResult{Index: res.index}
		case isApplyError(res.err):
			out[i] = forwardResult{Index: res.index, Err: applyErrorText(res.err)}
		default:
			failed++
			if retriable(res.err) {
				notAppended++
			}
			if firstErr == nil {
				firstErr = res.err
			}
		}
	}
	switch {
	case failed == 0:
		return out, nil
	case notAppended == len(props):
		return nil, firstErr // nothing was appended: the follower may retry
	default:
		// Some items may have committed: the follower must not resend any.
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, firstErr)
	}
}

// notRunningAfter reports a stop after i proposals were handed over.
func (n *Node) notRunningAfter(i int) error {
	if i == 0 {
		return ErrNotRunning
	}
	return fmt.Errorf("%w: node stopped with proposals in flight", ErrUnknownOutcome)
}

func (n *Node) timeoutAfter(i int, err error) error {
	if i == 0 {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: proposals in flight, outcome unknown: %w", ErrTimeout, err)
}

func isApplyError(err error) bool {
	var ae *ApplyError
	return errors.As(err, &ae)
}

// applyErrorText is the FSM's own message, without canoe's prefix.
func applyErrorText(err error) string {
	var ae *ApplyError
	if errors.As(err, &ae) && ae.Err != nil {
		return ae.Err.Error()
	}
	return err.Error()
}

// serveReadIndex returns the leader's read index for a follower.
func (n *Node) serveReadIndex(context.Context) (uint64, error) {
	rt, err := n.current()
	if err != nil {
		return 0, err
	}
	if rt.raft.State() != raft.Leader {
		return 0, &NotLeaderError{LeaderID: n.LeaderID()}
	}
	index, err := n.readIndex(rt)
	if err == nil {
		rt.nudge.Committed(index) // the follower waits to apply it
	}
	return index, err
}

// forwarded is a proposal waiting to be sent to the leader.
type forwarded struct {
	data []byte
	done chan proposeResult
}

// proposeForward sends data to the leader through the follower's forward
// batcher, then waits until this node has applied it (read-your-writes).
func (n *Node) proposeForward(ctx context.Context, rt *runtime, data []byte) proposeResult {
	f := &forwarded{data: data, done: make(chan proposeResult, 1)}
	select {
	case rt.forwards <- f:
	case <-rt.stop:
		return proposeResult{err: ErrNotRunning}
	case <-ctx.Done():
		return proposeResult{err: fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())}
	}
	var res proposeResult
	select {
	case res = <-f.done:
	case <-rt.stopped:
		return proposeResult{err: fmt.Errorf("%w: node stopped", ErrUnknownOutcome)}
	case <-ctx.Done():
		return proposeResult{err: fmt.Errorf("%w: proposal in flight, outcome unknown: %w", ErrTimeout, ctx.Err())}
	}
	if res.err != nil && !isApplyError(res.err) {
		return res
	}
	if err := n.waitApplied(ctx, rt, res.index); err != nil {
		return proposeResult{err: fmt.Errorf("%w: committed at index %d but not applied here: %v", ErrTimeout, res.index, err)}
	}
	return res
}

// forwardLoop is the follower's forward batcher: it sends queued proposals
// to the leader in batches, at most maxInflightForwards requests at a time.
func (n *Node) forwardLoop(rt *runtime) {
	sem := make(chan struct{}, maxInflightForwards)
	for {
		var first *forwarded
		select {
		case first = <-rt.forwards:
		case <-rt.stop:
			for { // never sent: certainly not committed
				select {
				case f := <-rt.forwards:
					f.done <- proposeResult{err: ErrNotRunning}
				default:
					return
				}
			}
		}
		// Wait for a free slot; proposals queue meanwhile.
		select {
		case sem <- struct{}{}:
		case <-rt.stop:
			first.done <- proposeResult{err: ErrNotRunning}
			return
		}
		group, size := []*forwarded{first}, len(first.data)
	drain:
		for len(group) < maxBatchItems && size < maxBatchBytes {
			select {
			case f := <-rt.forwards:
				group = append(group, f)
				size += len(f.data)
			default:
				break drain
			}
		}
		rt.wg.Add(1)
		go func() {
			defer rt.wg.Done()
			defer func() { <-sem }()
			n.sendForwarded(rt.ctx, group)
		}()
	}
}

func (n *Node) sendForwarded(ctx context.Context, group []*forwarded) {
	fail := func(err error) {
		for _, f := range group {
			f.done <- proposeResult{err: err}
		}
	}
	leader := n.LeaderID()
	if leader == 0 || leader == n.id {
		fail(ErrNoLeader) // the caller waits for a leader and retries
		return
	}
	items := make([][]byte, len(group))
	for i, f := range group {
		items[i] = f.data
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ProposeTimeout)
	defer cancel()
	results, err := n.fwd.Propose(ctx, leader, items)
	if err == nil && len(results) != len(group) {
		err = fmt.Errorf("%w: leader answered %d results for %d proposals", ErrUnknownOutcome, len(results), len(group))
	}
	if err != nil {
		fail(err)
		return
	}
	for i, f := range group {
		r := proposeResult{index: results[i].Index}
		if results[i].Err != "" {
			r.err = &ApplyError{Index: results[i].Index, Err: errors.New(results[i].Err)}
		}
		f.done <- r
	}
}
