package canoe

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/canoe/internal/storage"
)

// Recovery after losing quorum. When most voters are gone for good, the
// survivors hold the data but can never elect a leader: every election
// needs a majority of the configuration, which still lists the lost nodes.
// A recovery rewrites a stopped node's DataDir so that its configuration
// is exactly the given members (raft's RecoverCluster, which Consul, Nomad
// and Vault wrap as peers.json):
//
//  1. restore the newest snapshot the FSM accepts, then apply every log
//     entry after it (each entry the node holds, committed or not: the
//     ones a lost majority never confirmed become committed now);
//  2. record the members' addresses in canoe's replicated metadata, and
//     every other member as removed on purpose (discovery never re-adds
//     one);
//  3. write a snapshot of that state at the last log index and term, whose
//     configuration is the members, all voters;
//  4. delete the log (everything in it is in the snapshot) and record the
//     applied index (restart.go), so the next Start restores the snapshot
//     and replays nothing.
//
// RecoverCluster does it at once with the caller's FSM; ScheduleRecovery,
// for programs without the FSM (the operator command), writes the request
// to DataDir/recover.json and the node's next Start does it with its own
// FSM. Both end in the same DataDir state.

// ErrDataDirInUse is returned by RecoverCluster, ScheduleRecovery and Start
// for a DataDir that a running node holds (its raft log is locked), in this
// process or another.
var ErrDataDirInUse = storage.ErrInUse

// memberForm names the members syntax in errors.
const memberForm = "want ID@HOST:RAFTPORT, e.g. 42@10.0.0.1:7000"

// ParseMembers parses a members list for RecoverCluster and
// ScheduleRecovery: comma-separated ID@HOST:RAFTPORT entries, where ID is
// a member's decimal node ID and HOST:RAFTPORT its raft address (IPv6 in
// brackets), e.g. "42@10.0.0.1:7000,43@10.0.0.2:7000". It reports every
// bad entry at once (errors match ErrInvalidPeer). The Peers it returns
// are voters with no HTTP API or gossip port: recovery keeps the ones
// canoe's replicated metadata holds.
func ParseMembers(s string) ([]Peer, error) {
	var out []Peer
	var errs []error
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		p, err := parseMember(entry)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPeer, errors.Join(errs...))
	}
	return out, nil
}

func parseMember(entry string) (Peer, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("member %q %s; %s", entry, fmt.Sprintf(format, args...), memberForm)
	}
	if entry == "" {
		return Peer{}, bad("is empty")
	}
	idText, addr, ok := strings.Cut(entry, "@")
	if !ok {
		return Peer{}, bad("has no @")
	}
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil || id == 0 {
		return Peer{}, bad("has ID %q, not a nonzero decimal number", idText)
	}
	host, port, err := splitHostPort(addr)
	switch {
	case err != nil:
		return Peer{}, bad("has raft address %q, not HOST:PORT with a port in 1-65535", addr)
	case host == "" || !validHost(host):
		return Peer{}, bad("has host %q, neither an IP address nor a host name", host)
	}
	return Peer{ID: id, Host: host, RaftPort: port, Voter: true}, nil
}

// checkMembers reports every problem with a recovery's members at once:
// each must be a valid Peer with a host name or IP address, IDs and raft
// addresses must be unique, and self (this node) must be one of them.
func checkMembers(members []Peer, self uint64) error {
	if len(members) == 0 {
		return fmt.Errorf("%w: no members: a recovery needs at least this node (%d)", ErrInvalidPeer, self)
	}
	var errs []error
	ids, addrs := map[uint64]bool{}, map[string]uint64{}
	for _, p := range members {
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("member %d: %w", p.ID, err))
			continue
		}
		if !validHost(p.Host) {
			errs = append(errs, fmt.Errorf("member %d: host %q is neither an IP address nor a host name", p.ID, p.Host))
		}
		if ids[p.ID] {
			errs = append(errs, fmt.Errorf("member %d is listed twice", p.ID))
		}
		ids[p.ID] = true
		if other, dup := addrs[p.raftAddr()]; dup {
			errs = append(errs, fmt.Errorf("members %d and %d have the same raft address %s", other, p.ID, p.raftAddr()))
		}
		addrs[p.raftAddr()] = p.ID
	}
	if !ids[self] {
		errs = append(errs, fmt.Errorf("this node (%d) is not among the members: a recovery keeps the node it runs on", self))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidPeer, errors.Join(errs...))
	}
	return nil
}

