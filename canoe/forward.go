package canoe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/canoe/internal/transport"
)

// maxInflightForwards bounds the requests a follower has in flight on its
// connection to the leader; proposals arriving meanwhile queue and leave
// together in the next request.
const maxInflightForwards = 16

// forwarder carries a follower's membership requests to the leader (over
// the HTTP API in production, by direct calls in in-memory tests), and
// dials the leader's forward channel. Errors must match canoe's sentinels:
// ErrNotLeader or ErrNoLeader when the leader certainly did not act (the
// caller retries), ErrUnknownOutcome when it may have.
type forwarder interface {
	// DialForward connects to member id's forward channel.
	DialForward(ctx context.Context, id uint64) (net.Conn, error)
	AddPeer(ctx context.Context, leader uint64, p Peer) error
	RemovePeer(ctx context.Context, leader uint64, id uint64) error
	Promote(ctx context.Context, leader uint64, id uint64) error
	// Membership asks member peer for the leader it knows (0: none) and the
	// members of the newest committed configuration it has applied (empty
	// when it cannot tell).
	Membership(ctx context.Context, peer uint64) (leader uint64, members []uint64, err error)
}

// forwardLoop is the follower's forward goroutine: it sends queued
// proposals to the leader over the forward channel, in requests of as many
// proposals as are queued, with at most maxInflightForwards in flight.
func (n *Node) forwardLoop(rt *run) {
	c := rt.fwdClient
	defer c.close(errStoppedInFlight)
	for {
		var first proposal
		select {
		case first = <-rt.forwards:
		case <-rt.ctx.Done():
			return // Stop refuses what is still queued (refuseQueued)
		}
		select {
		case c.slots <- struct{}{}:
		case <-rt.ctx.Done():
			rt.props.resolve(first.tag.Seq, proposeResult{err: ErrNotRunning})
			continue
		}
		group := drain(rt.forwards, []proposal{first})
		req := &transport.ProposeRequest{Session: rt.props.session, Seqs: make([]uint64, len(group)), Items: make([][]byte, len(group))}
		for i, p := range group {
			req.Seqs[i], req.Items[i] = p.tag.Seq, p.data
		}
		c.propose(req)
	}
}

// forwardClient is a follower's connection to the leader's forward
// channel: requests are written as they come, answers are matched by ID.
// When the leader changes, the connection to the old one is kept until it
// has answered what it took (or breaks, or drainTimeout passes): a deposed
// leader still tells whether a proposal committed, or that it never will
// (the follower then resends it to the new leader), which is better than
// an unknown outcome.
type forwardClient struct {
	n       *Node
	rt      *run
	slots   chan struct{}  // proposal requests in flight, at most maxInflightForwards
	readers sync.WaitGroup // the connections' reader goroutines

	mu       sync.Mutex // guards the fields below; writes to a connection hold it too
	active   *forwardConn
	draining map[*forwardConn]bool
	nextID   uint64
	closed   bool
}

// forwardConn is one connection to a leader and the calls waiting on it.
type forwardConn struct {
	leader uint64
	conn   net.Conn
	w      *bufio.Writer
	buf    []byte
	calls  map[uint64]*forwardCall
	timer  *time.Timer // ends a draining connection
}

// forwardCall is a request waiting for its answer.
type forwardCall struct {
	seqs []uint64           // a proposal request's proposals
	read chan readIndexDone // a read-index request's answer
}

type readIndexDone struct {
	index uint64
	term  uint64 // the term of the entry at index, 0 if unknown
	err   error
}

func newForwardClient(n *Node, rt *run) *forwardClient {
	return &forwardClient{n: n, rt: rt, slots: make(chan struct{}, maxInflightForwards), draining: make(map[*forwardConn]bool)}
}

// drainTimeout bounds how long a connection to a deposed leader waits for
// its answers.
func (c *forwardClient) drainTimeout() time.Duration {
	return max(c.n.cfg.ProposeTimeout, 4*c.n.cfg.Timing.ElectionTimeout)
}

// propose sends req; its proposals get their outcome through rt.props.
func (c *forwardClient) propose(req *transport.ProposeRequest) {
	call := &forwardCall{seqs: req.Seqs}
	if err := c.send(call, func(id uint64, b []byte) []byte {
		req.ID = id
		return transport.AppendPropose(b, req)
	}); err != nil {
		c.fail(call, err)
	}
}

