package discovery

import (
	"fmt"
	"sync"
	"time"
)

// EventKind says what happened to a member.
type EventKind int

const (
	// EventJoin: a member appeared (or came back after being dead or left).
	EventJoin EventKind = iota + 1
	// EventUpdate: a member changed its Meta (a Leaving flag shows up here
	// first, before the member actually leaves).
	EventUpdate
	// EventLeave: a member left gracefully (its last Meta had Leaving set).
	EventLeave
	// EventFailed: a member disappeared without setting Leaving: it crashed,
	// was shut down without Leave, or is cut off by a partition.
	EventFailed
)

// String implements fmt.Stringer.
func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFailed:
		return "failed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// MemberState is a member's state as far as this package can observe it.
type MemberState int

const (
	// Alive: the member answers probes (or at least is not yet declared dead).
	Alive MemberState = iota
	// Suspect: not reported. memberlist v0.6.0 keeps the suspect state
	// private (its public Node.State is never filled in), so Members reports
	// suspect members as Alive; the value exists so callers need not change
	// if a later version exposes it.
	Suspect
	// Dead: the member failed (Member of an EventFailed).
	Dead
	// Left: the member left gracefully (Member of an EventLeave, or the
	// local member after Leave).
	Left
)

// String implements fmt.Stringer.
func (s MemberState) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Dead:
		return "dead"
	case Left:
		return "left"
	}
	return fmt.Sprintf("MemberState(%d)", int(s))
}

// Member is one node of the gossip cluster.
type Member struct {
	Name  string      // memberlist node name (by default the decimal Meta.ID)
	Addr  string      // gossip host:port
	Meta  Meta        // what the member gossips about itself
	State MemberState // see MemberState
}

// Event is a change in membership, as delivered by Discovery.Events.
type Event struct {
	Kind   EventKind
	Member Member
	At     time.Time // when this node learned of it
}

// eventQueue decouples memberlist's delegates (which must never block) from
// the consumer of Events: push appends to an unbounded slice and returns at
// once; run, a goroutine owned by Discovery, hands events to out in order.
type eventQueue struct {
	mu      sync.Mutex // guards pending, closed
	pending []Event
	closed  bool

	wake chan struct{} // capacity 1: "pending may be non-empty"
	done chan struct{} // closed by close
	out  chan Event    // closed by run when it returns
}

func newEventQueue() *eventQueue {
	return &eventQueue{
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		out:  make(chan Event),
	}
}

// push queues e; it never blocks. Events pushed after close are discarded.
func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.pending = append(q.pending, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers queued events until close; then it closes out.
func (q *eventQueue) run() {
	defer close(q.out)
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.pending = nil // let a burst's backing array go
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.done:
				return
			}
		}
		e := q.pending[0]
		q.pending[0] = Event{}
		q.pending = q.pending[1:]
		q.mu.Unlock()
		select {
		case q.out <- e:
		case <-q.done:
			return
		}
	}
}

// close stops run and discards undelivered events. Call it once.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.pending = nil
	q.mu.Unlock()
	close(q.done)
}
