package canoe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/adapter"
	"github.com/canoe-raft/canoe/canoe/internal/storage"
	"github.com/canoe-raft/canoe/canoe/internal/transport"
	"github.com/canoe-raft/canoe/httpconfig"
	"github.com/canoe-raft/canoe/internal/keys"
	"github.com/canoe-raft/canoe/observer"
)

// Node is one member of a canoe cluster. Create it with NewNode, then Start
// it. Its methods are safe for concurrent use.
type Node struct {
	cfg       NodeConfig // defaulted copy, never modified after NewNode
	id        uint64
	logger    hclog.Logger
	fsm       *adapter.Adapter
	observers observer.Registry
	leaderBC  broadcast // fires on every leader change

	// lifeMu serializes Start, Stop and Destroy (but not the join a Start
	// waits for), and guards memStores and joining.
	lifeMu    sync.Mutex
	memStores *storage.Stores // in-memory stores kept across Stop/Start (DataDir "")
	joining   *pendingStart   // the Start waiting for its join, nil if none
	selfStop  goroutines      // stops the node once the cluster removed it

	rt        atomic.Pointer[run]       // nil unless running
	props     atomic.Pointer[proposals] // the current run's, for the adapter's hooks
	removed   atomic.Bool               // the cluster removed this node
	wasMember atomic.Bool               // a committed configuration held this node (kept in DataDir)
	memberAt  atomic.Uint64             // with wasMember: an index at which one did (kept in DataDir)

	restoreMu sync.Mutex // serializes RestoreBackup's restores

	keys       *keys.Keys         // derived from ClusterSecret and ClusterID; nil without a secret
	fwd        forwarder          // carries a follower's requests to the leader
	client     *httpconfig.Client // nil in in-memory test clusters
	metrics    *metrics
	translator adapter.Translator
}

// run is everything one Start builds and Stop tears down.
type run struct {
	raft      *raft.Raft
	fsm       *adapter.Adapter
	trans     *transport.Progress
	layer     *transport.Layer // nil in in-memory test clusters
	stores    *storage.Stores
	obs       *raft.Observer
	self      Peer
	props     *proposals
	catchUp   *catchUp       // committed entries to apply before raft learns of them
	proposals chan proposal  // to the leader's batcher
	forwards  chan proposal  // to the follower's forwarder
	fwdClient *forwardClient // the follower's connection to the leader
	reads     *reads         // read-index rounds
	confirm   *transport.Confirmer
	visible   visible
	ctx       context.Context // cancelled when Stop begins
	cancel    context.CancelFunc
	http      *httpconfig.Server
	gossip    *gossip // nil in in-memory test clusters
	wg        sync.WaitGroup
	kick      chan struct{} // wakes the manager early
	readyTerm atomic.Uint64 // the term in which this leader's barrier committed
	futures   goroutines    // those waiting on raft futures (await)

	// transferMu is held by leadership transfers: raft refuses new entries
	// while one is under way, so the batcher waits (read-locked) meanwhile.
	transferMu sync.RWMutex

	connMu  sync.Mutex // guards serving, closing
	serving map[net.Conn]struct{}
	closing bool // Stop has begun: no new forward connection is served
}

// adapterApplied is the index of the last entry the FSM applied.
func (rt *run) adapterApplied() uint64 { return rt.fsm.AppliedIndex() }