// readIndex asks the leader for a read index, and returns it with the term
// of its entry.
func (c *forwardClient) readIndex(ctx context.Context) (uint64, uint64, error) {
	call := &forwardCall{read: make(chan readIndexDone, 1)}
	if err := c.send(call, func(id uint64, b []byte) []byte {
		return transport.AppendReadIndex(b, transport.ReadIndexRequest{ID: id})
	}); err != nil {
		return 0, 0, err
	}
	select {
	case d := <-call.read:
		return d.index, d.term, d.err
	case <-ctx.Done():
		c.drop(call)
		return 0, 0, fmt.Errorf("%w: read index: %w", ErrTimeout, ctx.Err())
	}
}

// send writes one request to the current leader, connecting first if
// needed. An error means nothing was sent, or (ErrUnknownOutcome) that
// part of it may have been.
func (c *forwardClient) send(call *forwardCall, encode func(id uint64, b []byte) []byte) error {
	leader := c.n.LeaderID()
	if leader == 0 || leader == c.n.id {
		return ErrNoLeader
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrNotRunning
	}
	if c.active != nil && c.active.leader != leader {
		c.drainLocked(c.active)
		c.active = nil
	}
	if c.active == nil {
		fc, err := c.dialLocked(leader)
		if err != nil {
			return err
		}
		c.active = fc
	}
	fc := c.active
	c.nextID++
	id := c.nextID
	fc.buf = encode(id, fc.buf[:0])
	fc.calls[id] = call
	if _, err := fc.w.Write(fc.buf); err == nil {
		if err = fc.w.Flush(); err == nil {
			return nil
		}
	}
	delete(fc.calls, id)
	// Part of the request may have gone out: the connection is unusable,
	// and what was in flight on it has an unknown outcome.
	c.closeLocked(fc, fmt.Errorf("%w: the connection to leader %d failed", ErrUnknownOutcome, leader))
	if call.seqs != nil {
		return fmt.Errorf("%w: sending to leader %d failed", ErrUnknownOutcome, leader)
	}
	return fmt.Errorf("%w: leader %d unreachable", ErrNoLeader, leader)
}

func (c *forwardClient) dialLocked(leader uint64) (*forwardConn, error) {
	ctx, cancel := context.WithTimeout(c.rt.ctx, max(2*c.n.cfg.Timing.ElectionTimeout, time.Second))
	defer cancel()
	conn, err := c.n.fwd.DialForward(ctx, leader)
	if err != nil {
		return nil, fmt.Errorf("%w: leader %d unreachable: %v", ErrNoLeader, leader, err)
	}
	fc := &forwardConn{leader: leader, conn: conn, w: bufio.NewWriterSize(conn, 64<<10), calls: make(map[uint64]*forwardCall)}
	c.readers.Go(func() { c.readReplies(fc) })
	return fc, nil
}

// drainLocked stops sending on fc: its read-index calls fail at once (a
// read changes nothing; the caller asks the new leader), its proposals
// wait for their answers until drainTimeout.
func (c *forwardClient) drainLocked(fc *forwardConn) {
	for id, call := range fc.calls {
		if call.read != nil {
			delete(fc.calls, id)
			call.read <- readIndexDone{err: fmt.Errorf("%w: the leader changed", ErrNoLeader)}
		}
	}
	if len(fc.calls) == 0 {
		c.closeLocked(fc, nil)
		return
	}
	c.draining[fc] = true
	fc.timer = time.AfterFunc(c.drainTimeout(), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.draining[fc] {
			c.closeLocked(fc, fmt.Errorf("%w: the deposed leader %d did not answer", ErrUnknownOutcome, fc.leader))
		}
	})
}

// closeLocked closes fc and fails every call still on it with err.
func (c *forwardClient) closeLocked(fc *forwardConn, err error) {
	if c.active == fc {
		c.active = nil
	}
	delete(c.draining, fc)
	if fc.timer != nil {
		fc.timer.Stop()
	}
	fc.conn.Close()
	calls := fc.calls
	fc.calls = nil
	for _, call := range calls {
		c.fail(call, err)
	}
}

// readReplies reads fc's answers until it fails or is closed.
func (c *forwardClient) readReplies(fc *forwardConn) {
	r := bufio.NewReaderSize(fc.conn, 64<<10)
	for {
		b, err := transport.ReadFrame(r)
		var rep *transport.Reply
		if err == nil {
			rep, err = transport.DecodeReply(b)
		}
		c.mu.Lock()
		if fc.calls == nil {
			c.mu.Unlock()
			return // closed already
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.n.logger.Debug("forward connection to the leader failed", "leader", fc.leader, "error", err)
			}
			c.closeLocked(fc, fmt.Errorf("%w: the connection to the leader broke with the request in flight", ErrUnknownOutcome))
			c.mu.Unlock()
			return
		}
		call, ok := fc.calls[rep.ID]
		delete(fc.calls, rep.ID)
		if c.draining[fc] && len(fc.calls) == 0 {
			c.closeLocked(fc, nil) // every answer is in
		}
		c.mu.Unlock()
		if ok {
			c.finish(call, rep)
		}
	}
}

