package canoe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
)

// Group commit: while earlier entries are in flight, proposals queue up and
// leave together as one raft entry, so a busy leader writes and replicates
// one entry for many proposals. An idle leader sends a proposal at once.
// MaxProposalSize is the largest proposal canoe takes, in bytes; a larger
// one is refused with ErrInvalidProposal. Keep large state out of the log:
// every node stores, replicates and replays each entry.
const MaxProposalSize = 16 << 20

const (
	maxInflightBatches = 1       // raft entries in flight
	maxBatchItems      = 1024    // proposals per raft entry
	maxBatchBytes      = 1 << 20 // bytes per raft entry (a larger proposal goes alone)
)

// proposal is one proposal queued for the leader's batcher: this node's
// own (req nil) or one a follower forwarded.
type proposal struct {
	tag  adapter.Tag
	data []byte
	req  *forwardRequest // nil for this node's own
	i    int             // the item's position in req
}

// Propose proposes data with NodeConfig.ProposeTimeout as deadline. See
// ProposeContext.
func (n *Node) Propose(data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ProposeTimeout)
	defer cancel()
	return n.ProposeContext(ctx, data)
}

// ProposeContext replicates data to every node's FSM. It returns nil only
// once a quorum has committed the proposal and this node's FSM has applied
// it, so a read on this node right after sees it. If the FSM's Apply fails
// for it, that error comes back here as an *ApplyError (from this node's
// own FSM, on the leader and on a follower alike), while the cluster
// applies it everywhere and keeps serving. With no leader it waits for one
// until ctx ends (ErrNoLeader). Errors that match ErrUnknownOutcome or
// ErrTimeout mean the proposal may still commit.
func (n *Node) ProposeContext(ctx context.Context, data []byte) error {
	_, err := n.ProposeResult(ctx, data)
	return err
}

// ProposeResult is ProposeContext for a ResultFSM: it returns what this
// node's FSM answered (ApplyResult) for the proposal, which is the same on
// every node. For an FSM without ApplyResult the value is nil. If the node
// installed a snapshot past the proposal before applying it (it lagged far
// behind), the proposal is committed and reflected in the state but its
// value is gone: the error then matches ErrResultUnavailable.
func (n *Node) ProposeResult(ctx context.Context, data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, ErrEmptyProposal
	}
	if len(data) > MaxProposalSize {
		return nil, fmt.Errorf("%w: %d bytes, over MaxProposalSize (%d)", ErrInvalidProposal, len(data), MaxProposalSize)
	}
	res := n.propose(ctx, data)
	if res.lost && res.err == nil {
		if _, ok := n.cfg.FSM.(ResultFSM); ok {
			res.err = fmt.Errorf("%w: entry %d", ErrResultUnavailable, res.index)
		}
	}
	n.metrics.proposed(res.err)
	return res.value, res.err
}

func (n *Node) propose(ctx context.Context, data []byte) proposeResult {
	var res proposeResult
	err := n.onLeader(ctx, func(rt *run, leader uint64) error {
		res = n.proposeOnce(ctx, rt, data, leader == n.id)
		return res.err
	})
	if err != nil && !errors.Is(err, res.err) {
		res = proposeResult{err: err}
	}
	return res
}

// proposeOnce hands data to the leader's batcher (local) or to the
// follower's forwarder, and waits for this node's FSM to apply it.
func (n *Node) proposeOnce(ctx context.Context, rt *run, data []byte, local bool) proposeResult {
	tag, w := rt.props.register()
	queue := rt.forwards
	if local {
		queue = rt.proposals
	}
	select {
	case queue <- proposal{tag: tag, data: data}:
	case <-rt.ctx.Done():
		rt.props.forget(tag.Seq)
		return proposeResult{err: ErrNotRunning}
	case <-ctx.Done():
		rt.props.forget(tag.Seq)
		return proposeResult{err: fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())}
	}
	select {
	case res := <-w.done:
		return res
	case <-ctx.Done():
		rt.props.forget(tag.Seq)
		select {
		case res := <-w.done: // resolved meanwhile
			return res
		default:
		}
		return proposeResult{err: fmt.Errorf("%w: proposal in flight, outcome unknown: %w", ErrTimeout, ctx.Err())}
	}
}

// batcher is the leader's batcher goroutine: it packs queued proposals into
// tagged raft entries, keeping at most maxInflightBatches in flight.
func (n *Node) batcher(rt *run) {
	var pending []proposal
	for {
		if len(pending) == 0 {
			select {
			case p := <-rt.proposals:
				pending = append(pending, p)
			case <-rt.ctx.Done():
				return
			}
		}
		// Wait for a slot: proposals queue meanwhile and leave together.
		for !rt.props.takeSlot(maxInflightBatches) {
			select {
			case <-rt.props.slotFreed:
			case <-rt.ctx.Done():
				n.refuse(rt, pending, ErrNotRunning)
				return
			}
		}
		pending = drain(rt.proposals, pending)
		k, size := 1, len(pending[0].data)
		for k < len(pending) && k < maxBatchItems && size+len(pending[k].data) <= maxBatchBytes {
			size += len(pending[k].data)
			k++
		}
		n.submit(rt, pending[:k])
		pending = append(pending[:0], pending[k:]...)
	}
}

