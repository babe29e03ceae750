package canoe

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// testFSM records every proposal it applies, in order. Proposals whose data
// is "fail" return an error (deterministically, on every node).
type testFSM struct {
	mu      sync.Mutex // guards entries
	entries []string
}

var errFail = errors.New("proposal asked to fail")

func (f *testFSM) Apply(d LogData) error {
	if string(d) == "fail" {
		return errFail
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(d))
	return nil
}

func (f *testFSM) Snapshot() (SnapshotData, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return json.Marshal(f.entries)
}

func (f *testFSM) Restore(d SnapshotData) error {
	var entries []string
	if err := json.Unmarshal(d, &entries); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	return nil
}

func (f *testFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

func (f *testFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

// testCluster is a cluster of nodes on raft's in-memory transport, meant to
// run inside a synctest bubble.
type testCluster struct {
	t      *testing.T
	mu     sync.Mutex // guards nodes, fsms, trans
	nodes  map[uint64]*Node
	fsms   map[uint64]*testFSM
	trans  map[uint64]*raft.InmemTransport
	nextID uint64
	tweak  func(*NodeConfig)
}

// newTestCluster starts size nodes: the first bootstraps, the others are
// added with AddPeer; it returns once all are voters.
func newTestCluster(t *testing.T, size int, tweak func(*NodeConfig)) *testCluster {
	t.Helper()
	c := &testCluster{
		t:     t,
		nodes: make(map[uint64]*Node),
		fsms:  make(map[uint64]*testFSM),
		trans: make(map[uint64]*raft.InmemTransport),
		tweak: tweak,
	}
	t.Cleanup(c.stopAll)
	first := c.addNode(true)
	testutil.WaitFor(t, 10*time.Second, "first leader", func() bool { return first.IsLeader() })
	for i := 1; i < size; i++ {
		c.join()
	}
	c.waitVoters(size)
	return c
}

// addNode creates and starts a node; bootstrap founds the cluster.
func (c *testCluster) addNode(bootstrap bool) *Node {
	c.t.Helper()
	return c.addNodeWith(bootstrap, nil)
}

// addNodeWith is addNode with tweak applied to this node's config after
// the cluster's.
func (c *testCluster) addNodeWith(bootstrap bool, tweak func(*NodeConfig)) *Node {
	c.t.Helper()
	n, err := c.startNodeWith(bootstrap, tweak)
	if err != nil {
		c.t.Fatalf("Start: %v", err)
	}
	return n
}

// startNode is addNode, returning Start's error (the node is then not
// added).
func (c *testCluster) startNode(bootstrap bool) (*Node, error) {
	c.t.Helper()
	return c.startNodeWith(bootstrap, nil)
}

// startNodeWith is startNode with tweak applied to this node's config
// after the cluster's.
func (c *testCluster) startNodeWith(bootstrap bool, tweak func(*NodeConfig)) (*Node, error) {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	addr, trans := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("127.0.0.1:%d", 10000+id)))
	for _, other := range c.trans {
		trans.Connect(other.LocalAddr(), other)
		other.Connect(addr, trans)
	}
	c.trans[id] = trans
	fsm := &testFSM{}
	c.fsms[id] = fsm
	c.mu.Unlock()

	cfg := &NodeConfig{
		ID:             id,
		FSM:            fsm,
		BootstrapNode:  bootstrap,
		Timing:         LocalProfile(),
		Logger:         hclog.New(&hclog.LoggerOptions{Name: "canoe", Level: hclog.Warn, Output: testWriter{c.t}}),
		SnapshotConfig: &SnapshotConfig{Interval: -1},
		transport:      trans,
		forwarder:      inmemForwarder{c},
	}
	if c.tweak != nil {
		c.tweak(cfg)
	}
	if tweak != nil {
		tweak(cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		c.t.Fatalf("NewNode: %v", err)
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n, nil
}

// join adds a new node through the leader.
func (c *testCluster) join() *Node {
	c.t.Helper()
	n := c.addNode(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.leader().AddPeer(ctx, Peer{ID: n.id, Host: "127.0.0.1", RaftPort: int(10000 + n.id)}); err != nil {
		c.t.Fatalf("AddPeer(%d): %v", n.id, err)
	}
	return n
}

func (c *testCluster) node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *testCluster) fsm(id uint64) *testFSM {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fsms[id]
}

func (c *testCluster) running() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		if n.IsRunning() {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *Node) int { return cmp.Compare(a.id, b.id) })
	return out
}

// leader waits for a single running leader and returns it.
func (c *testCluster) leader() *Node {
	c.t.Helper()
	var l *Node
	testutil.WaitFor(c.t, 10*time.Second, "a leader", func() bool {
		l = nil
		for _, n := range c.running() {
			if n.IsLeader() {
				if l != nil {
					return false
				}
				l = n
			}
		}
		return l != nil
	})
	return l
}

