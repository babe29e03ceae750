package httpconfig

import (
	"context"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeNode implements Membership, Promoter and StatusSource,
// records the calls that would change something, and fails, blocks or
// panics as told.
type fakeNode struct {
	mu        sync.Mutex // guards every field below
	self      Peer
	peers     []Peer // self included
	added     []Peer
	removed   []uint64
	promoted  []uint64
	err       error         // returned by AddPeer, RemovePeer, Promote
	unhealthy error         // returned by Healthy
	panicMsg  string        // if set, every method panics with it
	block     bool          // AddPeer and Promote wait for ctx to end
	entered   chan struct{} // if set, told when a blocking call starts waiting
	status    Status
}

func newFakeNode() *fakeNode {
	self := Peer{ID: 1, Host: "10.0.0.1", RaftPort: 7001, ConfigPort: 8001, GossipPort: 9001, Suffrage: Voter}
	return &fakeNode{
		self: self,
		peers: []Peer{
			{ID: 3, Host: "10.0.0.3", RaftPort: 7003, ConfigPort: 8003, Suffrage: Nonvoter},
			self,
			{ID: 2, Host: "10.0.0.2", RaftPort: 7002, ConfigPort: 8002, Suffrage: Voter},
		},
		status: Status{ID: 1, State: "Leader", LeaderID: 1, Term: 3, CommitIndex: 40,
			AppliedIndex: 39, LastIndex: 41},
	}
}

// mutations counts the calls that change or would change the cluster.
func (f *fakeNode) mutations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.added) + len(f.removed) + len(f.promoted)
}

// behavior is what a fake call is told to do.
type behavior struct {
	err     error
	block   bool
	entered chan struct{}
}

// enter applies the fake's panic setting and returns what the call does.
func (f *fakeNode) enter() behavior {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	return behavior{err: f.err, block: f.block, entered: f.entered}
}

// wait blocks until ctx ends if b says so.
func (b behavior) wait(ctx context.Context) error {
	if !b.block {
		return nil
	}
	if b.entered != nil {
		b.entered <- struct{}{}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeNode) Self() Peer {
	f.enter()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.self
}

func (f *fakeNode) Peers() []Peer {
	f.enter()
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers)
}

func (f *fakeNode) AddPeer(ctx context.Context, p Peer) error {
	b := f.enter()
	f.mu.Lock()
	f.added = append(f.added, p)
	f.mu.Unlock()
	if err := b.wait(ctx); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p.Suffrage = Nonvoter
	f.peers = append(f.peers, p)
	return nil
}

func (f *fakeNode) RemovePeer(ctx context.Context, id uint64) error {
	b := f.enter()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	if b.err != nil {
		return b.err
	}
	f.peers = slices.DeleteFunc(f.peers, func(p Peer) bool { return p.ID == id })
	return nil
}

func (f *fakeNode) Promote(ctx context.Context, id uint64) error {
	b := f.enter()
	f.mu.Lock()
	f.promoted = append(f.promoted, id)
	f.mu.Unlock()
	if err := b.wait(ctx); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.peers, func(p Peer) bool { return p.ID == id })
	if i < 0 {
		return ErrPeerNotFound
	}
	f.peers[i].Suffrage, f.peers[i].NonVoter = Voter, false
	return nil
}

func (f *fakeNode) Status() Status {
	f.enter()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Members = slices.Clone(f.peers)
	return st
}

func (f *fakeNode) Healthy() error {
	f.enter()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unhealthy
}

// config returns a Config with f as every component.
func (f *fakeNode) config() Config {
	return Config{Membership: f, Promoter: f, Status: f}
}
