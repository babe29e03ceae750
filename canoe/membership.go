package canoe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/canoe/internal/storage"
)

// enqueueTimeout bounds the wait for raft to take a membership change or
// canoe's own metadata entry.
const enqueueTimeout = 5 * time.Second

// promoteLag is how far (in entries) a non-voter may trail the leader's log
// and still be promoted to voter.
const promoteLag = 256

// Peer is a member of the cluster.
type Peer struct {
	ID         uint64
	Host       string // host other nodes reach it at
	RaftPort   int
	ConfigPort int  // HTTP API port, 0 if unknown
	GossipPort int  // memberlist port, 0 if none
	Voter      bool // false while a new member catches up, and for a read replica
	// NonVoter marks a read replica: a member that gets every entry and
	// serves reads but stays a non-voter (never counted toward quorum,
	// never a leader) until Promote. A non-voter without it is catching up
	// and the leader promotes it on its own. In AddPeer it asks for a new
	// member to be added as a read replica (see NodeConfig.NonVoter).
	NonVoter bool
}

func (p Peer) raftAddr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.RaftPort)) }

func (p Peer) meta() adapter.PeerMeta {
	return adapter.PeerMeta{ID: p.ID, Host: p.Host, RaftPort: p.RaftPort, ConfigPort: p.ConfigPort, GossipPort: p.GossipPort, NonVoter: p.NonVoter}
}

// recordedMeta returns the metadata to replicate for p: its addresses,
// and its NonVoter flag if it is a new member (s is nil). A member keeps the
// flag the cluster records for it (only Promote clears it), and a voter
// never has it.
func (n *Node) recordedMeta(p Peer, s *raft.Server) adapter.PeerMeta {
	m := p.meta()
	if s != nil {
		have, ok := n.fsm.Peer(p.ID)
		m.NonVoter = s.Suffrage != raft.Voter && ok && have.NonVoter
	}
	return m
}

func (p Peer) validate() error {
	var errs []error
	if p.ID == 0 {
		errs = append(errs, errors.New("id is 0"))
	}
	if p.Host == "" {
		errs = append(errs, errors.New("host is empty"))
	}
	if p.RaftPort < 1 || p.RaftPort > 65535 {
		errs = append(errs, fmt.Errorf("raft port %d is not in 1-65535", p.RaftPort))
	}
	for _, port := range []int{p.ConfigPort, p.GossipPort} {
		if port < 0 || port > 65535 {
			errs = append(errs, fmt.Errorf("port %d is not in 0-65535", port))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidPeer, errors.Join(errs...))
	}
	return nil
}