// NewNode checks cfg and returns a node ready to Start. It reports every
// problem with cfg at once. The node's ID is known from here on (UniqueID).
func NewNode(cfg *NodeConfig) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	ident, ok, err := storage.LoadIdentity(c.DataDir)
	if err != nil {
		return nil, err
	}
	id := c.ID
	switch {
	case ok && id != 0 && id != ident.ID:
		return nil, fmt.Errorf("%w: ID %d differs from %d recorded in %s", ErrInvalidConfig, id, ident.ID, c.DataDir)
	case ok && ident.ClusterID != 0 && ident.ClusterID != c.ClusterID:
		return nil, fmt.Errorf("%w: ClusterID %d differs from %d recorded in %s", ErrInvalidConfig, c.ClusterID, ident.ClusterID, c.DataDir)
	case ok:
		id = ident.ID
		if c.RaftPort == 0 {
			c.RaftPort = ident.RaftPort
		}
		if c.ConfigurationPort == 0 {
			c.ConfigurationPort = ident.ConfigPort
		}
		if c.GossipPort == 0 {
			c.GossipPort = ident.GossipPort
		}
	case id == 0:
		id = Uint64UUID()
	}
	n := &Node{
		cfg:    c,
		id:     id,
		logger: c.Logger.With("node", strconv.FormatUint(id, 10)),
	}
	if len(c.ClusterSecret) > 0 {
		k, err := keys.Derive(c.ClusterSecret, c.ClusterID)
		if err != nil {
			return nil, fmt.Errorf("%w: ClusterSecret: %w", ErrInvalidConfig, err)
		}
		n.keys = &k
	}
	n.wasMember.Store(ok && ident.Member)
	n.memberAt.Store(ident.MemberIndex)
	n.leaderBC.init()
	n.metrics = newMetrics(n)
	n.fsm = adapter.New(adapter.Config{
		FSM:                  shimFor(c.FSM),
		Stream:               streamFor(c.FSM),
		Notifier:             &n.observers,
		Logger:               n.logger.Named("fsm"),
		ConfigurationApplied: n.configurationApplied,
		ApplyObserved:        n.metrics.observeApply,
		Owns:                 n.owns,
		Delivered:            n.delivered,
		Restored:             n.restoredTo,
	})
	if c.forwarder != nil {
		n.fwd = c.forwarder
	} else {
		scheme := "http"
		if c.TLSConfig != nil {
			scheme = "https"
		}
		n.client = httpconfig.NewClient(c.TLSConfig, c.ClusterSecret, c.ClusterID)
		n.fwd = &httpForwarder{n: n, client: n.client, scheme: scheme}
	}
	return n, nil
}

// UniqueID returns the node's ID.
func (n *Node) UniqueID() uint64 { return n.id }

// IsRunning reports whether the node is started and not stopped.
func (n *Node) IsRunning() bool { return n.rt.Load() != nil }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool {
	rt := n.rt.Load()
	return rt != nil && rt.raft.State() == raft.Leader
}

// LeaderID returns the ID of the leader this node knows of, or 0.
func (n *Node) LeaderID() uint64 {
	rt := n.rt.Load()
	if rt == nil {
		return 0
	}
	_, sid := rt.raft.LeaderWithID()
	id, _ := adapter.ParseServerID(sid)
	return id
}

// pendingStart is a Start waiting for its join.
type pendingStart struct {
	cancel context.CancelCauseFunc // ends the join; the cause is a *startInterrupted
	done   chan struct{}           // closed when that Start returns
	err    error                   // what it returned; set before done is closed
}

// startInterrupted is what a Start returns when Stop or Destroy ended its
// join. It matches ErrNotRunning.
type startInterrupted struct{ by string }

func (e *startInterrupted) Error() string {
	return fmt.Sprintf("%v: Start was interrupted by %s before the node joined the cluster", ErrNotRunning, e.by)
}

func (e *startInterrupted) Is(target error) bool { return target == ErrNotRunning }