// drop forgets a call whose caller stopped waiting.
func (c *forwardClient) drop(call *forwardCall) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fc := range c.conns() {
		for id, other := range fc.calls {
			if other == call {
				delete(fc.calls, id)
			}
		}
	}
}

// conns returns the open connections. The caller holds c.mu.
func (c *forwardClient) conns() []*forwardConn {
	out := make([]*forwardConn, 0, len(c.draining)+1)
	if c.active != nil {
		out = append(out, c.active)
	}
	for fc := range c.draining {
		out = append(out, fc)
	}
	return out
}

// finish hands a call its answer.
func (c *forwardClient) finish(call *forwardCall, rep *transport.Reply) {
	if call.seqs != nil {
		<-c.slots
	}
	var rerr error
	switch rep.Status {
	case transport.ReplyOK:
	case transport.ReplyNotLeader:
		rerr = &NotLeaderError{LeaderID: rep.Leader}
	case transport.ReplyRefused:
		rerr = fmt.Errorf("%w: the leader refused: %s", ErrInvalidProposal, rep.Message)
	default:
		rerr = fmt.Errorf("%w: %s", ErrUnknownOutcome, rep.Message)
	}
	if call.read != nil {
		d := readIndexDone{err: rerr}
		if rerr == nil && len(rep.Indexes) == 1 {
			d.index, d.term = rep.Indexes[0], rep.Term
		} else if rerr == nil {
			d.err = fmt.Errorf("%w: the leader answered a read index with %d indexes", ErrNoLeader, len(rep.Indexes))
		}
		call.read <- d
		return
	}
	if rerr == nil && len(rep.Indexes) != len(call.seqs) {
		rerr = fmt.Errorf("%w: the leader answered %d indexes for %d proposals", ErrUnknownOutcome, len(rep.Indexes), len(call.seqs))
	}
	if rerr == nil {
		c.rt.catchUp.learn(slices.Max(rep.Indexes), rep.Term)
	}
	for i, seq := range call.seqs {
		if rerr != nil {
			c.rt.props.resolve(seq, proposeResult{err: rerr})
		} else {
			// Committed: the result comes from this node's FSM.
			c.rt.props.committedAt(seq, rep.Indexes[i])
		}
	}
}

func (c *forwardClient) fail(call *forwardCall, err error) {
	if call.read != nil {
		if err == nil || errors.Is(err, ErrUnknownOutcome) {
			err = fmt.Errorf("%w: %v", ErrNoLeader, err) // a read changes nothing: ask again
		}
		call.read <- readIndexDone{err: err}
		return
	}
	if err == nil {
		err = fmt.Errorf("%w: the connection to the leader closed", ErrUnknownOutcome)
	}
	if call.seqs != nil {
		<-c.slots
	}
	for _, seq := range call.seqs {
		c.rt.props.resolve(seq, proposeResult{err: err})
	}
}

// close closes every connection, failing what waits on them with err, and
// waits for their readers.
func (c *forwardClient) close(err error) {
	c.mu.Lock()
	c.closed = true
	for _, fc := range c.conns() {
		c.closeLocked(fc, err)
	}
	c.mu.Unlock()
	c.readers.Wait()
}

// serveForward serves one follower's forward connection until it breaks
// or the node stops: proposals join the leader's batches, read-index
// requests the leader's read rounds. Answers are written by a second
// goroutine as they come, in any order.
func (n *Node) serveForward(rt *run, conn net.Conn) {
	out := newReplyQueue()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer out.close()
	defer conn.Close()
	wg.Go(func() { out.writeTo(conn) })
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		b, err := transport.ReadFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && rt.ctx.Err() == nil {
				n.logger.Debug("forward connection from a follower failed", "remote", conn.RemoteAddr(), "error", err)
			}
			return
		}
		req, err := transport.DecodeRequest(b)
		if err != nil {
			n.logger.Warn("closing a forward connection that sent a malformed request", "remote", conn.RemoteAddr(), "error", err)
			return
		}
		switch req := req.(type) {
		case *transport.ProposeRequest:
			if !n.acceptForwarded(rt, req, out.push) {
				return
			}
		case transport.ReadIndexRequest:
			id := req.ID
			rt.reads.submit(readRequest{remote: func(d readIndexDone) {
				out.push(readReply(id, d))
			}})
		}
	}
}