// Peers returns every member, this node included, sorted by ID. It is this
// node's view: the latest configuration it knows of.
func (n *Node) Peers() []Peer {
	rt := n.rt.Load()
	if rt == nil {
		return nil
	}
	cfg, _, err := configuration(rt)
	if err != nil {
		return nil
	}
	metas := n.fsm.Peers()
	out := make([]Peer, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		id, err := adapter.ParseServerID(s.ID)
		if err != nil {
			continue
		}
		p := Peer{ID: id, Voter: s.Suffrage == raft.Voter}
		if m, ok := metas[id]; ok {
			p.Host, p.RaftPort, p.ConfigPort, p.GossipPort = m.Host, m.RaftPort, m.ConfigPort, m.GossipPort
			p.NonVoter = m.NonVoter && !p.Voter
		}
		if host, port, err := splitHostPort(string(s.Address)); err == nil {
			p.Host, p.RaftPort = host, port // raft's address is authoritative
		}
		if id == n.id {
			p.ConfigPort, p.GossipPort = rt.self.ConfigPort, rt.self.GossipPort
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func configuration(rt *run) (raft.Configuration, uint64, error) {
	f := rt.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, 0, err
	}
	return f.Configuration(), f.Index(), nil
}

// findServer returns member id's server in cfg, nil if cfg does not hold it.
func findServer(cfg raft.Configuration, id uint64) *raft.Server {
	sid := adapter.ServerID(id)
	for i := range cfg.Servers {
		if cfg.Servers[i].ID == sid {
			return &cfg.Servers[i]
		}
	}
	return nil
}

// AddPeer adds p to the cluster and returns once the change is committed.
// The new member starts as a non-voter and the leader promotes it to voter
// once it has caught up (a PeerPromoted observation tells when); with
// p.NonVoter it stays a non-voter, a read replica, until Promote. Adding a
// member again with a new address moves it, keeping its suffrage (p.NonVoter
// matters only for a new member). On a follower the request goes to the
// leader. It returns when ctx ends; an error that matches ErrTimeout then
// means the change may still happen.
func (n *Node) AddPeer(ctx context.Context, p Peer) error {
	if err := p.validate(); err != nil {
		return err
	}
	return n.onLeader(ctx, func(rt *run, leader uint64) error {
		if leader == n.id {
			return n.addPeerLocal(ctx, rt, p)
		}
		return n.fwd.AddPeer(ctx, leader, p)
	})
}

// RemovePeer removes member id from the cluster and returns once the change
// is committed. Removing the leader itself makes it step down. The last
// voter cannot be removed. On a follower the request goes to the leader.
// It returns when ctx ends, as AddPeer does.
func (n *Node) RemovePeer(ctx context.Context, id uint64) error {
	if id == 0 {
		return fmt.Errorf("%w: id is 0", ErrInvalidPeer)
	}
	return n.onLeader(ctx, func(rt *run, leader uint64) error {
		if leader == n.id {
			return n.removePeerLocal(ctx, rt, id)
		}
		return n.fwd.RemovePeer(ctx, leader, id)
	})
}

// onLeader runs do with the current run and the leader this node knows
// (this node itself, or another member to forward to), and tries again
// while it fails in a way that certainly did nothing (ErrNotLeader,
// ErrNoLeader): after the next leader change, or a short pause. When ctx
// ends first it returns ErrNoLeader (no leader known) or ErrTimeout, both
// wrapping ctx's error.
func (n *Node) onLeader(ctx context.Context, do func(rt *run, leader uint64) error) error {
	for {
		rt, err := n.current()
		if err != nil {
			return err
		}
		changed := n.leaderBC.wait()
		switch leader := n.LeaderID(); {
		case leader == n.id && rt.raft.State() != raft.Leader:
			err = ErrNoLeader // stepping down
		case leader != 0:
			err = do(rt, leader)
		default:
			err = ErrNoLeader
		}
		if !retriable(err) {
			return err
		}
		pause := time.NewTimer(retryPause(n.cfg.Timing))
		select {
		case <-changed:
		case <-pause.C:
		case <-ctx.Done():
			pause.Stop()
			if errors.Is(err, ErrNoLeader) || n.LeaderID() == 0 {
				return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
			}
			return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
		}
		pause.Stop()
	}
}

func (n *Node) addPeerLocal(ctx context.Context, rt *run, p Peer) error {
	cfg, _, err := configuration(rt)
	if err != nil {
		return n.raftErr(err)
	}
	sid, addr := adapter.ServerID(p.ID), raft.ServerAddress(p.raftAddr())
	existing := findServer(cfg, p.ID)
	// Recorded before the configuration change, so that no leader promotes
	// a read replica before it knows it is one.
	meta := n.recordedMeta(p, existing)
	if m, ok := n.fsm.Peer(p.ID); !ok || m != meta {
		if err := n.await(ctx, rt, rt.raft.Apply(adapter.EncodePeerMeta(meta), enqueueTimeout)); err != nil {
			return n.raftErr(err)
		}
	}
	switch {
	case existing != nil && existing.Address == addr:
		return nil // already a member there
	case existing != nil && existing.Suffrage == raft.Voter:
		err = n.await(ctx, rt, rt.raft.AddVoter(sid, addr, 0, enqueueTimeout))
	default:
		err = n.await(ctx, rt, rt.raft.AddNonvoter(sid, addr, 0, enqueueTimeout))
	}
	if err != nil {
		return n.raftErr(err)
	}
	n.logger.Info("added peer", "peer", strconv.FormatUint(p.ID, 10), "addr", addr, "moved", existing != nil, "read_replica", meta.NonVoter)
	kick(rt)
	return nil
}

func (n *Node) removePeerLocal(ctx context.Context, rt *run, id uint64) error {
	cfg, _, err := configuration(rt)
	if err != nil {
		return n.raftErr(err)
	}
	sid := adapter.ServerID(id)
	found, voters := false, 0
	for _, s := range cfg.Servers {
		if s.ID == sid {
			found = true
		}
		if s.Suffrage == raft.Voter && s.ID != sid {
			voters++
		}
	}
	if !found {
		return fmt.Errorf("%w: %d", ErrPeerNotFound, id)
	}
	if voters == 0 {
		return fmt.Errorf("%w: %d is the last voter; removing it would end the cluster", ErrInvalidPeer, id)
	}
	// Recorded first, in the log, so that no leader re-adds the member when
	// it sees it in gossip (it may not know yet that it was removed).
	if err := n.await(ctx, rt, rt.raft.Apply(adapter.EncodePeerForget(id), enqueueTimeout)); err != nil {
		return n.raftErr(err)
	}
	if err := n.await(ctx, rt, rt.raft.RemoveServer(sid, 0, enqueueTimeout)); err != nil {
		return n.raftErr(err)
	}
	n.logger.Info("removed peer", "peer", strconv.FormatUint(id, 10))
	return nil
}

// TransferLeadership hands leadership to another voter and returns once it
// has taken over, or when ctx ends (ErrTimeout: the transfer may still
// complete). Only the leader can call it.
func (n *Node) TransferLeadership(ctx context.Context) error {
	rt, err := n.current()
	if err != nil {
		return err
	}
	if rt.raft.State() != raft.Leader {
		return &NotLeaderError{LeaderID: n.LeaderID()}
	}
	if n.otherVoters(rt, false) == 0 {
		return fmt.Errorf("%w: no other voter to take over", ErrInvalidPeer)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return n.transferLeadership(ctx, rt)
}

// transferLeadership runs raft's leadership transfer with the batcher
// held, since raft refuses new entries while a transfer is under way.
func (n *Node) transferLeadership(ctx context.Context, rt *run) error {
	rt.transferMu.Lock()
	defer rt.transferMu.Unlock()
	return n.raftErr(n.await(ctx, rt, rt.raft.LeadershipTransfer()))
}

// otherVoters counts the voters other than this node; with live, only those
// that answered this leader within two heartbeat timeouts (the ones that
// can take leadership over).
func (n *Node) otherVoters(rt *run, live bool) int {
	cfg, _, err := configuration(rt)
	if err != nil {
		return 0
	}
	count := 0
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter || s.ID == adapter.ServerID(n.id) {
			continue
		}
		if !live || rt.trans.AnsweredWithin(s.ID, 2*n.cfg.Timing.HeartbeatTimeout) {
			count++
		}
	}
	return count
}

// leave removes this node from the cluster for Destroy.
func (n *Node) leave(rt *run) error {
	if n.otherVoters(rt, false) == 0 {
		return nil // the only voter: there is no cluster left to leave
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.InitBackoff.MaxElapsedTime)
	defer cancel()
	err := n.RemovePeer(ctx, n.id)
	if errors.Is(err, ErrNotRunning) || errors.Is(err, ErrorRemovedFromCluster) || errors.Is(err, ErrPeerNotFound) {
		return nil // already removed (seen leaving by gossip), or a removed leader shut down
	}
	return err
}

func kick(rt *run) {
	select {
	case rt.kick <- struct{}{}:
	default:
	}
}

// configurationApplied runs on raft's FSM goroutine after each committed
// configuration: wake the manager to check removal and promotions.
func (n *Node) configurationApplied([]raft.Server) {
	if rt := n.rt.Load(); rt != nil {
		kick(rt)
	}
}

// manage is the manager goroutine: it notices this node's removal, and on
// the leader keeps canoe's replicated metadata current and promotes
// non-voters that have caught up.
func (n *Node) manage(rt *run) {
	tick := time.NewTicker(pollInterval(n.cfg.Timing))
	defer tick.Stop()
	var leaderless, probed time.Time
	var fsmTerm uint64 // see fsmCaughtUp
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-tick.C:
		case <-rt.kick:
		}
		removed := n.checkRemoved(rt)
		// Raft stops replicating to a member once the leader appends the
		// configuration that drops it, so the member may hold that
		// configuration without ever learning that it committed (or that
		// it was undone): it asks the leader.
		if now := time.Now(); !removed && n.wasMember.Load() && now.Sub(probed) > n.cfg.Timing.ElectionTimeout/2 && n.removalPending(rt) {
			probed = now
			removed = n.askIfRemoved(rt)
		}
		// A follower removed while it could not hear the leader never gets
		// the configuration that drops it at all. If it stays without a
		// leader, it asks the others whether it is still a member.
		switch now := time.Now(); {
		case removed || n.LeaderID() != 0 || !n.wasMember.Load():
			leaderless = time.Time{}
		case leaderless.IsZero():
			leaderless = now
		case now.Sub(leaderless) > 4*n.cfg.Timing.ElectionTimeout && now.Sub(probed) > 2*n.cfg.Timing.ElectionTimeout:
			probed = now
			removed = n.askIfRemoved(rt)
		}
		if removed {
			n.removed.Store(true)
			n.logger.Warn("this node was removed from the cluster; stopping")
			// Not under the run's WaitGroup: stopping waits for it.
			n.selfStop.Go(func() {
				n.lifeMu.Lock()
				defer n.lifeMu.Unlock()
				if n.rt.Load() == rt {
					n.leaveGossip(rt)
					n.stopLocked(false)
				}
			})
			return
		}
		if n.wasMember.Load() {
			n.markMember(rt)
		}
		if rt.raft.State() == raft.Leader {
			n.leaderDuties(rt, &fsmTerm)
		}
	}
}