// RecoverCluster recovers from the loss of a quorum on a stopped node's
// DataDir (cfg as the node's NewNode would take it: cfg.FSM replays the
// log and is left holding the recovered state). It rewrites the membership
// to members, keeping every log entry the node holds, so that a Start
// elects a leader among the members alone. Every member is a voter; for
// the members it knew, canoe keeps the HTTP API and gossip ports its
// replicated metadata holds (a Peer's nonzero ConfigPort or GossipPort
// replaces them). Run it on each surviving node with the same members, then
// start them; the lost nodes come back only as new nodes (an empty DataDir,
// joining the cluster), never with their old DataDir.
//
// What is lost: entries that only the lost nodes held. What may appear:
// entries this node held that were never committed (a proposal whose
// proposer got an error saying the outcome was unknown). See the README,
// "Recovering from the loss of a quorum".
//
// It fails, changing nothing, when cfg is invalid or DataDir is "", when
// DataDir holds no node state, when a running node holds DataDir (an error
// matching ErrDataDirInUse), when members are invalid (ErrInvalidPeer: not
// this node among them, duplicate IDs or addresses, or this node's entry
// not at the address it advertises: AdvertiseAddr, else BindAddr, and
// RaftPort, else the port recorded in DataDir), or when the state cannot
// be read (damaged snapshots or log). It does not start the node.
func RecoverCluster(cfg *NodeConfig, members []Peer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("%w: RecoverCluster needs the DataDir of a stopped node; a node without one keeps no state to recover", ErrInvalidConfig)
	}
	if _, ok, err := storage.LoadIdentity(cfg.DataDir); err != nil {
		return err
	} else if !ok {
		return noStateError(cfg.DataDir)
	}
	n, err := NewNode(cfg)
	if err != nil {
		return err
	}
	if n.client != nil {
		defer n.client.Close()
	}
	if err := n.checkRecoveryMembers(members); err != nil {
		return err
	}
	if err := requireLog(cfg.DataDir); err != nil {
		return err
	}
	st, err := storage.Open(n.cfg.DataDir, storage.Kind(n.cfg.LogStore), n.cfg.SnapshotConfig.policy(), n.logger)
	if err != nil {
		return err
	}
	res, err := n.recoverStores(st, members)
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("canoe: close stores after the recovery: %w", cerr)
	}
	if err != nil {
		return err
	}
	res.log(n.logger, "recovered the cluster in DataDir; start the node to elect a leader among the members")
	return nil
}

// ScheduleRecovery asks the node whose DataDir is dir to recover from the
// loss of a quorum at its next Start, for programs that do not hold the
// node's FSM (the operator command's "recover"): it checks what it can
// without the node's configuration and writes the request to
// dir/recover.json (replacing an earlier one). The next Start performs
// RecoverCluster's steps with the node's own FSM, deletes the file and
// logs at WARN what it did; a Start that cannot carry it out fails and
// leaves the file. Remove the file to call the recovery off.
//
// It fails, writing nothing, when dir holds no node state, when a running
// node holds it (ErrDataDirInUse), or when members are invalid
// (ErrInvalidPeer, as for RecoverCluster; this node's entry must carry the
// raft port recorded in dir). Start checks this node's host against its
// AdvertiseAddr too.
func ScheduleRecovery(dir string, members []Peer) error {
	if dir == "" {
		return fmt.Errorf("%w: ScheduleRecovery needs the DataDir of a stopped node", ErrInvalidConfig)
	}
	ident, ok, err := storage.LoadIdentity(dir)
	if err != nil {
		return err
	}
	if !ok {
		return noStateError(dir)
	}
	if err := checkMembers(members, ident.ID); err != nil {
		return err
	}
	if i := slices.IndexFunc(members, func(p Peer) bool { return p.ID == ident.ID }); ident.RaftPort != 0 && members[i].RaftPort != ident.RaftPort {
		return fmt.Errorf("%w: this node (%d) was last started with raft port %d (recorded in %s), but its entry says %d; give the port it will listen on",
			ErrInvalidPeer, ident.ID, ident.RaftPort, dir, members[i].RaftPort)
	}
	if err := requireLog(dir); err != nil {
		return err
	}
	st, err := storage.Open(dir, storage.Auto, DefaultSnapshotConfig.policy(), hclog.NewNullLogger())
	if err != nil {
		return err
	}
	hasState, err := raft.HasExistingState(st.Logs, st.Stable, st.Snaps)
	if cerr := st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("canoe: inspect raft state in %s: %w", dir, err)
	}
	if !hasState {
		return noStateError(dir)
	}
	req := storage.RecoveryRequest{Requested: time.Now().UTC()}
	for _, p := range members {
		req.Members = append(req.Members, storage.RecoveryMember{ID: p.ID, Host: p.Host, RaftPort: p.RaftPort, ConfigPort: p.ConfigPort, GossipPort: p.GossipPort})
	}
	return storage.SaveRecovery(dir, req)
}

// RecoveryFile returns the path of the recovery request ScheduleRecovery
// writes in dir.
func RecoveryFile(dir string) string { return storage.RecoveryPath(dir) }

