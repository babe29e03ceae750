package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

// localOptions configures the one-process cluster.
type localOptions struct {
	DataDir  string // "" means a temporary directory removed at exit
	HTTPPort int    // demo HTTP port of node 1 (nodes 2, 3 use the next ones); 0 picks free ports
	Secret   string // the cluster's secret (never empty: -secret, or a random one)
	Nodes    int    // cluster size; 0 means 3
	Verbose  bool

	// ready, if set, is called once the cluster is up (tests use it).
	ready func(*localCluster)
}

// slot is one node of the one-process cluster. A node stopped from the
// dashboard and started again is a new *canoe.Node on the same DataDir and
// ports, with a fresh store that canoe restores.
type slot struct {
	id  uint64
	cfg canoe.NodeConfig // FSM and Logger are set per start

	life sync.Mutex // serializes start and stop

	mu      sync.Mutex // guards node, kv, watcher, self, voter, replica
	node    *canoe.Node
	kv      *kvStore
	watcher *watcher
	self    canoe.Peer // addresses, kept while the node is stopped
	voter   bool       // last known suffrage, kept while the node is stopped
	replica bool       // last known read-replica flag, kept the same way

	kvURL string // set once before serving
}

// addrs returns the addresses of the node's latest start.
func (s *slot) addrs() canoe.Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self
}

func (s *slot) current() (*canoe.Node, *kvStore) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node, s.kv
}

// localCluster runs every node in this process.
type localCluster struct {
	logger  hclog.Logger
	verbose bool // -v: canoe's own logs at debug
	events  *eventLog
	slots   []*slot
}

func (c *localCluster) slot(id uint64) *slot {
	for _, s := range c.slots {
		if s.id == id {
			return s
		}
	}
	return nil
}

// start creates a new node for s and starts it.
func (c *localCluster) start(s *slot) error {
	s.life.Lock()
	defer s.life.Unlock()
	if n, _ := s.current(); n != nil && n.IsRunning() {
		return fmt.Errorf("%w: node %d is already running", errConflict, s.id)
	}
	cfg := s.cfg
	kv := newKVStore()
	cfg.FSM = kv
	cfg.Logger = canoeLogger(c.logger, c.verbose)
	node, err := canoe.NewNode(&cfg)
	if err != nil {
		return fmt.Errorf("node %d: %w", s.id, err)
	}
	w := c.events.watch(node)
	if err := node.Start(); err != nil {
		w.stop()
		return fmt.Errorf("start node %d: %w", s.id, err)
	}
	self := node.Self()
	s.mu.Lock()
	s.node, s.kv, s.watcher, s.self = node, kv, w, self
	s.mu.Unlock()
	// A restart reuses the ports picked the first time.
	s.cfg.RaftPort, s.cfg.ConfigurationPort = self.RaftPort, self.ConfigPort
	return nil
}

// stop stops s's node; it stays a member of the cluster.
func (c *localCluster) stop(s *slot) error {
	s.life.Lock()
	defer s.life.Unlock()
	node, _ := s.current()
	if node == nil || !node.IsRunning() {
		return fmt.Errorf("%w: node %d is not running", errConflict, s.id)
	}
	err := node.Stop()
	s.mu.Lock()
	w := s.watcher
	s.watcher = nil
	s.mu.Unlock()
	if w != nil {
		w.stop()
	}
	return err
}

func (c *localCluster) StopNode(_ context.Context, id uint64) error {
	s := c.slot(id)
	if s == nil {
		return fmt.Errorf("%w: %d", errUnknownNode, id)
	}
	c.logger.Info("stopping node (dashboard)", "node", id)
	return c.stop(s)
}

func (c *localCluster) StartNode(_ context.Context, id uint64) error {
	s := c.slot(id)
	if s == nil {
		return fmt.Errorf("%w: %d", errUnknownNode, id)
	}
	c.logger.Info("starting node again (dashboard)", "node", id)
	return c.start(s)
}

// Cluster describes every node. A stopped node keeps its addresses and
// the suffrage the running nodes' configuration gives it (the monitor adds
// its last known indexes).
func (c *localCluster) Cluster(context.Context) clusterView {
	suffrage := c.suffrage()
	var v clusterView
	for _, s := range c.slots {
		node, kv := s.current()
		self := s.addrs()
		nv := nodeView{ID: idString(s.id), State: "stopped"}
		if node != nil && node.IsRunning() {
			nv = viewOf(node.Status())
			w := kv.Writes()
			nv.Writes, nv.writesGen = &w, kv.gen
		}
		s.mu.Lock()
		if p, ok := suffrage[s.id]; ok {
			s.voter, s.replica = p.Voter, p.NonVoter
		}
		nv.Voter, nv.Replica = s.voter, s.replica
		s.mu.Unlock()
		peerAddrs(&nv, self)
		nv.KV = s.kvURL
		v.Nodes = append(v.Nodes, nv)
	}
	v.finish()
	return v
}

