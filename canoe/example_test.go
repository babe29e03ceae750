package canoe_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
)

// counter is a replicated state machine: the sum of every number proposed.
type counter struct {
	mu  sync.Mutex
	sum int
}

func (c *counter) Apply(d canoe.LogData) error {
	n, err := strconv.Atoi(string(d))
	if err != nil {
		return err // returned to the proposer; every node skips it alike
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sum += n
	return nil
}

func (c *counter) Snapshot() (canoe.SnapshotData, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return canoe.SnapshotData(strconv.Itoa(c.sum)), nil
}

func (c *counter) Restore(d canoe.SnapshotData) error {
	n, err := strconv.Atoi(string(d))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sum = n
	return err
}

func (c *counter) value() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sum
}

// ExampleNode starts a three-node cluster on this machine, proposes from
// every node, and reads the replicated state everywhere.
func ExampleNode() {
	var nodes []*canoe.Node
	var fsms []*counter
	for i := range 3 {
		cfg := &canoe.NodeConfig{
			FSM:      &counter{},
			BindAddr: "127.0.0.1", // ports 0: free ones are picked
			Timing:   canoe.LocalProfile(),
			Logger:   hclog.NewNullLogger(),
		}
		if i == 0 {
			cfg.BootstrapNode = true // the first node founds the cluster
		} else {
			// The others join through the first one's HTTP API.
			cfg.BootstrapPeers = []string{fmt.Sprintf("http://127.0.0.1:%d", nodes[0].Self().ConfigPort)}
		}
		node, err := canoe.NewNode(cfg)
		if err != nil {
			panic(err)
		}
		if err := node.Start(); err != nil {
			panic(err)
		}
		defer node.Stop()
		nodes = append(nodes, node)
		fsms = append(fsms, cfg.FSM.(*counter))
	}

	// Propose from any node: followers forward to the leader. Propose
	// returns once the entry is committed and applied on this node.
	for i, node := range nodes {
		if err := node.Propose([]byte(strconv.Itoa(i + 1))); err != nil {
			panic(err)
		}
		fmt.Println("node", i, "sees", fsms[i].value())
	}

	// A failing Apply reports its error to the proposer only.
	fmt.Println(nodes[1].Propose([]byte("not a number")) != nil)

	// ReadBarrier makes a read on any node linearizable.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, node := range nodes {
		if err := node.ReadBarrier(ctx); err != nil {
			panic(err)
		}
		fmt.Println("node", i, "reads", fsms[i].value())
	}
	// Output:
	// node 0 sees 1
	// node 1 sees 3
	// node 2 sees 6
	// true
	// node 0 reads 6
	// node 1 reads 6
	// node 2 reads 6
}
