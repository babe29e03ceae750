package canoe_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
)

// benchCluster starts three nodes on 127.0.0.1 with real data dirs.
func benchCluster(b *testing.B) []*canoe.Node {
	b.Helper()
	var nodes []*canoe.Node
	for i := range 3 {
		cfg := &canoe.NodeConfig{
			FSM:      &counter{},
			BindAddr: "127.0.0.1",
			DataDir:  b.TempDir(),
			Timing:   canoe.LocalProfile(),
			Logger:   hclog.NewNullLogger(),
		}
		if i == 0 {
			cfg.BootstrapNode = true
		} else {
			cfg.BootstrapPeers = []string{fmt.Sprintf("http://127.0.0.1:%d", nodes[0].Self().ConfigPort)}
		}
		n, err := canoe.NewNode(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Stop() })
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		voters := 0
		for _, p := range nodes[0].Peers() {
			if p.Voter {
				voters++
			}
		}
		if voters == 3 && nodes[0].IsLeader() {
			return nodes
		}
		if time.Now().After(deadline) {
			b.Fatal("cluster did not form")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// throughput runs clients concurrent proposers on n for d and returns ops/s.
func throughput(b *testing.B, n *canoe.Node, clients int, d time.Duration) float64 {
	var ops atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := n.ProposeContext(context.Background(), []byte("1")); err != nil {
					b.Errorf("Propose: %v", err)
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(ops.Load()) / d.Seconds()
}

// BenchmarkForwardedVsLeader measures proposals made on a follower (forwarded
// to the leader over the raft port's forward stream) against proposals made on the leader, at
// 16 concurrent clients, interleaved in rounds on one cluster, and reports
// the median of the per-round ratios. Run it with
//
//	go test -run '^$' -bench ForwardedVsLeader -benchtime 1x ./canoe
func BenchmarkForwardedVsLeader(b *testing.B) {
	nodes := benchCluster(b)
	leader, follower := nodes[0], nodes[1]
	const clients, rounds, window = 16, 5, time.Second
	for b.Loop() {
		var ratios, leaderOps, followerOps []float64
		for r := range rounds {
			var l, f float64
			if r%2 == 0 { // alternate the order against drift
				l, f = throughput(b, leader, clients, window), throughput(b, follower, clients, window)
			} else {
				f, l = throughput(b, follower, clients, window), throughput(b, leader, clients, window)
			}
			leaderOps, followerOps, ratios = append(leaderOps, l), append(followerOps, f), append(ratios, f/l)
		}
		b.ReportMetric(median(leaderOps), "leader-ops/s")
		b.ReportMetric(median(followerOps), "follower-ops/s")
		b.ReportMetric(median(ratios), "follower/leader")
	}
}

// BenchmarkReadBarrier measures one client's ReadBarrier on the leader and
// on a follower of a three-node cluster. Profile it with
//
//	go test -run '^$' -bench ReadBarrier -cpuprofile cpu.out ./canoe
func BenchmarkReadBarrier(b *testing.B) {
	nodes := benchCluster(b)
	if err := nodes[1].ProposeContext(b.Context(), []byte("1")); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		node *canoe.Node
	}{{"leader", nodes[0]}, {"follower", nodes[1]}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.node.ReadBarrier(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkGossipJoinAndLeave measures, with the LAN profile on loopback,
// the time from Start of a fourth node that knows one gossip seed to its
// promotion to voter, and the time from its graceful leave (Destroy) to its
// removal from the leader's configuration; it reports the medians of five
// trials. Run it with
//
//	go test -run '^$' -bench GossipJoinAndLeave -benchtime 1x ./canoe
func BenchmarkGossipJoinAndLeave(b *testing.B) {
	nodes := benchCluster(b)
	leader := nodes[0]
	seed := fmt.Sprintf("127.0.0.1:%d", leader.Self().GossipPort)
	isMember := func(id uint64) (member, voter bool) {
		for _, p := range leader.Peers() {
			if p.ID == id {
				return true, p.Voter
			}
		}
		return false, false
	}
	for b.Loop() {
		var joins, leaves []float64
		for range 5 {
			n, err := canoe.NewNode(&canoe.NodeConfig{
				FSM: &counter{}, BindAddr: "127.0.0.1", DataDir: b.TempDir(),
				Timing: canoe.LANProfile(), Logger: hclog.NewNullLogger(),
				BootstrapPeers: []string{seed},
			})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := n.Start(); err != nil {
				b.Fatal(err)
			}
			for _, voter := isMember(n.UniqueID()); !voter; _, voter = isMember(n.UniqueID()) {
				if time.Since(start) > time.Minute {
					b.Fatal("fourth node never became a voter")
				}
				time.Sleep(time.Millisecond)
			}
			joins = append(joins, time.Since(start).Seconds()*1000)
			start = time.Now()
			destroyed := make(chan error, 1)
			go func() { destroyed <- n.Destroy() }()
			for member, _ := isMember(n.UniqueID()); member; member, _ = isMember(n.UniqueID()) {
				time.Sleep(time.Millisecond)
			}
			leaves = append(leaves, time.Since(start).Seconds()*1000)
			if err := <-destroyed; err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(median(joins), "join-to-voter-ms")
		b.ReportMetric(median(leaves), "leave-to-removal-ms")
	}
}
