package canoe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/discovery"
)

// gossip is a running node's memberlist membership: who is out there, who
// is leaving, who failed and since when.
type gossip struct {
	d *discovery.Discovery

	mu      sync.Mutex // guards failed, joinErr
	failed  map[uint64]time.Time
	joinErr error // why the last join attempt failed (permanent: given up), nil once joined
}

func (g *gossip) setJoinErr(err error) {
	g.mu.Lock()
	g.joinErr = err
	g.mu.Unlock()
}

func (g *gossip) lastJoinErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.joinErr
}

// startGossip starts memberlist on GossipPort and sets self.GossipPort.
func (n *Node) startGossip(self *Peer, port int, hasState bool) (*gossip, error) {
	c := &n.cfg
	meta := discovery.Meta{
		ID:              n.id,
		ClusterID:       c.ClusterID,
		RaftAddr:        self.raftAddr(),
		BootstrapExpect: c.BootstrapExpect,
		HasState:        hasState,
		NonVoter:        c.NonVoter,
	}
	if c.NonVoter {
		// Not part of the expectation: gossiping none also keeps nodes
		// that predate the NonVoter flag from counting this one.
		meta.BootstrapExpect = 0
	}
	if self.ConfigPort != 0 {
		meta.ConfigAddr = net.JoinHostPort(self.Host, strconv.Itoa(self.ConfigPort))
	}
	var gossipKey []byte // memberlist gets the derived gossip key, never the secret
	if n.keys != nil {
		gossipKey = n.keys.Gossip[:]
	}
	d, err := discovery.New(discovery.Config{
		Name:          strconv.FormatUint(n.id, 10),
		BindAddr:      c.BindAddr,
		BindPort:      port,
		AdvertiseAddr: self.Host,
		ClusterID:     c.ClusterID,
		SecretKey:     gossipKey,
		Profile:       c.Timing.Gossip.profile(),
		Meta:          meta,
		Logger:        n.logger.Named("gossip"),
	})
	if err != nil {
		return nil, fmt.Errorf("canoe: start gossip: %w", err)
	}
	if _, p, err := splitHostPort(d.AdvertiseAddr()); err == nil {
		self.GossipPort = p
	}
	return &gossip{d: d, failed: make(map[uint64]time.Time)}, nil
}

// watchGossip is the gossip goroutine: it records when members fail and
// wakes the manager on every membership change.
func (n *Node) watchGossip(rt *run) {
	for ev := range rt.gossip.d.Events() {
		g := rt.gossip
		g.mu.Lock()
		if ev.Kind == discovery.EventFailed {
			g.failed[ev.Member.Meta.ID] = ev.At
		} else {
			delete(g.failed, ev.Member.Meta.ID)
		}
		g.mu.Unlock()
		kick(rt)
	}
}

// gossipSeeds returns the bare host:port entries of BootstrapPeers, and the
// gossip addresses of the members this node knows from its replicated state
// (so a restarted member finds the others again).
func (n *Node) gossipSeeds() []string {
	seeds := n.cfg.bootstrapGossip()
	for id, m := range n.fsm.Peers() {
		if id != n.id && m.GossipPort != 0 {
			seeds = append(seeds, net.JoinHostPort(m.Host, strconv.Itoa(m.GossipPort)))
		}
	}
	return seeds
}

// gossipRefusals is how many joins in a row every seed must refuse (see
// discovery.JoinError.Refused) before joinGossip gives up: a seed that
// drops the connection once may just be busy.
const gossipRefusals = 2

// joinGossip is the gossip join goroutine: it joins the seeds, retrying with
// InitBackoff until one answers (seeds may start after this node). A node
// that is not a member yet gives up once every seed has refused it
// gossipRefusals times in a row (a SecretKey or ClusterID mismatch), and
// records a permanent error for awaitGossipAdmission; a member (restarted
// from DataDir) keeps trying, as its seeds are known members.
func (n *Node) joinGossip(rt *run) {
	refusals := 0
	_ = retry(rt.ctx, *n.cfg.InitBackoff, func() error {
		seeds := n.gossipSeeds()
		if len(seeds) == 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(rt.ctx, 10*time.Second)
		joined, err := rt.gossip.d.Join(ctx, seeds)
		cancel()
		if joined > 0 {
			rt.gossip.setJoinErr(nil)
			n.logger.Info("joined gossip", "members", len(rt.gossip.d.Members()))
			return nil
		}
		if je := (*discovery.JoinError)(nil); errors.As(err, &je) && je.Refused {
			refusals++
		} else {
			refusals = 0
		}
		if refusals >= gossipRefusals && !n.wasMember.Load() {
			err = permanent(err)
			rt.gossip.setJoinErr(err)
			n.logger.Error("every gossip seed refused this node; not retrying", "seeds", seeds, "error", err)
			return err
		}
		rt.gossip.setJoinErr(err)
		if rt.ctx.Err() == nil {
			n.logger.Warn("gossip join failed; retrying", "seeds", seeds, "error", err)
		}
		return err
	})
}

