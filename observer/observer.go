package observer

import (
	"sync"
	"sync/atomic"
)

// FilterFn decides whether an observer wants an observation: it returns true
// to deliver it. It runs synchronously on the goroutine that calls
// Registry.Notify, so it must be fast, must not block, and must not call back
// into the node. It may be called concurrently from several goroutines. A
// panic in a filter is recovered and counted as a drop.
type FilterFn func(Observation) bool

// nextID hands out observer ids; the first observer gets 1.
var nextID atomic.Uint64

// Observer is one consumer of observations: a channel, an optional filter and
// a counter of observations lost because the channel was full. Create it with
// New; an Observer is safe for concurrent use and may be registered with
// several Registries at once.
type Observer struct {
	ch      chan Observation
	filter  FilterFn
	id      uint64
	dropped atomic.Uint64
}

// New returns an Observer that receives on ch every observation for which
// filter returns true; a nil filter accepts every observation.
//
// Sends to ch never block: give it a buffer sized for bursts and read it
// promptly, since an observation that finds ch full is dropped and counted by
// Dropped. An unbuffered ch only receives while a reader is already waiting.
// The caller owns ch; closing it while the Observer is registered does not
// crash the sender (the failed send counts as a drop), but the caller should
// Unregister first. New panics if ch is nil.
func New(ch chan Observation, filter FilterFn) *Observer {
	if ch == nil {
		panic("observer: New called with a nil channel")
	}
	return &Observer{
		ch:     ch,
		filter: filter,
		id:     nextID.Add(1),
	}
}

// ID returns the observer's identifier, unique among all Observers created
// by this process and never 0.
func (o *Observer) ID() uint64 {
	return o.id
}

// Dropped returns the number of observations the filter accepted but that
// were lost, because the channel was full, the filter panicked, or the
// channel had been closed. It only grows and is safe to call at any time.
func (o *Observer) Dropped() uint64 {
	return o.dropped.Load()
}

// deliver offers ob to the observer without blocking. A panic in the filter
// (or a send on a channel the user closed) is recovered and counted as a
// drop, because the filter is user code running on our goroutine.
func (o *Observer) deliver(ob Observation) {
	defer func() {
		if r := recover(); r != nil {
			o.dropped.Add(1)
		}
	}()
	if o.filter != nil && !o.filter(ob) {
		return
	}
	select {
	case o.ch <- ob:
	default:
		o.dropped.Add(1)
	}
}

// Registry is the set of observers registered with a node. The zero value is
// an empty Registry ready to use. A Registry must not be copied after first
// use.
//
// The observer list is copy-on-write: Register and Unregister build a new
// slice under mu and publish it through an atomic pointer, and Notify reads
// the current slice with one atomic load and takes no lock. Notify therefore
// never waits for Register, Unregister or another Notify, which keeps raft's
// goroutines from blocking on observers.
type Registry struct {
	mu   sync.Mutex                  // serializes writers of list (Register, Unregister); readers do not take it
	list atomic.Pointer[[]*Observer] // current observers; the pointed-to slice is never modified after publication
}

// Register adds o to the registry; it receives observations from every
// Notify call that starts after Register returns. Registering an observer
// that is already registered does nothing. Register panics if o is nil.
func (r *Registry) Register(o *Observer) {
	if o == nil {
		panic("observer: Register called with a nil Observer")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.load()
	for _, x := range cur {
		if x == o {
			return
		}
	}
	next := make([]*Observer, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, o)
	r.list.Store(&next)
}

// Unregister removes o from the registry. It is idempotent and does nothing
// for a nil or unregistered observer. Notify calls that start after
// Unregister returns no longer deliver to o; a Notify already in progress
// may still deliver one last observation.
func (r *Registry) Unregister(o *Observer) {
	if o == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.load()
	for i, x := range cur {
		if x == o {
			next := make([]*Observer, 0, len(cur)-1)
			next = append(next, cur[:i]...)
			next = append(next, cur[i+1:]...)
			r.list.Store(&next)
			return
		}
	}
}

// Notify offers ob to every registered observer whose filter accepts it, in
// registration order. It never blocks: an observer whose channel is full, or
// whose filter panics, misses ob and has its Dropped counter incremented.
// Notify is safe for concurrent use with itself, Register and Unregister.
func (r *Registry) Notify(ob Observation) {
	for _, o := range r.load() {
		o.deliver(ob)
	}
}

// Len returns the number of registered observers.
func (r *Registry) Len() int {
	return len(r.load())
}

// Active reports whether at least one observer is registered. It is a single
// atomic load with no lock, meant for hot paths that want to skip building an
// observation when nobody listens. The answer may be stale by the time the
// caller acts on it, which at worst means one observation built for nobody or
// missed by an observer registered concurrently.
func (r *Registry) Active() bool {
	return r.Len() > 0
}

// load returns the current observer slice; callers must not modify it.
func (r *Registry) load() []*Observer {
	if p := r.list.Load(); p != nil {
		return *p
	}
	return nil
}