// askIfRemoved asks other members who leads, and then the leader itself
// whether this node is still in its committed configuration (a lagging
// member's configuration could predate this node's admission, and a
// configuration not committed yet may still be undone). A member that
// cannot tell (it has applied no configuration, or predates the committed
// members in /status) does not decide.
func (n *Node) askIfRemoved(rt *run) bool {
	ask := func(id uint64) (leader uint64, members []uint64, ok bool) {
		ctx, cancel := context.WithTimeout(rt.ctx, n.cfg.Timing.ElectionTimeout)
		defer cancel()
		leader, members, err := n.fwd.Membership(ctx, id)
		return leader, members, err == nil && leader != 0
	}
	asked := 0
	for id := range n.fsm.Peers() {
		if id == n.id || asked == 3 {
			continue
		}
		asked++
		leader, members, ok := ask(id)
		if !ok || leader == n.id {
			continue
		}
		if leader != id {
			if leader, members, ok = ask(leader); !ok {
				continue
			}
		}
		if len(members) == 0 {
			continue
		}
		if slices.Contains(members, n.id) {
			return false
		}
		n.logger.Warn("the leader reports that this node is no longer in the cluster", "leader", leader)
		return true
	}
	return false
}

// checkRemoved reports whether the cluster removed this node: a committed
// configuration no longer holds it after an earlier committed one did, or
// raft shut itself down (which it does to a leader once the configuration
// removing it commits). It decides only from committed configurations:
// raft's latest configuration may be undone by the next leader (a removal
// that reached only this node), and a node that stopped itself on it would
// be lost to a cluster that still counts it as a voter.
func (n *Node) checkRemoved(rt *run) bool {
	// Stop swaps the run out before it shuts raft down: a shutdown seen
	// with the run still current is raft's own.
	shut := rt.raft.State() == raft.Shutdown
	if n.rt.Load() != rt {
		return false // Stop is under way
	}
	if shut {
		return true
	}
	servers, at := n.fsm.CommittedConfiguration()
	if len(servers) == 0 {
		return false
	}
	if _, ok := servers[n.id]; ok {
		n.becameMember(rt, at)
		return false
	}
	// After a restart the FSM may hold a configuration older than the one
	// that admitted this node (the applied index on record lags a little):
	// only a configuration in effect after that one says "removed".
	return n.wasMember.Load() && at > n.memberAt.Load()
}

