package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

// waitSuffrage waits until every running node sees exactly the members in
// want, with want[id] true for a voter and false for a read replica.
func (c *cluster) waitSuffrage(want map[uint64]bool) {
	c.t.Helper()
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		last = ""
		for _, m := range c.running() {
			peers := m.node.Peers()
			if len(peers) != len(want) {
				last = fmt.Sprintf("node %v sees %d members, want %d", m, len(peers), len(want))
				break
			}
			for _, p := range peers {
				voter, ok := want[p.ID]
				if !ok || p.Voter != voter || p.NonVoter == voter {
					last = fmt.Sprintf("node %v sees %+v, want member %v voter %v (read replica %v)", m, p, ok, voter, !voter)
					break
				}
			}
			if last != "" {
				break
			}
		}
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("suffrage not as wanted after 20s: %s", last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// apiSuffrage returns what GET /peers and GET /status of m say about member
// id: "voter", "nonvoter" (catching up) or "replica".
func apiSuffrage(t *testing.T, client *httpconfig.Client, m *member, id uint64) (peers, status string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := client.Peers(ctx, m.url)
	if err != nil {
		t.Fatalf("GET /peers of %v: %v", m, err)
	}
	st, err := client.Status(ctx, m.url)
	if err != nil {
		t.Fatalf("GET /status of %v: %v", m, err)
	}
	name := func(p httpconfig.Peer) string {
		if p.NonVoter && p.Suffrage == httpconfig.Nonvoter {
			return "replica"
		}
		return p.Suffrage
	}
	for _, p := range append(pr.RemotePeers, pr.Self()) {
		if p.ID == id {
			peers = name(p)
		}
	}
	for _, p := range st.Members {
		if p.ID == id {
			status = name(p)
		}
	}
	return peers, status
}

// TestReadReplicasJoinServeAndPromote: read replicas join by URL and by
// gossip, stay non-voters, serve linearizable reads, survive a restart,
// show as replicas in GET /peers and GET /status, and POST /peers/promote
// at a follower makes one a voter.
func TestReadReplicasJoinServeAndPromote(t *testing.T) {
	c := expectCluster(t, 2, nil)
	client := httpconfig.NewClient(nil, nil, 0)
	t.Cleanup(client.Close)
	leader := c.leader()
	voter := c.followers()[0]
	for i := range 20 {
		mustPropose(t, c.running()[i%2], fmt.Sprintf("before-%d", i))
	}

	cfg := c.config(false, voter.url)
	cfg.NonVoter = true
	byURL := c.mustStart(cfg)
	cfg = c.config(false, gossipAddr(voter))
	cfg.NonVoter = true
	byGossip := c.mustStart(cfg)
	want := map[uint64]bool{leader.id: true, voter.id: true, byURL.id: false, byGossip.id: false}
	c.waitSuffrage(want)
	waitSameState(t, 10*time.Second, 20, c.running()...)

	for _, m := range c.running() {
		for _, r := range []*member{byURL, byGossip} {
			if p, s := apiSuffrage(t, client, m, r.id); p != "replica" || s != "replica" {
				t.Fatalf("node %v shows replica %v as %q in /peers and %q in /status, want replica", m, r, p, s)
			}
		}
		if p, s := apiSuffrage(t, client, m, leader.id); p != "voter" || s != "voter" {
			t.Fatalf("node %v shows the leader as %q in /peers and %q in /status, want voter", m, p, s)
		}
	}

	// Linearizable reads on the replicas: each sees a write committed
	// before its ReadBarrier.
	for i := range 5 {
		data := fmt.Sprintf("write-%d", i)
		mustPropose(t, leader, data)
		for _, r := range []*member{byURL, byGossip} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := r.node.ReadBarrier(ctx)
			cancel()
			if err != nil {
				t.Fatalf("ReadBarrier on replica %v: %v", r, err)
			}
			if !r.fsm.has(data) {
				t.Fatalf("replica %v lacks %q right after its ReadBarrier", r, data)
			}
		}
	}
	mustPropose(t, byGossip, "from a replica")

	// A restart (without NonVoter in its config) keeps it a replica.
	byURL.cfg.NonVoter = false
	c.restart(byURL)
	mustPropose(t, leader, "after restart")
	c.waitSuffrage(want)
	waitSameState(t, 10*time.Second, 27, c.running()...)

	// Promote through a follower's API: it forwards to the leader.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Promote(ctx, voter.url, byGossip.id); err != nil {
		t.Fatalf("POST /peers/promote of %v at %v: %v", byGossip, voter, err)
	}
	want[byGossip.id] = true
	c.waitSuffrage(want)
	if p, s := apiSuffrage(t, client, byURL, byGossip.id); p != "voter" || s != "voter" {
		t.Fatalf("after the promotion %v shows %v as %q in /peers and %q in /status, want voter", byURL, byGossip, p, s)
	}
	if err := client.Promote(ctx, byURL.url, 0xdead); !errors.Is(err, httpconfig.ErrPeerNotFound) {
		t.Fatalf("POST /peers/promote of an unknown id: got %v, want 404", err)
	}
	mustPropose(t, byGossip, "as a voter")
	waitSameState(t, 10*time.Second, 28, c.running()...)
}

// TestReadReplicaDoesNotCountForBootstrapExpect: a NonVoter node with
// BootstrapExpect, up before the voters, is not counted: the three voters
// found the cluster, and the leader then adds the replica as a non-voter.
func TestReadReplicaDoesNotCountForBootstrapExpect(t *testing.T) {
	c := &cluster{t: t, logger: newLogger(t)}
	t.Cleanup(c.stopAll)
	ports := freePorts(t, 3*4)
	seeds := make([]string, 4)
	for i := range 4 {
		seeds[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3*i+2]))
	}
	config := func(i int) canoe.NodeConfig {
		cfg := c.config(false, seeds...)
		cfg.RaftPort, cfg.ConfigurationPort, cfg.GossipPort = ports[3*i], ports[3*i+1], ports[3*i+2]
		cfg.BootstrapExpect = 3
		return cfg
	}
	rcfg := config(3)
	rcfg.NonVoter = true
	replica := c.mustStart(rcfg)
	want := map[uint64]bool{replica.id: false}
	for i := range 3 {
		want[c.mustStart(config(i)).id] = true
	}
	c.waitSuffrage(want)
	mustPropose(t, replica, "formed")
	waitSameState(t, 10*time.Second, 1, c.running()...)
}
