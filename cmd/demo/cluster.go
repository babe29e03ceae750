package main

import (
	"cmp"
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

// clusterView is what GET /api/cluster returns: every member as the
// dashboard shows it. IDs are decimal strings (JavaScript numbers cannot
// hold every uint64).
type clusterView struct {
	Self     string       `json:"self"`      // the node serving the request
	LeaderID string       `json:"leader_id"` // "" if no leader is known
	Term     uint64       `json:"term"`      // the leader's term, else the highest seen
	Controls bool         `json:"controls"`  // stop/start buttons available
	Nodes    []nodeView   `json:"nodes"`
	Events   []eventEntry `json:"events"` // recent cluster events, oldest first
}

// nodeView is one member.
type nodeView struct {
	ID           string `json:"id"`
	State        string `json:"state"`             // leader, follower, candidate, stopped, unreachable
	Voter        bool   `json:"voter"`             // suffrage in the cluster's configuration, kept while stopped
	Replica      bool   `json:"replica,omitempty"` // a read replica: a non-voter until promoted (without it: catching up)
	LeaderID     string `json:"leader_id"`         // the leader this node knows of
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	// Stale says Term and the indexes are the last ones seen, at LastSeen
	// (Unix milliseconds), because the node is stopped or unreachable.
	Stale    bool   `json:"stale,omitempty"`
	LastSeen int64  `json:"last_seen,omitempty"`
	Raft     string `json:"raft"`             // host:port of the raft transport
	Gossip   string `json:"gossip,omitempty"` // host:port of gossip
	API      string `json:"api"`              // canoe's HTTP API base URL
	KV       string `json:"kv,omitempty"`     // demo HTTP base URL, when known
	Error    string `json:"error,omitempty"`  // why the status is missing
	// Writes counts the commands the node's store applied since the node
	// started; nil when this process cannot see that store.
	Writes    *uint64 `json:"writes,omitempty"`
	writesGen uint64  // the store Writes counts in (a restart makes a new one)
}

// running reports whether the node answered as a raft member.
func (v nodeView) running() bool {
	return v.State != "stopped" && v.State != "unreachable"
}

func idString(id uint64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(id, 10)
}

func stateName(s string) string {
	s = strings.ToLower(s)
	if s == "shutdown" {
		return "stopped"
	}
	return s
}

// viewOf fills a nodeView from a local status.
func viewOf(st canoe.Status) nodeView {
	v := nodeView{
		ID:           idString(st.ID),
		State:        stateName(st.State.String()),
		LeaderID:     idString(st.LeaderID),
		Term:         st.Term,
		CommitIndex:  st.CommitIndex,
		AppliedIndex: st.AppliedIndex,
		LastIndex:    st.LastIndex,
	}
	for _, m := range st.Members {
		if m.ID == st.ID {
			v.Voter, v.Replica = m.Voter, m.NonVoter
		}
	}
	return v
}

func peerAddrs(v *nodeView, p canoe.Peer) {
	if p.Host == "" {
		return
	}
	if p.RaftPort != 0 {
		v.Raft = net.JoinHostPort(p.Host, strconv.Itoa(p.RaftPort))
	}
	if p.GossipPort != 0 {
		v.Gossip = net.JoinHostPort(p.Host, strconv.Itoa(p.GossipPort))
	}
	if p.ConfigPort != 0 {
		v.API = "http://" + net.JoinHostPort(p.Host, strconv.Itoa(p.ConfigPort))
	}
}

// finish sorts the nodes and works out the cluster's leader: the node that
// says it leads in the highest term.
func (v *clusterView) finish() {
	slices.SortFunc(v.Nodes, func(a, b nodeView) int {
		ai, _ := strconv.ParseUint(a.ID, 10, 64)
		bi, _ := strconv.ParseUint(b.ID, 10, 64)
		return cmp.Compare(ai, bi)
	})
	for _, n := range v.Nodes {
		if n.State == "leader" && n.Term >= v.Term {
			v.LeaderID, v.Term = n.ID, n.Term
		}
		if v.LeaderID == "" && n.Term > v.Term {
			v.Term = n.Term
		}
	}
	if v.Nodes == nil {
		v.Nodes = []nodeView{}
	}
}

// remoteCluster is node mode's clusterSource: the local node's status plus
// every other member's, fetched from its canoe HTTP API (GET /status).
type remoteCluster struct {
	node   *canoe.Node
	client *httpconfig.Client
	scheme string
	kvURL  string   // this node's demo HTTP URL
	kv     *kvStore // this node's store
}

func (c *remoteCluster) Cluster(ctx context.Context) clusterView {
	st := c.node.Status()
	self := viewOf(st)
	peerAddrs(&self, c.node.Self())
	self.KV = c.kvURL
	if c.node.IsRunning() {
		w := c.kv.Writes()
		self.Writes, self.writesGen = &w, c.kv.gen
	} else {
		self.State = "stopped"
	}
	v := clusterView{Nodes: []nodeView{self}}
	var mu sync.Mutex // guards v.Nodes
	var wg sync.WaitGroup
	for _, m := range st.Members {
		if m.ID == st.ID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nv := c.peerView(ctx, m)
			mu.Lock()
			v.Nodes = append(v.Nodes, nv)
			mu.Unlock()
		}()
	}
	wg.Wait()
	v.finish()
	return v
}

// peerView asks member m for its status (GET /status on its canoe API).
func (c *remoteCluster) peerView(ctx context.Context, m canoe.Peer) nodeView {
	nv := nodeView{ID: idString(m.ID), Voter: m.Voter, Replica: m.NonVoter}
	peerAddrs(&nv, m)
	nv.API = strings.Replace(nv.API, "http://", c.scheme+"://", 1)
	if nv.API == "" {
		nv.State, nv.Error = "unreachable", "API address not known yet"
		return nv
	}
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	rs, err := c.client.Status(rctx, nv.API)
	cancel()
	if err != nil {
		nv.State, nv.Error = "unreachable", err.Error()
		return nv
	}
	nv.State = stateName(rs.State)
	nv.LeaderID = idString(rs.LeaderID)
	nv.Term, nv.CommitIndex, nv.AppliedIndex, nv.LastIndex = rs.Term, rs.CommitIndex, rs.AppliedIndex, rs.LastIndex
	return nv
}