// Start starts the node: it opens DataDir (restoring the FSM from the newest
// snapshot and log if there is state: the FSM then holds at least every
// entry it held when the node stopped, or, after a crash, a fraction of a
// second before), starts the raft transport, and then
// founds a cluster (BootstrapNode), joins one (BootstrapPeers) or comes back
// as the member it was. Start does not wait for other nodes to start: a
// bootstrap node returns once its listeners are up. Starting a running node
// does nothing.
//
// A joining Start returns once the cluster has added the node. Stop or
// Destroy meanwhile end the join at once, and Start then returns an error
// matching ErrNotRunning that says so. A Start called while another one is
// joining waits for it and returns what it returns.
//
// A DataDir that another running node holds is refused (ErrDataDirInUse).
// A recovery requested in DataDir (ScheduleRecovery) is carried out first,
// with this node's FSM; if it cannot be, Start fails and says why.
func (n *Node) Start() error {
	n.lifeMu.Lock()
	if p := n.joining; p != nil {
		n.lifeMu.Unlock()
		<-p.done
		return p.err
	}
	defer n.lifeMu.Unlock()
	if n.removed.Load() {
		return ErrorRemovedFromCluster
	}
	if n.rt.Load() != nil {
		return nil
	}
	rt, hasState, err := n.start()
	if err != nil {
		return err
	}
	n.rt.Store(rt)
	if hasState || n.cfg.BootstrapNode || n.cfg.BootstrapExpect > 0 || len(n.cfg.BootstrapPeers) == 0 {
		return nil
	}
	join := n.join
	if len(n.cfg.bootstrapURLs()) == 0 {
		join = n.awaitGossipAdmission
	}
	// Join without lifeMu, so that Stop and Destroy can interrupt.
	ctx, cancel := context.WithCancelCause(rt.ctx)
	p := &pendingStart{cancel: cancel, done: make(chan struct{})}
	n.joining = p
	n.lifeMu.Unlock()
	err = join(ctx, rt)
	n.lifeMu.Lock()
	var si *startInterrupted
	switch cause := context.Cause(ctx); {
	case errors.As(cause, &si):
		// The interrupter tears the run down, and clears n.joining.
		err = cause
	case n.rt.Load() != rt: // removed and stopped meanwhile
		n.joining = nil
		if _, err = n.current(); err == nil {
			err = ErrNotRunning
		}
	case err != nil:
		n.joining = nil
		n.stopLocked(false)
	default:
		n.joining = nil
	}
	cancel(nil)
	p.err = err
	close(p.done)
	return err
}

// interruptStart ends the join of a pending Start, if there is one, and
// waits for that Start to return. Called with lifeMu held, it returns with
// lifeMu held again, the run left for the caller to tear down, and no
// Start pending.
func (n *Node) interruptStart(by string) {
	p := n.joining
	if p == nil {
		return
	}
	p.cancel(&startInterrupted{by: by})
	n.lifeMu.Unlock()
	<-p.done
	n.lifeMu.Lock()
	if n.joining == p {
		n.joining = nil
	}
}

func (n *Node) start() (_ *run, hasState bool, err error) {
	c := &n.cfg
	st, err := n.openStores()
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if err != nil && st != n.memStores {
			st.Close()
		}
	}()
	if hasState, err = raft.HasExistingState(st.Logs, st.Stable, st.Snaps); err != nil {
		return nil, false, fmt.Errorf("canoe: inspect raft state: %w", err)
	}
	removeStagedBackups(c.DataDir)
	// Validate lets RestoreFrom only with BootstrapNode or BootstrapExpect.
	founding := !hasState && (c.BootstrapNode || c.RestoreFrom != "")
	switch {
	case founding && c.RestoreFrom != "":
		if _, err := n.checkRestoreFrom(); err != nil {
			return nil, false, err
		}
	case hasState && c.RestoreFrom != "":
		n.logger.Info("DataDir holds state: restarting from it, RestoreFrom is not used", "restore_from", c.RestoreFrom)
	}
	// A node founding from a backup has state from the start: other
	// BootstrapExpect nodes wait for it to add them.
	ep, err := n.openEndpoints(hasState || founding && c.RestoreFrom != "")
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if err != nil {
			ep.close()
		}
	}()
	rc := n.raftConfig()
	if err := n.prepareState(rc, st, ep, founding); err != nil {
		return nil, false, err
	}
	rt, recorded, err := n.startRaft(rc, st, ep)
	if err != nil {
		return nil, false, err
	}
	n.startRun(rt, recorded, !hasState && !founding && c.BootstrapExpect > 0 && !c.NonVoter)
	if ep.layer != nil && c.ClusterSecret == nil && c.TLSConfig == nil && !isLoopback(c.BindAddr) {
		n.logger.Warn("this node has neither ClusterSecret nor TLSConfig: its raft, gossip and HTTP API ports accept anyone who can reach them",
			"bind", bindName(c.BindAddr))
	}
	n.logger.Info("started", "raft", ep.trans.LocalAddr(), "restarted", hasState)
	return rt, hasState, nil
}

