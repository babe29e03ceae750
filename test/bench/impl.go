package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/canoe-raft/canoe/canoe"
)

// impl is one replicated-log implementation under test: a whole cluster of
// nodes in this process, over TCP on 127.0.0.1, with its data under dir.
type impl interface {
	name() string
	// start brings up the cluster and returns once it has a leader and every
	// node is a voting member.
	start(dir string) error
	// propose replicates data and returns once it is committed (and applied
	// on the node that proposed it).
	propose(ctx context.Context, data []byte) error
	// stop shuts every node down.
	stop()
}

// reader is an impl that serves the read cells. useKV, called before
// start, makes every node's state machine a kvStore (a map); read makes one
// linearizable read of key on the node the cell targets, the way the
// implementation offers (canoe: ReadBarrier; raw raft: VerifyLeader; both
// then read the local map; dragonboat: SyncRead), and returns the value.
type reader interface {
	impl
	useKV()
	read(ctx context.Context, key uint64) ([]byte, error)
}

// failoverImpl is an impl whose leader can be stopped to measure failover.
type failoverImpl interface {
	impl
	// stopLeader stops the current leader the way the implementation allows
	// (described by the returned string).
	stopLeader() (how string, err error)
	// proposeSurvivor makes one proposal on a surviving node (forwarding or
	// seeking the new leader as needed).
	proposeSurvivor(ctx context.Context, data []byte) error
}

// termer reports the raft term the proposing node sees, to count
// elections during a window.
type termer interface {
	term() uint64
}

// electionTuner is an impl whose election timeout can be set (in RTTs).
type electionTuner interface {
	setElectionRTT(uint64)
}

// impls maps the -impls names to constructors for a cluster of n nodes.
var impls = map[string]func(nodes int) impl{
	"canoe-leader":   func(n int) impl { return &canoeImpl{nodes: n} },
	"canoe-follower": func(n int) impl { return &canoeImpl{nodes: n, follower: true} },
	"canoe-bolt":     func(n int) impl { return &canoeImpl{nodes: n, store: canoe.LogStoreBolt} },
	"canoe-secret":   func(n int) impl { return &canoeImpl{nodes: n, secret: true} },
	"raft":           func(n int) impl { return &raftImpl{nodes: n} },
	"raft-wal":       func(n int) impl { return &raftImpl{nodes: n, wal: true} },
	// "dragonboat" is registered by impl_dragonboat.go (cgo builds) or
	// impl_dragonboat_nocgo.go (a stub that says why it cannot run).
}

// rawName is the implementation the ratios are taken against.
const rawName = "raft"

func implNames() string {
	var names []string
	for k := range impls {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// implementations that cannot bind port 0 themselves.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