// removalPending reports whether raft's latest configuration, not known to
// be committed, no longer holds this node.
func (n *Node) removalPending(rt *run) bool {
	cfg, _, err := configuration(rt)
	if err != nil || len(cfg.Servers) == 0 {
		return false
	}
	return findServer(cfg, n.id) == nil
}

// becameMember records, once, that a committed configuration in effect at
// index at holds this node, in DataDir too: a restarted node whose committed
// configuration no longer holds it was removed, while one that never was a
// member is still joining.
func (n *Node) becameMember(rt *run, at uint64) {
	if n.wasMember.Load() {
		return
	}
	n.memberAt.Store(at)
	if n.wasMember.Swap(true) {
		return
	}
	if err := n.saveIdentity(rt.self, true, at); err != nil {
		n.logger.Warn("could not record membership in DataDir", "error", err)
	}
}

// saveIdentity records in DataDir this node's ID and cluster, whether a
// committed configuration held it (member, at index memberAt), and self's
// ports, which a restart reuses.
func (n *Node) saveIdentity(self Peer, member bool, memberAt uint64) error {
	return storage.SaveIdentity(n.cfg.DataDir, storage.Identity{ID: n.id, ClusterID: n.cfg.ClusterID, Member: member, MemberIndex: memberAt,
		RaftPort: self.RaftPort, ConfigPort: self.ConfigPort, GossipPort: self.GossipPort})
}