// openStores opens DataDir's stores (or keeps the in-memory ones across
// Stop and Start), and carries out a recovery requested in DataDir.
func (n *Node) openStores() (st *storage.Stores, err error) {
	c := &n.cfg
	if c.DataDir == "" {
		if n.memStores == nil {
			if n.memStores, err = storage.Open("", storage.Auto, c.SnapshotConfig.policy(), n.logger); err != nil {
				return nil, err
			}
		}
		st = n.memStores
	} else if st, err = storage.Open(c.DataDir, storage.Kind(c.LogStore), c.SnapshotConfig.policy(), n.logger); err != nil {
		if errors.Is(err, storage.ErrFormatMismatch) {
			err = fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		return nil, err
	}
	if err := n.recoverAtStart(st); err != nil {
		if st != n.memStores {
			st.Close()
		}
		return nil, err
	}
	return st, nil
}

// endpoints are a node's listeners and the addresses it advertises.
type endpoints struct {
	trans  *transport.Progress
	layer  *transport.Layer // nil in in-memory test clusters
	self   Peer
	httpLn net.Listener // nil in in-memory test clusters
	gossip *gossip      // nil in in-memory test clusters
}

func (ep *endpoints) close() {
	ep.trans.Close()
	if ep.httpLn != nil {
		ep.httpLn.Close()
	}
	if ep.gossip != nil {
		ep.gossip.d.Shutdown()
	}
}

// openEndpoints opens the raft transport, the HTTP API's listener and
// gossip; hasState says (in gossip) that this node belongs to a cluster.
func (n *Node) openEndpoints(hasState bool) (*endpoints, error) {
	c := &n.cfg
	trans, layer, self, err := n.openTransport()
	if err != nil {
		return nil, err
	}
	ep := &endpoints{trans: trans, layer: layer, self: self}
	if c.transport != nil {
		return ep, nil
	}
	if ep.httpLn, err = n.listenHTTP(); err != nil {
		ep.close()
		return nil, err
	}
	ep.self.ConfigPort = ep.httpLn.Addr().(*net.TCPAddr).Port
	if ep.gossip, err = n.startGossip(&ep.self, c.GossipPort, hasState); err != nil {
		ep.close()
		return nil, err
	}
	return ep, nil
}

// prepareState records the node's identity and ports in DataDir and, for a
// node founding a cluster, writes its first configuration (or the backup it
// founds from).
func (n *Node) prepareState(rc *raft.Config, st *storage.Stores, ep *endpoints, founding bool) error {
	c := &n.cfg
	self := ep.self
	if err := n.saveIdentity(self, n.wasMember.Load(), n.memberAt.Load()); err != nil {
		return err
	}
	switch {
	case founding && c.RestoreFrom != "":
		return n.foundFromBackup(rc, st, ep.trans, self)
	case founding:
		boot := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: ep.trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, st.Logs, st.Stable, st.Snaps, ep.trans, boot); err != nil {
			return fmt.Errorf("canoe: bootstrap: %w", err)
		}
		n.logger.Info("founded a new cluster", "cluster", strconv.FormatUint(c.ClusterID, 10))
	}
	return nil
}

// startRaft starts raft on st (after checking that raft can restart from
// it), brings the FSM back to where it was, and returns the run around it
// with the applied index recorded before the restart.
func (n *Node) startRaft(rc *raft.Config, st *storage.Stores, ep *endpoints) (*run, uint64, error) {
	if err := st.CheckStart(n.logger); err != nil {
		return nil, 0, err
	}
	props := newProposals()
	n.props.Store(props)
	cu := newCatchUp()
	r, err := n.newRaft(rc, st, catchUpLogs{LogStore: st.Logs, c: cu}, ep.trans)
	if err != nil {
		return nil, 0, fmt.Errorf("canoe: start raft: %w", err)
	}
	recorded, err := n.replayApplied(st)
	if err != nil {
		if serr := r.Shutdown().Error(); serr != nil {
			err = errors.Join(err, fmt.Errorf("canoe: shut raft down: %w", serr))
		}
		return nil, 0, err
	}
	rt := &run{
		raft:      r,
		fsm:       n.fsm,
		trans:     ep.trans,
		layer:     ep.layer,
		stores:    st,
		self:      ep.self,
		gossip:    ep.gossip,
		props:     props,
		catchUp:   cu,
		proposals: make(chan proposal, maxBatchItems),
		forwards:  make(chan proposal, maxBatchItems),
		kick:      make(chan struct{}, 1),
		serving:   make(map[net.Conn]struct{}),
	}
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	rt.fwdClient = newForwardClient(n, rt)
	rt.reads = newReads(n, rt)
	rt.confirm = transport.NewConfirmer(rt.ctx, ep.trans, rc.LocalID)
	rt.visible.last = n.fsm.AppliedIndex()
	rt.visible.scanned = rt.visible.last
	if ep.httpLn != nil {
		n.serveHTTP(rt, ep.httpLn)
	}
	return rt, recorded, nil
}