// drain appends what is queued, up to the batch limits.
func drain(queue <-chan proposal, pending []proposal) []proposal {
	size := 0
	for _, p := range pending {
		size += len(p.data)
	}
	for len(pending) < maxBatchItems && size < maxBatchBytes {
		select {
		case p := <-queue:
			pending = append(pending, p)
			size += len(p.data)
		default:
			return pending
		}
	}
	return pending
}

// submit writes items as one tagged entry, holding the slot taken for it.
func (n *Node) submit(rt *run, items []proposal) {
	// Leadership transfers hold this lock: raft refuses entries while one
	// is under way, and would answer only the future no one waits on.
	rt.transferMu.RLock()
	defer rt.transferMu.RUnlock()
	term := rt.raft.CurrentTerm()
	if rt.raft.State() != raft.Leader {
		rt.props.returnSlot()
		n.refuse(rt, items, &NotLeaderError{LeaderID: n.LeaderID()})
		return
	}
	rt.props.batchSeq++
	b := &batch{seq: rt.props.batchSeq, term: term, slot: true}
	t := adapter.Tagged{Batch: adapter.Tag{Session: rt.props.session, Seq: b.seq}}
	groups := make(map[uint64]int) // session -> index in t.Groups
	for _, p := range items {
		g, ok := groups[p.tag.Session]
		if !ok {
			g = len(t.Groups)
			groups[p.tag.Session] = g
			t.Groups = append(t.Groups, adapter.Group{Session: p.tag.Session})
		}
		t.Groups[g].Seqs = append(t.Groups[g].Seqs, p.tag.Seq)
		t.Groups[g].Items = append(t.Groups[g].Items, p.data)
		if p.req == nil {
			b.local = append(b.local, p.tag.Seq)
		} else {
			b.remote = append(b.remote, remoteItem{req: p.req, i: p.i})
		}
	}
	rt.props.mu.Lock()
	rt.props.batches[b.seq] = b
	rt.props.mu.Unlock()
	// The outcome arrives through the adapter (delivered) or settleBatches;
	// the future is not needed.
	rt.raft.Apply(adapter.EncodeTagged(t), 0)
}

// refuse fails proposals that were never handed to raft.
func (n *Node) refuse(rt *run, items []proposal, err error) {
	for _, p := range items {
		if p.req != nil {
			p.req.done(p.i, 0, 0, err)
		} else {
			rt.props.resolve(p.tag.Seq, proposeResult{err: err})
		}
	}
}

// refuseQueued refuses, with ErrNotRunning, the proposals still queued for
// the batcher or the forwarder once both have returned: they never reached
// raft or the leader, so unlike those in flight they certainly did not
// commit.
func (n *Node) refuseQueued(rt *run) {
	for _, queue := range []chan proposal{rt.proposals, rt.forwards} {
		for empty := false; !empty; {
			select {
			case p := <-queue:
				n.refuse(rt, []proposal{p}, ErrNotRunning)
			default:
				empty = true
			}
		}
	}
}

// settleBatches is the goroutine that settles batches written in a term
// this node no longer leads in. Such a batch is decided once an entry of a
// later term has committed: raft's logs never hold an entry of an earlier
// term after it, so a batch not applied by then never commits, and its
// proposals are refused (the proposer retries them on the new leader).
func (n *Node) settleBatches(rt *run) {
	tick := time.NewTicker(pollInterval(n.cfg.Timing))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-n.leaderBC.wait():
		case <-rt.ctx.Done():
			return
		}
		term := rt.raft.CurrentTerm()
		orphans := rt.props.orphans(term, rt.raft.State() == raft.Leader)
		if len(orphans) == 0 {
			continue
		}
		commit := rt.raft.CommitIndex()
		t, ok := n.entryTerm(rt, commit)
		if !ok || n.fsm.AppliedIndex() < rt.visible.at(rt, commit) {
			continue // not decided yet, or not applied this far
		}
		for _, b := range orphans {
			if t > b.term {
				rt.props.failBatch(b, fmt.Errorf("%w: the leader lost its term before the proposal committed; it never will", &NotLeaderError{LeaderID: n.LeaderID()}))
			}
		}
	}
}

// entryTerm returns the term of log entry index.
func (n *Node) entryTerm(rt *run, index uint64) (uint64, bool) {
	var l raft.Log
	if err := rt.stores.Logs.GetLog(index, &l); err != nil {
		return 0, false
	}
	return l.Term, true
}

// retriable reports whether a proposal certainly did not commit and may be
// sent again.
func retriable(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotLeader)
}

func retryPause(t Timing) time.Duration {
	return max(t.HeartbeatTimeout/20, 5*time.Millisecond)
}

// pollInterval is how often the manager, settleBatches and a waiting
// Promote look again without being woken.
func pollInterval(t Timing) time.Duration {
	return max(t.HeartbeatTimeout/4, 10*time.Millisecond)
}
