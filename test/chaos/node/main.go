// Command node is one canoe node for the chaos suite: a replicated
// append-only KV map (kvFSM) with a small JSON HTTP API on -kv-port.
//
//	POST /append?key=K&val=V        propose (ProposeContext)
//	GET  /get?key=K                  local read (not linearizable)
//	GET  /get?key=K&linearizable=1   ReadBarrier, then read
//	GET  /status                     node.Status, FSM digest
//
// With -recover it first recovers -data from the loss of a quorum
// (canoe.RecoverCluster) with the given members.
//
// Errors are {"error": text, "kind": k} with k one of no_leader, timeout,
// unknown_outcome, apply_error, not_running, removed, bad_request, error.
// The node prints one JSON line per leader or state change on stdout,
// stops gracefully on SIGTERM/SIGINT and exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		id         = flag.Uint64("id", 0, "node ID (0: generated, or the one in -data)")
		dataDir    = flag.String("data", "", "data directory")
		raftPort   = flag.Int("raft-port", 0, "raft port")
		apiPort    = flag.Int("api-port", 0, "canoe HTTP API port")
		gossipPort = flag.Int("gossip-port", 0, "gossip port")
		kvPort     = flag.Int("kv-port", 0, "KV HTTP API port")
		bootstrap  = flag.Bool("bootstrap", false, "found a new cluster")
		join       = flag.String("join", "", "http://host:port of a member's canoe API to join through")
		nonVoter   = flag.Bool("nonvoter", false, "join as a read replica (NodeConfig.NonVoter)")
		bind       = flag.String("bind", "127.0.0.1", "address every canoe listener binds")
		advertise  = flag.String("advertise", "", "address peers reach this node at (default: -bind)")
		logLevel   = flag.String("log-level", "info", "hclog level")
		snapMin    = flag.Uint64("snapshot-min", 200, "SnapshotConfig.MinCommittedLogs")
		snapEvery  = flag.Duration("snapshot-interval", 200*time.Millisecond, "SnapshotConfig.Interval")
		secret     = flag.String("secret", "", "ClusterSecret (16, 24 or 32 bytes); empty: none")
		recoverTo  = flag.String("recover", "", "before starting, run canoe.RecoverCluster on -data with these members (ID@HOST:RAFTPORT,...)")
	)
	flag.Parse()

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "canoe",
		Level:      hclog.LevelFromString(*logLevel),
		Output:     os.Stderr,
		TimeFormat: "15:04:05.000",
	})
	fsm := newKVFSM()
	cfg := &canoe.NodeConfig{
		ID:                *id,
		FSM:               fsm,
		RaftPort:          *raftPort,
		ConfigurationPort: *apiPort,
		GossipPort:        *gossipPort,
		BootstrapNode:     *bootstrap,
		NonVoter:          *nonVoter,
		DataDir:           *dataDir,
		Logger:            logger,
		BindAddr:          *bind,
		AdvertiseAddr:     *advertise,
		Timing:            canoe.LocalProfile(),
		ClusterSecret:     []byte(*secret),
		SnapshotConfig: &canoe.SnapshotConfig{
			Interval:             *snapEvery,
			MinCommittedLogs:     *snapMin,
			MaxRetainedSnapshots: 2,
		},
		InitBackoff: &canoe.InitializationBackoffArgs{
			InitialInterval:     100 * time.Millisecond,
			Multiplier:          1.5,
			MaxInterval:         time.Second,
			MaxElapsedTime:      30 * time.Second,
			RandomizationFactor: 0.2,
		},
	}
	if *join != "" {
		cfg.BootstrapPeers = []string{*join}
	}
	if *recoverTo != "" {
		members, err := canoe.ParseMembers(*recoverTo)
		if err != nil {
			return err
		}
		if err := canoe.RecoverCluster(cfg, members); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
	}
	node, err := canoe.NewNode(cfg)
	if err != nil {
		return err
	}
	ev := &events{}
	obsCh := make(chan canoe.Observation, 1024)
	obs := canoe.NewObserver(obsCh, func(o canoe.Observation) bool {
		switch o.(type) {
		case canoe.LeaderChanged, canoe.StateChanged, canoe.SnapshotTaken, canoe.SnapshotRestored:
			return true
		}
		return false
	})
	node.RegisterObserver(obs)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ev.print(node, obs, obsCh, done) }()

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*kvPort)))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newAPI(node, fsm, ev), ReadHeaderTimeout: 5 * time.Second}
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()

	if err := node.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	ev.emit(map[string]any{"event": "started", "id": node.UniqueID()})

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	err = node.Stop()
	close(done)
	wg.Wait()
	ev.emit(map[string]any{"event": "stopped"})
	return err
}

// events prints observations as JSON lines on stdout, one writer at a time.
type events struct {
	mu sync.Mutex // guards stdout writes, snapshots
	// snapshots counts SnapshotTaken and SnapshotRestored observations.
	snapshots [2]int
}

func (e *events) emit(m map[string]any) {
	m["t"] = time.Now().UnixMicro()
	b, _ := json.Marshal(m)
	e.mu.Lock()
	defer e.mu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

func (e *events) print(node *canoe.Node, obs *canoe.Observer, ch <-chan canoe.Observation, done <-chan struct{}) {
	defer node.UnregisterObserver(obs)
	for {
		select {
		case o := <-ch:
			switch o := o.(type) {
			case canoe.LeaderChanged:
				e.emit(map[string]any{"event": "leader", "leader": o.LeaderID, "term": o.Term})
			case canoe.StateChanged:
				e.emit(map[string]any{"event": "state", "from": o.From.String(), "to": o.To.String()})
			case canoe.SnapshotTaken:
				e.mu.Lock()
				e.snapshots[0]++
				e.mu.Unlock()
			case canoe.SnapshotRestored:
				e.mu.Lock()
				e.snapshots[1]++
				e.mu.Unlock()
			}
		case <-done:
			return
		}
	}
}

func (e *events) snapshotCounts() (taken, restored int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snapshots[0], e.snapshots[1]
}