// startRun starts the run's goroutines.
func (n *Node) startRun(rt *run, recorded uint64, bootstrapExpect bool) {
	obsCh := make(chan raft.Observation, 256)
	rt.obs = raft.NewObserver(obsCh, false, nil)
	rt.raft.RegisterObserver(rt.obs)
	rt.wg.Go(func() { n.recordApplied(rt, recorded) })
	rt.wg.Go(func() { n.observe(rt, obsCh) })
	rt.wg.Go(func() { n.batcher(rt) })
	rt.wg.Go(func() { n.settleBatches(rt) })
	rt.wg.Go(func() { n.runCatchUp(rt) })
	rt.wg.Go(rt.reads.run)
	rt.wg.Go(func() { n.manage(rt) })
	rt.wg.Go(func() { n.forwardLoop(rt) })
	if rt.layer != nil {
		rt.wg.Go(func() { n.acceptForward(rt) })
	}
	if rt.gossip != nil {
		rt.wg.Go(func() { n.watchGossip(rt) })
		rt.wg.Go(func() { n.joinGossip(rt) })
		if bootstrapExpect {
			rt.wg.Go(func() { n.bootstrapExpect(rt) })
		}
	}
}

func (n *Node) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = adapter.ServerID(n.id)
	rc.Logger = newRaftLogger(n.logger.Named("raft"))
	t := n.cfg.Timing
	rc.HeartbeatTimeout = t.HeartbeatTimeout
	rc.ElectionTimeout = t.ElectionTimeout
	rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	rc.CommitTimeout = t.CommitTimeout
	// BatchApplyCh buffers raft's apply queue, and a future left in that
	// buffer at Shutdown is never answered: waiting on it would hang Stop.
	// Raft still groups queued applies into one disk write without it.
	rc.BatchApplyCh = false
	rc.ShutdownOnRemove = true
	rc.NoLegacyTelemetry = true
	n.cfg.SnapshotConfig.policy().Apply(rc)
	return rc
}

// openTransport starts the raft transport and works out the addresses this
// node advertises.
func (n *Node) openTransport() (*transport.Progress, *transport.Layer, Peer, error) {
	c := &n.cfg
	self := Peer{ID: n.id, ConfigPort: c.ConfigurationPort, Voter: true}
	if c.transport != nil {
		host, port, err := splitHostPort(string(c.transport.LocalAddr()))
		if err != nil {
			return nil, nil, Peer{}, err
		}
		self.Host, self.RaftPort = host, port
		return transport.NewProgress(c.transport), nil, self, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.RaftPort)))
	if err != nil {
		return nil, nil, Peer{}, fmt.Errorf("canoe: raft listener: %w", err)
	}
	self.Host = advertiseHost(c.AdvertiseAddr, c.BindAddr)
	self.RaftPort = ln.Addr().(*net.TCPAddr).Port
	advertise := &net.TCPAddr{IP: net.ParseIP(self.Host), Port: self.RaftPort}
	if advertise.IP == nil { // a host name
		resolved, err := net.ResolveTCPAddr("tcp", self.raftAddr())
		if err != nil {
			ln.Close()
			return nil, nil, Peer{}, fmt.Errorf("canoe: resolve AdvertiseAddr: %w", err)
		}
		advertise = resolved
	}
	layer := transport.New(transport.Config{
		Listener:  ln,
		Advertise: advertise,
		TLS:       c.TLSConfig,
		Key:       n.raftKey(),
		ClusterID: c.ClusterID,
		Logger:    n.logger.Named("raft-net"),
	})
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newRaftLogger(n.logger.Named("raft-net")),
	})
	return transport.NewProgress(nt), layer, self, nil
}