func noStateError(dir string) error {
	return fmt.Errorf("canoe: DataDir %s holds no node state to recover (no node identity or raft log); a node that lost its data joins the cluster again as a new node", dir)
}

// requireLog fails when dir holds no raft log: opening the stores would
// create an empty one.
func requireLog(dir string) error {
	ok, err := storage.HasLog(dir)
	if err != nil {
		return err
	}
	if !ok {
		return noStateError(dir)
	}
	return nil
}

// checkRecoveryMembers checks members for a recovery of this node,
// including that this node's entry is at the address it advertises.
func (n *Node) checkRecoveryMembers(members []Peer) error {
	if err := checkMembers(members, n.id); err != nil {
		return err
	}
	self := members[slices.IndexFunc(members, func(p Peer) bool { return p.ID == n.id })]
	host, port := advertiseHost(n.cfg.AdvertiseAddr, n.cfg.BindAddr), n.cfg.RaftPort
	hosts := []string{host}
	if n.cfg.transport != nil {
		h, p, err := splitHostPort(string(n.cfg.transport.LocalAddr()))
		if err != nil {
			return err
		}
		host, port, hosts = h, p, []string{h}
	} else if net.ParseIP(host) == nil {
		// A host name: raft's configuration holds the address openTransport
		// resolves it to (what canoe peers shows), and either will do.
		if a, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, "0")); err == nil {
			hosts = append(hosts, a.IP.String())
		}
	}
	if !slices.Contains(hosts, self.Host) || port != 0 && self.RaftPort != port {
		want := host + ":" + strconv.Itoa(port)
		if port == 0 {
			want = host + " (the port is picked at Start)"
		}
		return fmt.Errorf("%w: this node (%d) is listed at %s, but it advertises %s (AdvertiseAddr, else BindAddr; RaftPort, else the port recorded in DataDir): the other members would not reach it",
			ErrInvalidPeer, n.id, self.raftAddr(), want)
	}
	return nil
}

// recoverAtStart performs the recovery request in DataDir, if there is one,
// on the stores Start just opened, and then deletes the request.
func (n *Node) recoverAtStart(st *storage.Stores) error {
	dir := n.cfg.DataDir
	req, ok, err := storage.LoadRecovery(dir)
	if err != nil || !ok {
		return err
	}
	path := storage.RecoveryPath(dir)
	members := make([]Peer, len(req.Members))
	for i, m := range req.Members {
		members[i] = Peer{ID: m.ID, Host: m.Host, RaftPort: m.RaftPort, ConfigPort: m.ConfigPort, GossipPort: m.GossipPort, Voter: true}
	}
	if err := n.checkRecoveryMembers(members); err != nil {
		return fmt.Errorf("canoe: the recovery requested in %s cannot be carried out: %w; write the request again, or remove the file to start without recovering", path, err)
	}
	res, err := n.recoverStores(st, members)
	if err != nil {
		return fmt.Errorf("canoe: the recovery requested in %s failed: %w; the request stays: fix the problem and start again, or remove the file to start without recovering", path, err)
	}
	if err := storage.RemoveRecovery(dir); err != nil {
		return fmt.Errorf("canoe: the recovery requested in %s was carried out, but removing the request failed (remove it before starting again: a second recovery would undo membership changes made after it): %w", path, err)
	}
	res.log(n.logger, "recovered the cluster as requested in "+path+"; the request is removed", "requested", req.Requested.Format(time.RFC3339))
	return nil
}

// recovery is what recoverStores did.
type recovery struct {
	members        []Peer
	index, term    uint64 // the last entry kept: the new snapshot's
	snapshotIndex  uint64 // the snapshot it started from; 0: none
	replayed       int    // log entries after it
	knownCommitted uint64 // the applied index recorded before: entries after it may not have been committed
	removed        []uint64
}

func (r recovery) log(logger hclog.Logger, msg string, args ...any) {
	ids := make([]string, len(r.members))
	for i, p := range r.members {
		ids[i] = fmt.Sprintf("%d@%s", p.ID, p.raftAddr())
	}
	args = append(args, "members", strings.Join(ids, ","), "index", r.index, "term", r.term,
		"from_snapshot", r.snapshotIndex, "log_entries", r.replayed)
	if len(r.removed) > 0 {
		args = append(args, "removed", fmt.Sprint(r.removed))
	}
	if r.index > r.knownCommitted {
		args = append(args, "maybe_uncommitted", fmt.Sprintf("%d-%d (now committed)", r.knownCommitted+1, r.index))
	}
	logger.Warn(msg, args...)
}