// suffrage returns each member (its suffrage and read-replica flag) in the
// configuration of the leader, else of any running node; nil when no node
// runs.
func (c *localCluster) suffrage() map[uint64]canoe.Peer {
	var from *canoe.Node
	for _, s := range c.slots {
		if n, _ := s.current(); n != nil && n.IsRunning() && (from == nil || n.IsLeader()) {
			from = n
		}
	}
	if from == nil {
		return nil
	}
	out := map[uint64]canoe.Peer{}
	for _, p := range from.Peers() {
		out[p.ID] = p
	}
	return out
}

// ready reports whether one running node leads and every running node knows
// it, and the leader counts want voters.
func (c *localCluster) ready(want int) bool {
	var leader *canoe.Node
	for _, s := range c.slots {
		if n, _ := s.current(); n != nil && n.IsLeader() {
			leader = n
		}
	}
	if leader == nil {
		return false
	}
	voters := 0
	for _, p := range leader.Peers() {
		if p.Voter {
			voters++
		}
	}
	if voters != want {
		return false
	}
	for _, s := range c.slots {
		if n, _ := s.current(); n != nil && n.IsRunning() && n.LeaderID() != leader.UniqueID() {
			return false
		}
	}
	return true
}

// stopAll stops every running node, followers first so the leader does not
// hand leadership to a node about to stop.
func (c *localCluster) stopAll() error {
	var errs []error
	for _, leaders := range []bool{false, true} {
		for _, s := range c.slots {
			n, _ := s.current()
			if n == nil || !n.IsRunning() || n.IsLeader() != leaders {
				continue
			}
			if err := c.stop(s); err != nil && !errors.Is(err, errConflict) {
				errs = append(errs, err)
			}
		}
	}
	// A node may have become leader between the passes.
	for _, s := range c.slots {
		if n, _ := s.current(); n != nil && n.IsRunning() {
			if err := c.stop(s); err != nil && !errors.Is(err, errConflict) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// runLocal runs the one-process demo until ctx ends.
func runLocal(ctx context.Context, opt localOptions, stdout, stderr io.Writer) (err error) {
	if opt.Nodes == 0 {
		opt.Nodes = 3
	}
	logger := newLogger(stderr, opt.Verbose)
	dataDir, keep, removeDataDir, err := localDataDir(opt.DataDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, removeDataDir()) }()

	c := newLocalCluster(logger, opt, dataDir)
	defer func() { err = errors.Join(err, c.stopAll()) }()
	if err := c.startAll(); err != nil {
		return err
	}

	mon := newMonitor(c, c.events)
	shutdown, err := c.serve(opt.HTTPPort, mon)
	defer shutdown()
	if err != nil {
		return err
	}
	// The monitor samples the cluster for the dashboards until the demo
	// ends; it stops before the servers and nodes do.
	defer mon.start()()

	if err := waitUntil(ctx, 30*time.Second, func() bool { return c.ready(opt.Nodes) }); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return fmt.Errorf("cluster did not form: %w", err)
	}
	printLocal(stdout, c, dataDir, keep, opt.Secret)
	if opt.ready != nil {
		opt.ready(c)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nshutting down...")
	return nil
}

// localDataDir returns the directory for the nodes' data: dir, or a new
// temporary one that remove deletes (remove does nothing for dir).
func localDataDir(dir string) (_ string, keep bool, remove func() error, err error) {
	if dir != "" {
		return dir, true, func() error { return nil }, nil
	}
	if dir, err = os.MkdirTemp("", "canoe-demo-"); err != nil {
		return "", false, nil, err
	}
	return dir, false, func() error { return os.RemoveAll(dir) }, nil
}

// newLocalCluster prepares opt.Nodes nodes on 127.0.0.1 with their data
// under dataDir; node 1 founds the cluster.
func newLocalCluster(logger hclog.Logger, opt localOptions, dataDir string) *localCluster {
	c := &localCluster{logger: logger, verbose: opt.Verbose, events: newEventLog(logger.Named("cluster"))}
	c.events.leaderOnly = true
	backoff := &canoe.InitializationBackoffArgs{
		InitialInterval:     100 * time.Millisecond,
		Multiplier:          1.5,
		MaxInterval:         time.Second,
		MaxElapsedTime:      30 * time.Second,
		RandomizationFactor: 0.2,
	}
	for i := 1; i <= opt.Nodes; i++ {
		c.slots = append(c.slots, &slot{id: uint64(i), cfg: canoe.NodeConfig{
			ID:            uint64(i),
			DataDir:       filepath.Join(dataDir, "node"+strconv.Itoa(i)),
			BindAddr:      "127.0.0.1",
			AdvertiseAddr: "127.0.0.1",
			Timing:        canoe.LocalProfile(),
			InitBackoff:   backoff,
			ClusterSecret: []byte(opt.Secret),
		}})
	}
	c.slots[0].cfg.BootstrapNode = true
	return c
}

// startAll starts the founder, then the other nodes at once, each joining
// through the founder's canoe API.
func (c *localCluster) startAll() error {
	first := c.slots[0]
	if err := c.start(first); err != nil {
		return err
	}
	join := fmt.Sprintf("http://127.0.0.1:%d", first.addrs().ConfigPort)
	var wg sync.WaitGroup
	errs := make([]error, len(c.slots))
	for i, s := range c.slots[1:] {
		s.cfg.BootstrapPeers = []string{join}
		wg.Go(func() { errs[i] = c.start(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serve starts one demo HTTP server per node, on firstPort and the ports
// after it (0: free ports). shutdown stops them and waits; call it even
// when serve fails.
func (c *localCluster) serve(firstPort int, mon *monitor) (shutdown func(), err error) {
	var servers []*http.Server
	var wg sync.WaitGroup
	shutdown = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range servers {
			_ = srv.Shutdown(ctx)
		}
		wg.Wait()
	}
	// Every node's URL is set before any server runs: the dashboards show
	// them all.
	lns := make([]net.Listener, 0, len(c.slots))
	defer func() {
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
		}
	}()
	for i, s := range c.slots {
		port := 0
		if firstPort != 0 {
			port = firstPort + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return shutdown, fmt.Errorf("demo HTTP server of node %d (change -http-port): %w", s.id, err)
		}
		lns = append(lns, ln)
		s.kvURL = "http://" + ln.Addr().String()
	}
	for i, s := range c.slots {
		srv := &http.Server{
			Handler: (&server{
				backend: s.current,
				monitor: mon,
				control: c,
				logger:  c.logger.Named("http").With("node", s.id),
			}).handler(),
			ReadHeaderTimeout: 10 * time.Second,
		}
		servers = append(servers, srv)
		wg.Go(func() {
			if err := srv.Serve(lns[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				c.logger.Error("demo HTTP server failed", "node", s.id, "error", err)
			}
		})
	}
	return shutdown, nil
}

// waitUntil polls cond until it holds, ctx ends or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func printLocal(w io.Writer, c *localCluster, dataDir string, keep bool, secret string) {
	fmt.Fprintf(w, "\ncanoe demo: a %d-node replicated key-value store, all in this process\n", len(c.slots))
	if keep {
		fmt.Fprintf(w, "data: %s (kept; run again with the same -data to restart from it)\n\n", dataDir)
	} else {
		fmt.Fprintf(w, "data: %s (removed at exit; use -data DIR to keep it)\n\n", dataDir)
	}
	for _, s := range c.slots {
		node, _ := s.current()
		role := "follower"
		if node.IsLeader() {
			role = "leader"
		}
		self := s.addrs()
		fmt.Fprintf(w, "  node %d  %-8s  raft %s:%d  canoe API http://%s:%d  KV %s\n",
			s.id, role, self.Host, self.RaftPort, self.Host, self.ConfigPort, s.kvURL)
	}
	a, b := c.slots[0], c.slots[len(c.slots)-1]
	fmt.Fprintf(w, `
Dashboard (stop and start nodes, watch the leader move):
  %[1]s/

Try (writes go to any node; canoe forwards them to the leader):
  curl -i -X PUT --data-binary 'world' %[1]s/kv/hello
  curl %[2]s/kv/hello
  curl '%[2]s/kv/hello?consistent=true'
  curl %[1]s/kv
  curl -i -X DELETE %[2]s/kv/hello
  curl %[1]s/api/cluster

canoe's own raft, gossip and HTTP API are protected by the cluster secret
%[5]q (CANOE_SECRET=... or -secret chooses one). Its read-only metrics token:
  curl -H 'Authorization: Bearer %[6]s' http://%[3]s:%[4]d/metrics

Press Ctrl-C to stop.
`, a.kvURL, b.kvURL, a.addrs().Host, a.addrs().ConfigPort, secret, metricsToken(secret))
}

// metricsToken is the bearer token for GET /metrics of a cluster with the
// default ClusterID.
func metricsToken(secret string) string {
	t, err := httpconfig.MetricsToken([]byte(secret), canoe.DefaultClusterID)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return t
}