// isLoopback reports whether bind (a BindAddr) reaches this machine only.
func isLoopback(bind string) bool {
	ip := net.ParseIP(bind)
	return ip != nil && ip.IsLoopback()
}

func bindName(bind string) string {
	if bind == "" {
		return "all interfaces"
	}
	return bind
}

// advertiseHost picks the host peers use to reach this node.
func advertiseHost(advertise, bind string) string {
	if advertise != "" {
		return advertise
	}
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		return bind
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsPrivate() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("canoe: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("canoe: address %q has a bad port", addr)
	}
	return host, port, nil
}

// Stop shuts the node down but keeps it a member: it still counts toward
// quorum, and a Start (or a new process on the same DataDir) brings it back.
// A leader hands leadership to another live voter first. A Start still
// joining is interrupted (see Start). Proposals in flight get an error that
// matches ErrUnknownOutcome (or ErrNotRunning if they never reached raft).
// Stop waits for the node's goroutines; it is idempotent and safe before
// Start.
func (n *Node) Stop() error {
	n.selfStop.wait(0)
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	n.interruptStart("Stop")
	return n.stopLocked(true)
}

func (n *Node) stopLocked(handover bool) error {
	rt := n.rt.Load()
	if rt == nil {
		return nil
	}
	if handover && rt.raft.State() == raft.Leader && n.otherVoters(rt, true) > 0 {
		if err := n.transferLeadership(context.Background(), rt); err != nil {
			n.logger.Info("could not hand leadership over before stopping; the others elect a leader", "error", err)
		}
	}
	n.rt.Store(nil)
	var errs []error
	if err := n.stopHTTP(rt); err != nil {
		errs = append(errs, fmt.Errorf("canoe: stop HTTP API: %w", err))
	}
	if left := rt.futures.wait(2 * n.cfg.Timing.ElectionTimeout); left > 0 {
		n.logger.Warn("raft operations still unanswered at Stop; their waiting goroutines may outlive it", "operations", left)
	}
	if err := rt.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("canoe: shut raft down: %w", err))
	}
	rt.raft.DeregisterObserver(rt.obs)
	rt.cancel()
	// Closing the transport ends the RPCs and dials in flight (leadership
	// confirmations, forward connections), which could otherwise hold Stop
	// for a dial timeout to a dead peer.
	if err := rt.trans.Close(); err != nil {
		errs = append(errs, fmt.Errorf("canoe: close transport: %w", err))
	}
	rt.closeServing()
	if rt.gossip != nil {
		if err := rt.gossip.d.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("canoe: stop gossip: %w", err))
		}
	}
	rt.wg.Wait()
	rt.confirm.Wait()
	n.refuseQueued(rt)
	rt.props.failAll()
	// Raft has shut down, so the FSM is where a restart should find it.
	if err := rt.stores.SaveApplied(n.fsm.AppliedIndex()); err != nil {
		n.logger.Warn("could not record the applied index; a restart may replay less of the log before Start returns", "error", err)
	}
	if rt.stores != n.memStores {
		if err := rt.stores.Close(); err != nil {
			errs = append(errs, fmt.Errorf("canoe: close stores: %w", err))
		}
	}
	n.logger.Info("stopped")
	return errors.Join(errs...)
}

