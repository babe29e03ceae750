package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
)

// canoeImpl runs canoe nodes with the LocalProfile timing: node 0 founds the
// cluster and the others join it through its HTTP API. Proposals and reads
// go to the leader, or to a follower (which forwards them) when follower is
// set. The log store is canoe's default unless store says otherwise; the
// FSM counts entries, or is a kvStore when kv is set (the read cells). With
// secret the nodes share a ClusterSecret: authenticated, sealed raft
// connections and signed API requests.
type canoeImpl struct {
	nodes    int
	follower bool
	secret   bool
	store    canoe.LogStore
	kv       bool
	ns       []*canoe.Node
	dirs     map[*canoe.Node]string
	fsms     map[*canoe.Node]canoe.FSM
	target   *canoe.Node
	targetKV *canoeKV // target's FSM when kv is set

	// Hooks for measurements other than the cells: configure adjusts each
	// node's config, started sees each node once it started.
	configure func(*canoe.NodeConfig)
	started   func(*canoe.Node, *canoe.NodeConfig)
}

func (c *canoeImpl) name() string {
	switch {
	case c.follower:
		return "canoe-follower"
	case c.store == canoe.LogStoreBolt:
		return "canoe-bolt"
	case c.secret:
		return "canoe-secret"
	}
	return "canoe-leader"
}

// canoeCounter is the trivial FSM: it counts the entries applied.
type canoeCounter struct{ n atomic.Uint64 }

func (f *canoeCounter) Apply(canoe.LogData) error { f.n.Add(1); return nil }

func (f *canoeCounter) Snapshot() (canoe.SnapshotData, error) {
	return binary.BigEndian.AppendUint64(nil, f.n.Load()), nil
}

func (f *canoeCounter) Restore(s canoe.SnapshotData) error {
	if len(s) != 8 {
		return errors.New("bad snapshot")
	}
	f.n.Store(binary.BigEndian.Uint64(s))
	return nil
}

// benchSecret is the ClusterSecret of canoe-secret's nodes.
var benchSecret = []byte("canoe bench secret, 32 bytes !!!")

func canoeConfig(dir string) *canoe.NodeConfig {
	return &canoe.NodeConfig{
		FSM:      &canoeCounter{},
		BindAddr: "127.0.0.1",
		DataDir:  dir,
		Timing:   canoe.LocalProfile(),
		Logger:   hclog.NewNullLogger(),
	}
}

// startNode starts a node in dir that founds the cluster (join == nil)
// or joins it through join's HTTP API.
func (c *canoeImpl) startNode(dir string, join *canoe.Node) (*canoe.Node, error) {
	cfg := canoeConfig(dir)
	cfg.LogStore = c.store
	if c.secret {
		cfg.ClusterSecret = benchSecret
	}
	if c.kv {
		cfg.FSM = &canoeKV{}
	}
	if join == nil {
		cfg.BootstrapNode = true
	} else {
		cfg.BootstrapPeers = []string{fmt.Sprintf("http://127.0.0.1:%d", join.Self().ConfigPort)}
	}
	if c.configure != nil {
		c.configure(cfg)
	}
	n, err := canoe.NewNode(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	if c.dirs == nil {
		c.dirs, c.fsms = map[*canoe.Node]string{}, map[*canoe.Node]canoe.FSM{}
	}
	c.ns, c.dirs[n], c.fsms[n] = append(c.ns, n), dir, cfg.FSM
	if c.started != nil {
		c.started(n, cfg)
	}
	return n, nil
}

func (c *canoeImpl) start(dir string) error {
	var first *canoe.Node
	for i := range c.nodes {
		n, err := c.startNode(filepath.Join(dir, fmt.Sprintf("n%d", i)), first)
		if err != nil {
			return fmt.Errorf("start node %d: %w", i, err)
		}
		if i == 0 {
			first = n
		}
	}
	if err := waitFor(30*time.Second, func() bool { return c.leader() != nil && c.voters() == c.nodes }); err != nil {
		return fmt.Errorf("canoe cluster did not form: %w", err)
	}
	c.target = c.leader()
	if c.follower {
		c.target = c.survivor(c.target)
	}
	c.targetKV, _ = c.fsms[c.target].(*canoeKV)
	return nil
}

func (c *canoeImpl) leader() *canoe.Node {
	for _, n := range c.ns {
		if n.IsRunning() && n.IsLeader() {
			return n
		}
	}
	return nil
}

// voters counts the voters in the leader's configuration.
func (c *canoeImpl) voters() int {
	l := c.leader()
	if l == nil {
		return 0
	}
	v := 0
	for _, p := range l.Peers() {
		if p.Voter {
			v++
		}
	}
	return v
}

// survivor returns a running node other than not.
func (c *canoeImpl) survivor(not *canoe.Node) *canoe.Node {
	for _, n := range c.ns {
		if n != not && n.IsRunning() {
			return n
		}
	}
	return nil
}

func (c *canoeImpl) propose(ctx context.Context, data []byte) error {
	return c.target.ProposeContext(ctx, data)
}

func (c *canoeImpl) useKV() { c.kv = true }

// read is ReadBarrier on the target node, then a read of its map.
func (c *canoeImpl) read(ctx context.Context, key uint64) ([]byte, error) {
	if err := c.target.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return c.targetKV.get(key), nil
}

func (c *canoeImpl) stop() {
	for _, n := range c.ns {
		n.Stop()
	}
}

// stopLeader uses Stop, which is graceful: a stopping leader first hands
// leadership to another voter. crash.go measures a crash.
func (c *canoeImpl) stopLeader() (string, error) {
	l := c.leader()
	if l == nil {
		return "", errors.New("no leader")
	}
	c.target = c.survivor(l)
	return "graceful Stop() of the leader (hands leadership over), LocalProfile", l.Stop()
}

func (c *canoeImpl) proposeSurvivor(ctx context.Context, data []byte) error {
	return c.target.ProposeContext(ctx, data)
}

// joinToVoter starts one more node that joins by URL through the leader's
// HTTP API and returns how long Start took and how long until the leader
// counts it as a voter, both from the call to NewNode.
func (c *canoeImpl) joinToVoter(dir string) (started, voter time.Duration, err error) {
	l := c.leader()
	if l == nil {
		return 0, 0, errors.New("no leader")
	}
	t0 := time.Now()
	n, err := c.join(dir)
	if err != nil {
		return 0, 0, err
	}
	started = time.Since(t0)
	id := n.UniqueID()
	err = waitFor(30*time.Second, func() bool {
		for _, p := range l.Peers() {
			if p.ID == id && p.Voter {
				return true
			}
		}
		return false
	})
	return started, time.Since(t0), err
}

// join starts one more node in dir/joiner that joins through the leader.
func (c *canoeImpl) join(dir string) (*canoe.Node, error) {
	l := c.leader()
	if l == nil {
		return nil, errors.New("no leader")
	}
	return c.startNode(filepath.Join(dir, "joiner"), l)
}

// waitFor polls cond every millisecond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (c *canoeImpl) term() uint64 { return c.target.Status().Term }