// recoverStores rewrites st (a stopped node's DataDir, open) so that its
// configuration is members; see the comment at the top of this file.
func (n *Node) recoverStores(st *storage.Stores, members []Peer) (recovery, error) {
	res := recovery{members: members}
	hasState, err := raft.HasExistingState(st.Logs, st.Stable, st.Snaps)
	if err != nil {
		return res, fmt.Errorf("canoe: inspect raft state: %w", err)
	}
	if !hasState {
		return res, noStateError(n.cfg.DataDir)
	}
	if err := st.CheckStart(n.logger); err != nil {
		return res, err
	}
	if res.knownCommitted, err = st.LoadApplied(); err != nil {
		return res, err
	}

	// 1. The newest snapshot the FSM accepts, then the log after it.
	metas, err := st.Snaps.List()
	if err != nil {
		return res, fmt.Errorf("canoe: list snapshots: %w", err)
	}
	var snapTerm uint64
	var refused []string
	for _, m := range metas {
		_, rc, err := st.Snaps.Open(m.ID)
		if err == nil {
			err = n.fsm.Restore(rc) // closes rc
		}
		if err != nil {
			refused = append(refused, fmt.Sprintf("%s: %v", st.SnapshotPath(m.ID), err))
			continue
		}
		res.snapshotIndex, snapTerm = m.Index, m.Term
		break
	}
	if len(metas) > 0 && res.snapshotIndex == 0 {
		return res, fmt.Errorf("canoe: no snapshot in DataDir %s could be restored: %s; %s", n.cfg.DataDir, strings.Join(refused, "; "), storage.RecoverHint)
	}
	if len(refused) > 0 {
		n.logger.Warn("recovery: skipped snapshots the FSM refused", "snapshots", strings.Join(refused, "; "))
	}
	res.index, res.term = res.snapshotIndex, snapTerm
	first, err := st.Logs.FirstIndex()
	if err != nil {
		return res, fmt.Errorf("canoe: read the raft log's first index: %w", err)
	}
	last, err := st.Logs.LastIndex()
	if err != nil {
		return res, fmt.Errorf("canoe: read the raft log's last index: %w", err)
	}
	for lo := res.snapshotIndex + 1; lo <= last; {
		hi := min(lo+replayBatch-1, last)
		batch := make([]*raft.Log, 0, hi-lo+1)
		for i := lo; i <= hi; i++ {
			l := new(raft.Log)
			if err := st.Logs.GetLog(i, l); err != nil {
				return res, fmt.Errorf("canoe: read log entry %d of %d: %w; %s", i, last, err, storage.RecoverHint)
			}
			batch = append(batch, l)
		}
		n.fsm.ReplayCommitted(batch)
		res.index, res.term = batch[len(batch)-1].Index, batch[len(batch)-1].Term
		res.replayed += len(batch)
		lo = hi + 1
	}

	// 2. canoe's membership metadata: the members, with the ports it knew.
	kept := make([]adapter.PeerMeta, len(members))
	servers := make([]raft.Server, len(members))
	for i, p := range members {
		m := p.meta()
		if old, ok := n.fsm.Peer(p.ID); ok {
			m.ConfigPort = cmp.Or(m.ConfigPort, old.ConfigPort)
			m.GossipPort = cmp.Or(m.GossipPort, old.GossipPort)
		}
		kept[i] = m
		servers[i] = raft.Server{Suffrage: raft.Voter, ID: adapter.ServerID(p.ID), Address: raft.ServerAddress(p.raftAddr())}
	}
	for id := range n.fsm.Peers() {
		if !slices.ContainsFunc(members, func(p Peer) bool { return p.ID == id }) {
			res.removed = append(res.removed, id)
		}
	}
	slices.Sort(res.removed)
	n.fsm.ResetMembership(kept, res.index, res.term)

	// 3. The snapshot, with the new configuration (at index 1, as raft's
	// RecoverCluster does: no log entry carries it).
	snap, err := n.fsm.Snapshot()
	if err != nil {
		return res, fmt.Errorf("canoe: snapshot the recovered state: %w", err)
	}
	defer snap.Release()
	_, placeholder := raft.NewInmemTransport("recovery") // encodes addresses as raft's TCP transport does
	sink, err := st.Snaps.Create(raft.SnapshotVersionMax, res.index, res.term, raft.Configuration{Servers: servers}, 1, placeholder)
	if err != nil {
		return res, fmt.Errorf("canoe: create the recovery snapshot: %w", err)
	}
	if err := snap.Persist(sink); err != nil { // closes or cancels sink
		return res, fmt.Errorf("canoe: write the recovery snapshot: %w", err)
	}

	// 4. The log is all in the snapshot; the FSM has applied up to it.
	if last >= first && last > 0 {
		if err := st.Logs.DeleteRange(first, last); err != nil {
			return res, fmt.Errorf("canoe: delete the raft log after the recovery snapshot: %w", err)
		}
	}
	if err := st.SaveApplied(res.index); err != nil {
		return res, err
	}
	return res, nil
}