// bootstrapExpect is the goroutine of a BootstrapExpect node with no state:
// once BootstrapExpect nodes of this cluster with the same expectation see
// each other and none belongs to a cluster yet, each bootstraps raft with
// the same sorted server list (safe in raft: identical lists agree). If one
// already belongs to a cluster, this node waits for its leader to add it.
func (n *Node) bootstrapExpect(rt *run) {
	want := n.cfg.BootstrapExpect
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-rt.ctx.Done():
			return
		}
		if n.wasMember.Load() {
			return // added to a cluster meanwhile
		}
		var servers []raft.Server
		formed := false
		for _, m := range rt.gossip.d.Members() {
			if m.Meta.ClusterID != n.cfg.ClusterID {
				continue
			}
			if m.Meta.HasState {
				formed = true
				continue
			}
			if m.Meta.BootstrapExpect == want && !m.Meta.Leaving && !m.Meta.NonVoter {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: adapter.ServerID(m.Meta.ID), Address: raft.ServerAddress(m.Meta.RaftAddr)})
			}
		}
		if formed {
			n.logger.Info("a cluster already exists; waiting to be added by its leader")
			return
		}
		if len(servers) < want {
			continue
		}
		if len(servers) > want {
			// Nodes seeing different subsets would bootstrap with different
			// lists, which raft does not allow: wait for an operator.
			n.logger.Warn("more nodes expect to bootstrap than BootstrapExpect; not bootstrapping", "expect", want, "seen", len(servers))
			continue
		}
		slices.SortFunc(servers, func(a, b raft.Server) int { return cmp.Compare(string(a.ID), string(b.ID)) })
		err := n.await(rt.ctx, rt, rt.raft.BootstrapCluster(raft.Configuration{Servers: servers}))
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.logger.Error("bootstrap failed", "error", err)
			continue
		}
		n.logger.Info("bootstrapped the cluster", "servers", len(servers))
		return
	}
}

// reconcileGossip is the leader's gossip duty: add members that appeared,
// remove members that are leaving, and remove members failed for longer
// than DeadNodeTimeout when that leaves a quorum of live voters.
func (n *Node) reconcileGossip(ctx context.Context, rt *run, cfg raft.Configuration) {
	v := n.gossipView(rt, cfg)
	if n.admitFromGossip(ctx, rt, v) {
		return // the configuration changed; look again next round
	}
	if n.cfg.DeadNodeTimeout > 0 {
		n.removeDeadMember(ctx, rt, v)
	}
}

// gossipView is the leader's picture of gossip against the configuration.
type gossipView struct {
	alive              map[uint64]discovery.Member // members of this cluster gossip sees
	inConfig           map[uint64]raft.Server
	voters, liveVoters int
}

func (n *Node) gossipView(rt *run, cfg raft.Configuration) gossipView {
	members := rt.gossip.d.Members()
	v := gossipView{alive: make(map[uint64]discovery.Member, len(members)), inConfig: make(map[uint64]raft.Server, len(cfg.Servers))}
	for _, m := range members {
		if m.Meta.ClusterID == n.cfg.ClusterID {
			v.alive[m.Meta.ID] = m
		}
	}
	for _, s := range cfg.Servers {
		id, err := adapter.ParseServerID(s.ID)
		if err != nil {
			continue
		}
		v.inConfig[id] = s
		if s.Suffrage == raft.Voter {
			v.voters++
			if _, ok := v.alive[id]; ok {
				v.liveVoters++
			}
		}
	}
	return v
}