func (c *testCluster) followers() []*Node {
	l := c.leader()
	var out []*Node
	for _, n := range c.running() {
		if n != l {
			out = append(out, n)
		}
	}
	return out
}

func (c *testCluster) waitVoters(want int) {
	c.t.Helper()
	testutil.WaitFor(c.t, 20*time.Second, fmt.Sprintf("%d voters", want), func() bool {
		voters := 0
		for _, p := range c.leader().Peers() {
			if p.Voter {
				voters++
			}
		}
		return voters == want
	})
}

// waitConverged waits until every running node's FSM holds want entries and
// all hold the same ones.
func (c *testCluster) waitConverged(want int) []string {
	c.t.Helper()
	var ref []string
	defer func() {
		if c.t.Failed() {
			for _, n := range c.running() {
				c.t.Logf("node %d (%s): %q", n.id, n.Status().State, c.fsm(n.id).list())
			}
		}
	}()
	testutil.WaitFor(c.t, 20*time.Second, fmt.Sprintf("all FSMs at %d entries", want), func() bool {
		ref = nil
		for _, n := range c.running() {
			got := c.fsm(n.id).list()
			if len(got) != want {
				return false
			}
			if ref == nil {
				ref = got
			} else if !slices.Equal(ref, got) {
				c.t.Fatalf("FSMs diverged: node %d has %v, another has %v", n.id, got, ref)
			}
		}
		return true
	})
	return ref
}

// partition cuts node id off from every other node (both directions).
func (c *testCluster) partition(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	me := c.trans[id]
	for oid, other := range c.trans {
		if oid != id {
			me.Disconnect(other.LocalAddr())
			other.Disconnect(me.LocalAddr())
		}
	}
}

// heal reconnects node id to every other node.
func (c *testCluster) heal(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	me := c.trans[id]
	for oid, other := range c.trans {
		if oid != id {
			me.Connect(other.LocalAddr(), other)
			other.Connect(me.LocalAddr(), me)
		}
	}
}

// cut breaks the link between nodes a and b (both directions); connect
// restores it.
func (c *testCluster) cut(a, b uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ta, tb := c.trans[a], c.trans[b]
	ta.Disconnect(tb.LocalAddr())
	tb.Disconnect(ta.LocalAddr())
}

func (c *testCluster) connect(a, b uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ta, tb := c.trans[a], c.trans[b]
	ta.Connect(tb.LocalAddr(), tb)
	tb.Connect(ta.LocalAddr(), ta)
}

func (c *testCluster) stopAll() {
	for _, n := range c.running() {
		if err := n.Stop(); err != nil {
			c.t.Errorf("Stop(%d): %v", n.id, err)
		}
	}
	// Raft's leadership-transfer goroutine is not joined by Shutdown and may
	// wait out an RPC timeout to a stopped node; let virtual time pass.
	time.Sleep(time.Minute)
}

// inmemForwarder forwards a follower's requests by calling the leader node.
type inmemForwarder struct{ c *testCluster }

func (f inmemForwarder) leader(id uint64) (*Node, error) {
	n := f.c.node(id)
	if n == nil || !n.IsRunning() {
		return nil, fmt.Errorf("%w: leader %d unreachable", ErrNoLeader, id)
	}
	return n, nil
}

// DialForward connects to the node's forward channel over a pipe.
func (f inmemForwarder) DialForward(ctx context.Context, id uint64) (net.Conn, error) {
	n, err := f.leader(id)
	if err != nil {
		return nil, err
	}
	client, server := net.Pipe()
	if err := n.acceptForwardConn(server); err != nil {
		client.Close()
		return nil, fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return client, nil
}

func (f inmemForwarder) AddPeer(ctx context.Context, leader uint64, p Peer) error {
	n, err := f.leader(leader)
	if err != nil {
		return err
	}
	return n.AddPeer(ctx, p)
}

func (f inmemForwarder) RemovePeer(ctx context.Context, leader uint64, id uint64) error {
	n, err := f.leader(leader)
	if err != nil {
		return err
	}
	return n.RemovePeer(ctx, id)
}

func (f inmemForwarder) Promote(ctx context.Context, leader uint64, id uint64) error {
	n, err := f.leader(leader)
	if err != nil {
		return err
	}
	return n.Promote(ctx, id)
}

func (f inmemForwarder) Membership(_ context.Context, peer uint64) (uint64, []uint64, error) {
	n, err := f.leader(peer)
	if err != nil {
		return 0, nil, err
	}
	st := n.Status()
	return st.LeaderID, st.CommittedMembers, nil
}

// testWriter sends logs to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