// acceptForwarded queues a follower's proposals for the batcher; it
// returns false once the node stops.
func (n *Node) acceptForwarded(rt *run, req *transport.ProposeRequest, reply func(*transport.Reply)) bool {
	if rt.raft.State() != raft.Leader {
		reply(&transport.Reply{ID: req.ID, Status: transport.ReplyNotLeader, Leader: n.LeaderID()})
		return true
	}
	for _, it := range req.Items {
		if len(it) == 0 || len(it) > MaxProposalSize {
			reply(&transport.Reply{ID: req.ID, Status: transport.ReplyRefused, Message: fmt.Sprintf("a proposal of %d bytes (1 to %d taken)", len(it), MaxProposalSize)})
			return true
		}
	}
	n.metrics.forwarded.Add(float64(len(req.Items)))
	fr := newForwardRequest(req.ID, len(req.Items), reply)
	for i, it := range req.Items {
		p := proposal{tag: adapter.Tag{Session: req.Session, Seq: req.Seqs[i]}, data: it, req: fr, i: i}
		select {
		case rt.proposals <- p:
		case <-rt.ctx.Done():
			for j := i; j < len(req.Items); j++ {
				fr.done(j, 0, 0, ErrNotRunning)
			}
			return false
		}
	}
	return true
}

func readReply(id uint64, d readIndexDone) *transport.Reply {
	var nle *NotLeaderError
	switch {
	case d.err == nil:
		return &transport.Reply{ID: id, Status: transport.ReplyOK, Indexes: []uint64{d.index}, Term: d.term}
	case errors.As(d.err, &nle):
		return &transport.Reply{ID: id, Status: transport.ReplyNotLeader, Leader: nle.LeaderID}
	}
	// A read changes nothing; the follower asks again.
	return &transport.Reply{ID: id, Status: transport.ReplyNotLeader}
}

// replyQueue holds a forward connection's answers for its writer: pushing
// never blocks (it runs on raft's FSM goroutine), and the answers waiting
// are bounded by the requests the follower has in flight.
type replyQueue struct {
	mu     sync.Mutex // guards queue, closed
	queue  []*transport.Reply
	closed bool
	wake   chan struct{} // capacity 1
}

func newReplyQueue() *replyQueue { return &replyQueue{wake: make(chan struct{}, 1)} }

func (q *replyQueue) push(r *transport.Reply) {
	q.mu.Lock()
	if !q.closed {
		q.queue = append(q.queue, r)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *replyQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// writeTo writes the answers to conn as they come, until the queue closes
// or a write fails.
func (q *replyQueue) writeTo(conn net.Conn) {
	w := bufio.NewWriterSize(conn, 64<<10)
	var buf []byte
	for range q.wake {
		q.mu.Lock()
		batch, closed := q.queue, q.closed
		q.queue = nil
		q.mu.Unlock()
		if closed {
			return
		}
		for _, r := range batch {
			buf = transport.AppendReply(buf[:0], r)
			if _, err := w.Write(buf); err != nil {
				conn.Close()
				return
			}
		}
		if err := w.Flush(); err != nil {
			conn.Close()
			return
		}
	}
}

// acceptForward is the goroutine that serves the forward connections the
// transport admits.
func (n *Node) acceptForward(rt *run) {
	for {
		conn, err := rt.layer.AcceptForward()
		if err != nil {
			return
		}
		rt.serve(conn, func() { n.serveForward(rt, conn) })
	}
}

// acceptForwardConn serves conn, a forward connection that arrived outside
// the transport (in-memory test clusters).
func (n *Node) acceptForwardConn(conn net.Conn) error {
	rt, err := n.current()
	if err != nil {
		conn.Close()
		return err
	}
	if !rt.serve(conn, func() { n.serveForward(rt, conn) }) {
		return ErrNotRunning
	}
	return nil
}

// serve runs f for conn under the run's WaitGroup, unless Stop has
// begun; Stop closes conn.
func (rt *run) serve(conn net.Conn, f func()) bool {
	rt.connMu.Lock()
	defer rt.connMu.Unlock()
	if rt.closing {
		conn.Close()
		return false
	}
	rt.serving[conn] = struct{}{}
	rt.wg.Go(func() {
		defer func() {
			rt.connMu.Lock()
			delete(rt.serving, conn)
			rt.connMu.Unlock()
		}()
		f()
	})
	return true
}

// closeServing closes every forward connection being served.
func (rt *run) closeServing() {
	rt.connMu.Lock()
	defer rt.connMu.Unlock()
	rt.closing = true
	for c := range rt.serving {
		c.Close()
	}
}