// leaderDutyTimeout bounds one round of the leader's duties.
const leaderDutyTimeout = 10 * time.Second

// leaderDuties is the leader's round of the manager: record its own
// addresses, promote a caught-up non-voter (not a read replica), reconcile
// gossip. fsmTerm is the manager's record for fsmCaughtUp.
func (n *Node) leaderDuties(rt *run, fsmTerm *uint64) {
	ctx, cancel := context.WithTimeout(rt.ctx, leaderDutyTimeout)
	defer cancel()
	if err := n.ensureLeaderReady(ctx, rt); err != nil {
		return
	}
	if !n.fsmCaughtUp(ctx, rt, fsmTerm) {
		return // look again next round
	}
	if m, ok := n.fsm.Peer(n.id); !ok || m != rt.self.meta() {
		if err := n.await(ctx, rt, rt.raft.Apply(adapter.EncodePeerMeta(rt.self.meta()), enqueueTimeout)); err != nil {
			n.logger.Debug("could not record own addresses", "error", err)
			return
		}
	}
	cfg, index, err := configuration(rt)
	if err != nil {
		return
	}
	last := rt.raft.LastIndex()
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			continue
		}
		if id, err := adapter.ParseServerID(s.ID); err == nil && n.isReplica(id) {
			continue // a read replica: only Promote makes it a voter
		}
		got, ok := rt.trans.Matched(s.ID)
		if !ok || got < index || last-min(got, last) > promoteLag {
			continue
		}
		if err := n.await(ctx, rt, rt.raft.AddVoter(s.ID, s.Address, index, enqueueTimeout)); err != nil {
			n.logger.Debug("promotion failed; will retry", "peer", s.ID, "error", err)
			return // the configuration moved on; look again next round
		}
		n.logger.Info("promoted caught-up peer to voter", "peer", s.ID)
		return
	}
	if rt.gossip != nil {
		n.reconcileGossip(ctx, rt, cfg)
	}
}

// Self returns this node as a member: its ID and the addresses and ports it
// advertises (ports picked at Start when configured as 0). Before Start only
// the ID is set.
func (n *Node) Self() Peer {
	rt := n.rt.Load()
	if rt == nil {
		return Peer{ID: n.id}
	}
	p := rt.self
	p.Voter = n.isVoter(rt)
	if !p.Voter {
		if m, ok := n.fsm.Peer(n.id); ok {
			p.NonVoter = m.NonVoter
		} else {
			p.NonVoter = n.cfg.NonVoter // not added yet: what it asks for
		}
	}
	return p
}