// Destroy removes the node from the cluster (waiting until the removal is
// committed), stops it, and deletes canoe's files from DataDir. A destroyed
// node cannot be started again; a node the cluster already removed is just
// stopped and deleted. A Start still joining is interrupted (see Start); if
// the cluster had not added the node yet, there is nothing to leave.
func (n *Node) Destroy() error {
	n.selfStop.wait(0)
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	n.interruptStart("Destroy")
	rt := n.rt.Load()
	if rt == nil && !n.removed.Load() {
		return fmt.Errorf("%w: Destroy must leave the cluster, so the node must be running", ErrNotRunning)
	}
	if rt != nil && !n.removed.Load() {
		// Gossip says "leaving" first, so that no leader re-adds this node
		// between its removal and its departure from the gossip pool.
		n.leaveGossip(rt)
		if err := n.leave(rt); err != nil {
			return err
		}
	}
	n.removed.Store(true)
	err := n.stopLocked(false)
	if rmErr := storage.RemoveState(n.cfg.DataDir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("canoe: delete DataDir state: %w", rmErr))
	}
	n.memStores = nil
	return err
}

// raftErr maps raft's errors to canoe's sentinels.
func (n *Node) raftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrRaftShutdown):
		if n.removed.Load() {
			return ErrorRemovedFromCluster
		}
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return &NotLeaderError{LeaderID: n.LeaderID()}
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: leadership lost: %v", ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrAbortedByRestore):
		// The entry may have been applied before a backup's state replaced
		// the FSM's.
		return fmt.Errorf("%w: a backup was restored meanwhile: %v", ErrUnknownOutcome, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(err, errStopped):
		return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	}
	return err
}

// errStopped reports a raft future abandoned because the node stopped.
var errStopped = errors.New("canoe: node stopped while waiting for raft")

// await waits for a raft future of a rare operation (a membership change, a
// barrier, a transfer) until ctx ends or the node stops. Raft does not
// answer every future at Shutdown (entries already handed to its FSM queue
// are dropped), so the wait runs in a goroutine that ends when raft answers;
// proposals and reads, the frequent operations, never wait on a future.
// An error that matches ErrTimeout means the operation may still happen.
func (n *Node) await(ctx context.Context, rt *run, f raft.Future) error {
	done := make(chan error, 1)
	rt.futures.Go(func() { done <- f.Error() })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	case <-rt.ctx.Done():
		// Raft has shut down by now: a future it answered is done at once.
		select {
		case err := <-done:
			return err
		case <-time.After(100 * time.Millisecond):
			return errStopped
		}
	}
}

// goroutines counts goroutines that cannot be in a run's WaitGroup, and
// lets others wait for them to end: the waiters on raft futures (Stop lets
// them finish before it shuts raft down: raft answers at Shutdown the
// futures of entries it has not committed, but drops those of committed
// entries its FSM has not applied yet), and the goroutine that stops a node
// the cluster removed (it calls what waits for the run's WaitGroup). Unlike
// a WaitGroup it may gain a goroutine while someone waits.
type goroutines struct {
	mu   sync.Mutex // guards n, idle
	n    int
	idle chan struct{} // closed when n drops to 0
}

// Go runs f in a counted goroutine.
func (g *goroutines) Go(f func()) {
	g.mu.Lock()
	if g.n == 0 {
		g.idle = make(chan struct{})
	}
	g.n++
	g.mu.Unlock()
	go func() {
		defer g.done()
		f()
	}()
}

func (g *goroutines) done() {
	g.mu.Lock()
	g.n--
	if g.n == 0 {
		close(g.idle)
	}
	g.mu.Unlock()
}

// wait waits until none runs, or d passes (d <= 0: no limit); it reports
// how many still run.
func (g *goroutines) wait(d time.Duration) int {
	g.mu.Lock()
	n, idle := g.n, g.idle
	g.mu.Unlock()
	if n == 0 {
		return 0
	}
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-idle:
	case <-timeout:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// current returns the current run of a running node.
func (n *Node) current() (*run, error) {
	rt := n.rt.Load()
	if rt == nil {
		if n.removed.Load() {
			return nil, ErrorRemovedFromCluster
		}
		return nil, ErrNotRunning
	}
	return rt, nil
}

// broadcast wakes every waiter each time it fires.
type broadcast struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

func (b *broadcast) init() { b.ch = make(chan struct{}) }

// wait returns a channel closed at the next fire.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

// raftKey returns the raft handshake key, nil without a ClusterSecret.
func (n *Node) raftKey() []byte {
	if n.keys == nil {
		return nil
	}
	return n.keys.Raft[:]
}