// admitFromGossip makes at most one change from what gossip shows: removes
// a member that is leaving, records a member's addresses, or adds a node
// that appeared (or moved). It reports whether it tried one.
func (n *Node) admitFromGossip(ctx context.Context, rt *run, v gossipView) bool {
	for id, m := range v.alive {
		s, member := v.inConfig[id]
		switch {
		case id == n.id:
		case m.Meta.Leaving && member:
			n.logger.Info("removing a member that is leaving", "peer", id)
			if err := n.removePeerLocal(ctx, rt, id); err != nil {
				n.logger.Warn("could not remove leaving member", "peer", id, "error", err)
			}
			return true
		case member && !m.Meta.Leaving && n.metaOutdated(m, s):
			// Members that joined by BootstrapExpect were never added
			// through AddPeer: record their addresses from gossip.
			p, err := peerFromGossip(m)
			if err != nil {
				continue
			}
			if err := n.await(ctx, rt, rt.raft.Apply(adapter.EncodePeerMeta(n.recordedMeta(p, &s)), enqueueTimeout)); err != nil {
				n.logger.Debug("could not record a member's addresses", "peer", id, "error", err)
			}
			return true
		case !m.Meta.Leaving && (!member || string(s.Address) != m.Meta.RaftAddr) && !n.fsm.Removed(id):
			p, err := peerFromGossip(m)
			if err != nil {
				n.logger.Warn("ignoring gossip member", "member", m.Name, "error", err)
				continue
			}
			if err := n.addPeerLocal(ctx, rt, p); err != nil {
				n.logger.Warn("could not add gossip member", "peer", id, "error", err)
			}
			return true
		}
	}
	return false
}

// removeDeadMember removes one member whose gossip has failed for longer
// than DeadNodeTimeout, as long as the live voters left are a quorum.
func (n *Node) removeDeadMember(ctx context.Context, rt *run, v gossipView) {
	rt.gossip.mu.Lock()
	failed := maps.Clone(rt.gossip.failed)
	rt.gossip.mu.Unlock()
	for id, at := range failed {
		s, member := v.inConfig[id]
		if !member || id == n.id || time.Since(at) < n.cfg.DeadNodeTimeout {
			continue
		}
		if _, back := v.alive[id]; back {
			continue
		}
		if s.Suffrage == raft.Voter && v.liveVoters < (v.voters-1)/2+1 {
			n.logger.Warn("not removing dead voter: the live voters would not be a quorum", "peer", id, "voters", v.voters, "live", v.liveVoters)
			continue
		}
		n.logger.Info("removing a member dead for longer than DeadNodeTimeout", "peer", id, "since", at)
		if err := n.removePeerLocal(ctx, rt, id); err != nil {
			n.logger.Warn("could not remove dead member", "peer", id, "error", err)
		}
		return
	}
}

// metaOutdated reports whether the replicated addresses of member m, whose
// server in the configuration is s, differ from what it gossips about
// itself. Its gossiped NonVoter flag counts only when it is first added.
func (n *Node) metaOutdated(m discovery.Member, s raft.Server) bool {
	p, err := peerFromGossip(m)
	if err != nil {
		return false
	}
	have, ok := n.fsm.Peer(p.ID)
	return !ok || have != n.recordedMeta(p, &s)
}

// peerFromGossip turns a gossip member into a Peer to add.
func peerFromGossip(m discovery.Member) (Peer, error) {
	host, raftPort, err := splitHostPort(m.Meta.RaftAddr)
	if err != nil {
		return Peer{}, err
	}
	p := Peer{ID: m.Meta.ID, Host: host, RaftPort: raftPort, NonVoter: m.Meta.NonVoter}
	if m.Meta.ConfigAddr != "" {
		if _, port, err := splitHostPort(m.Meta.ConfigAddr); err == nil {
			p.ConfigPort = port
		}
	}
	if _, port, err := splitHostPort(m.Addr); err == nil {
		p.GossipPort = port
	}
	return p, p.validate()
}

// markMember tells the gossip pool that this node belongs to a cluster, so
// BootstrapExpect nodes starting later join it instead of founding another.
func (n *Node) markMember(rt *run) {
	if rt.gossip == nil || rt.gossip.d.LocalMember().Meta.HasState {
		return
	}
	ctx, cancel := context.WithTimeout(rt.ctx, 5*time.Second)
	defer cancel()
	if err := rt.gossip.d.UpdateMeta(ctx, func(m *discovery.Meta) { m.HasState = true }); err != nil {
		n.logger.Debug("could not gossip membership", "error", err)
	}
}

// leaveGossip leaves the gossip pool gracefully (Destroy).
func (n *Node) leaveGossip(rt *run) {
	if rt.gossip == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.gossip.d.Leave(ctx); err != nil {
		n.logger.Warn("gossip leave", "error", err)
	}
}
