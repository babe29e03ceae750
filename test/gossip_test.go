package test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// freePorts returns n distinct ports, each free for both TCP and UDP on
// 127.0.0.1 and picked by the kernel. They are all held until all are
// picked, so they cannot collide with each other; nodes that must know each
// other's addresses before starting bind every listener to these ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var held []func() error
	defer func() {
		for _, c := range held {
			c()
		}
	}()
	for len(ports) < n {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tl.Close)
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		held = append(held, ul.Close)
		ports = append(ports, port)
	}
	return ports
}

// expectCluster starts size nodes with BootstrapExpect = size, concurrently
// and in random order, each seeded with every node's gossip address.
func expectCluster(t testing.TB, size int, tweak func(*canoe.NodeConfig)) *cluster {
	t.Helper()
	c := &cluster{t: t, logger: newLogger(t)}
	t.Cleanup(c.stopAll)
	ports := freePorts(t, 3*size) // raft, API and gossip port of each node
	seeds := make([]string, size)
	for i := range size {
		seeds[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3*i+2]))
	}
	var wg sync.WaitGroup
	errs := make(chan error, size)
	for _, i := range rand.Perm(size) {
		cfg := c.config(false, seeds...)
		cfg.RaftPort, cfg.ConfigurationPort, cfg.GossipPort = ports[3*i], ports[3*i+1], ports[3*i+2]
		cfg.BootstrapExpect = size
		if tweak != nil {
			tweak(&cfg)
		}
		wg.Go(func() {
			time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
			if _, err := c.start(cfg); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("start: %v", err)
	}
	c.waitVoters(size)
	return c
}

// gossipAddr is a member's gossip seed address.
func gossipAddr(m *member) string {
	s := m.node.Self()
	return net.JoinHostPort(s.Host, strconv.Itoa(s.GossipPort))
}

func memberIDs(n *canoe.Node) []uint64 {
	var ids []uint64
	for _, p := range n.Peers() {
		ids = append(ids, p.ID)
	}
	return ids
}

func TestBootstrapExpectFormsExactlyOneCluster(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	for r := range rounds {
		t.Run(fmt.Sprintf("round %d", r), func(t *testing.T) {
			c := expectCluster(t, 3, nil)
			leader := c.leader()
			want := memberIDs(leader.node)
			for _, m := range c.running() {
				if got := memberIDs(m.node); !slices.Equal(got, want) {
					t.Fatalf("node %v sees members %v, leader sees %v: two clusters", m, got, want)
				}
			}
			mustPropose(t, c.followers()[0], "formed")
			waitSameState(t, 10*time.Second, 1, c.running()...)
			// Every node knows every member's API and gossip address (the
			// leader records them from gossip: nobody called AddPeer).
			for _, m := range c.running() {
				testutil.WaitFor(t, 10*time.Second, "all member addresses known", func() bool {
					for _, p := range m.node.Peers() {
						if p.ConfigPort == 0 || p.GossipPort == 0 {
							return false
						}
					}
					return true
				})
			}
		})
	}
}

func TestGossipJoinPromoteAndDestroy(t *testing.T) {
	c := expectCluster(t, 3, nil)
	for i := range 50 {
		mustPropose(t, c.running()[i%3], fmt.Sprintf("before-%d", i))
	}
	// A fourth node knows only one gossip seed.
	cfg := c.config(false, gossipAddr(c.running()[0]))
	start := time.Now()
	fourth := c.mustStart(cfg)
	c.waitVoters(4)
	t.Logf("fourth node: Start to voter in %v", time.Since(start))
	mustPropose(t, fourth, "from the fourth")
	waitSameState(t, 10*time.Second, 51, c.running()...)

	// Destroy leaves gracefully: the others drop it from the configuration.
	if err := fourth.node.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	leader := c.leader()
	testutil.WaitFor(t, 5*time.Second, "the destroyed node to leave the configuration", func() bool {
		return !slices.Contains(memberIDs(leader.node), fourth.id)
	})
	mustPropose(t, leader, "after destroy")
}

func TestDeadNodeRemovedAfterTimeoutWhileQuorumServes(t *testing.T) {
	const timeout = 2 * time.Second
	c := expectCluster(t, 3, func(cfg *canoe.NodeConfig) { cfg.DeadNodeTimeout = timeout })
	fourth := c.mustStart(func() canoe.NodeConfig {
		cfg := c.config(false, gossipAddr(c.running()[0]))
		cfg.DeadNodeTimeout = timeout
		return cfg
	}())
	c.waitVoters(4)
	// Stop without leaving: to the others it looks like a crash.
	killed := c.followers()[0]
	if err := killed.node.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for i := range 10 {
		mustPropose(t, c.running()[i%3], fmt.Sprintf("during-%d", i))
	}
	leader := c.leader()
	testutil.WaitFor(t, 30*time.Second, "the dead node's removal", func() bool {
		return !slices.Contains(memberIDs(leader.node), killed.id)
	})
	if took := time.Since(stopped); took < timeout {
		t.Fatalf("dead node removed after %v, before DeadNodeTimeout %v", took, timeout)
	}
	mustPropose(t, fourth, "after removal")
	waitSameState(t, 10*time.Second, 11, c.running()...)
}

func TestRestartedMemberRejoinsWithItsData(t *testing.T) {
	c := expectCluster(t, 3, nil)
	for i := range 20 {
		mustPropose(t, c.running()[i%3], fmt.Sprintf("a-%d", i))
	}
	m := c.followers()[0]
	before := m.node.Self()
	if err := m.node.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mustPropose(t, c.running()[i%2], fmt.Sprintf("b-%d", i))
	}
	// A new Node on the same DataDir, as a new process would start it: ID
	// and ports 0 (read back), a fresh FSM, no seeds (the replicated member
	// addresses lead it back to the gossip pool).
	cfg := m.cfg
	cfg.ID, cfg.RaftPort, cfg.ConfigurationPort, cfg.GossipPort = 0, 0, 0, 0
	cfg.BootstrapExpect, cfg.BootstrapPeers = 0, nil
	cfg.FSM = newFSM()
	n, err := canoe.NewNode(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	c.mu.Lock()
	m.node, m.fsm, m.cfg = n, cfg.FSM.(*recFSM), cfg
	c.mu.Unlock()
	if after := n.Self(); after.ID != before.ID || after.RaftPort != before.RaftPort || after.GossipPort != before.GossipPort {
		t.Fatalf("restarted as %+v, want the ID and ports of %+v", after, before)
	}
	waitSameState(t, 15*time.Second, 40, c.running()...)
	if got := len(m.node.Peers()); got != 3 {
		t.Fatalf("restarted member sees %d members, want 3", got)
	}
	mustPropose(t, m, "after restart")
}

func TestOtherClusterOrSecretStaysOut(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	c := expectCluster(t, 3, func(cfg *canoe.NodeConfig) { cfg.ClusterSecret = secret })
	seed := gossipAddr(c.running()[0])
	short := &canoe.InitializationBackoffArgs{InitialInterval: 50 * time.Millisecond, Multiplier: 2, MaxInterval: 200 * time.Millisecond, MaxElapsedTime: 3 * time.Second}
	for _, tt := range []struct {
		name  string
		tweak func(*canoe.NodeConfig)
	}{
		{"another ClusterID", func(cfg *canoe.NodeConfig) { cfg.ClusterID = 0xbad; cfg.ClusterSecret = secret }},
		{"wrong secret", func(cfg *canoe.NodeConfig) { cfg.ClusterSecret = []byte("fedcba9876543210fedcba9876543210") }},
		{"no secret", func(*canoe.NodeConfig) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := c.config(false, seed)
			cfg.InitBackoff = short
			tt.tweak(&cfg)
			n, err := canoe.NewNode(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = n.Start()
			_ = n.Stop()
			if err == nil {
				t.Fatal("a node of another cluster or with a wrong secret was admitted")
			}
			if !strings.Contains(err.Error(), "likely cause") {
				t.Fatalf("Start error %q does not say why the join failed", err)
			}
			t.Logf("refused as expected: %v", err)
			if got := len(c.leader().node.Peers()); got != 3 {
				t.Fatalf("cluster has %d members, want 3", got)
			}
		})
	}
}
