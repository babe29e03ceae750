package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

// runNode runs one node until ctx ends: it checks its ports, serves the
// demo HTTP API, starts the node (removing a half-made DataDir if a first
// start fails), and at the end stops it, or with -leave-on-exit takes it
// out of the cluster.
func runNode(ctx context.Context, o nodeOptions, stdout, stderr io.Writer) (err error) {
	logger := newLogger(stderr, o.Verbose)
	// Busy ports fail here, naming their flag, before anything joins or
	// writes to -data.
	if err := checkPorts(o); err != nil {
		return err
	}
	if o.Backups.Dir != "" {
		if err := prepareBackupDir(o.Backups.Dir); err != nil {
			return err
		}
	}
	ln, kvURL, err := listenHTTP(o)
	if err != nil {
		return err
	}

	kv := newKVStore()
	node, err := canoe.NewNode(nodeConfig(o, kv, logger))
	if err != nil {
		ln.Close()
		return err
	}
	clusterID := o.ClusterID
	if clusterID == 0 {
		clusterID = canoe.DefaultClusterID
	}
	client := httpconfig.NewClient(nil, []byte(o.Secret), clusterID)
	defer client.Close()
	events := newEventLog(logger.Named("cluster"))
	mon := newMonitor(&remoteCluster{node: node, client: client, scheme: "http", kvURL: kvURL, kv: kv}, events)
	serveErr, shutdown := serveNode(ln, node, kv, mon, logger)
	defer shutdown()
	w := events.watch(node)
	defer w.stop()

	started, err := startNode(ctx, node, o, logger)
	if err != nil || !started {
		return err
	}
	defer func() { err = errors.Join(err, exitNode(node, o, logger)) }()

	defer mon.start()()
	if o.Backups.Dir != "" {
		// Stopped before the node is (defers run last first).
		defer newBackupScheduler(node, o.Backups, node.UniqueID(), logger.Named("backup")).start()()
	}
	printNode(stdout, node.Self(), kvURL)
	if o.Secret == "" {
		logger.Warn("no -secret (CANOE_SECRET): this node's raft, gossip and canoe API ports are open to anyone who can reach them")
	} else {
		logger.Info("protected by the cluster secret: raft connections, gossip and canoe API calls without it are refused")
	}

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return nil
	case err := <-serveErr:
		serveErr <- err // for the deferred shutdown
		return fmt.Errorf("demo HTTP server: %w", err)
	}
}

// nodeConfig is canoe's configuration for the flags o.
func nodeConfig(o nodeOptions, kv *kvStore, logger hclog.Logger) *canoe.NodeConfig {
	return &canoe.NodeConfig{
		ID:                o.ID,
		ClusterID:         o.ClusterID,
		FSM:               kv,
		RaftPort:          o.RaftPort,
		ConfigurationPort: o.ConfigPort,
		BootstrapPeers:    o.joinURLs(),
		BootstrapNode:     o.Bootstrap,
		BootstrapExpect:   o.Expect,
		GossipPort:        o.GossipPort,
		DeadNodeTimeout:   o.DeadNode,
		NonVoter:          o.NonVoter,
		DataDir:           o.DataDir,
		Logger:            canoeLogger(logger, o.Verbose),
		BindAddr:          o.Bind,
		AdvertiseAddr:     o.Advertise,
		Timing:            canoe.LANProfile(),
		ClusterSecret:     []byte(o.Secret),
	}
}

// listener is one port a node listens on, and the flag that sets it.
type listener struct {
	flag    string
	network string // tcp or udp
	port    int
}

// checkPorts tries every fixed port of o on -bind, and for one that cannot
// be had says which flag changes it. It holds them all at once, so it also
// notices two flags naming one port, and releases them before returning
// (canoe binds them again a moment later).
func checkPorts(o nodeOptions) error {
	want := []listener{
		{"-raft-port", "tcp", o.RaftPort},
		{"-config-port", "tcp", o.ConfigPort},
		{"-gossip-port", "tcp", o.GossipPort},
		{"-gossip-port", "udp", o.GossipPort},
	}
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, l := range want {
		if l.port == 0 {
			continue
		}
		addr := net.JoinHostPort(o.Bind, strconv.Itoa(l.port))
		var c io.Closer
		var err error
		if l.network == "udp" {
			c, err = net.ListenPacket("udp", addr)
		} else {
			c, err = net.Listen("tcp", addr)
		}
		if err != nil {
			return portError(l.flag, l.network, addr, err)
		}
		closers = append(closers, c)
	}
	return nil
}

// portError explains why addr, set by flag, cannot be listened on.
func portError(flag, network, addr string, err error) error {
	env := envName(flag[1:])
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s: %s %s is already in use; choose another port with %s (or %s)", flag, network, addr, flag, env)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: %s %s needs privileges to listen on; choose a port above 1023 with %s (or %s)", flag, network, addr, flag, env)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%s: %s is not an address of this machine; change -bind (or CANOE_BIND)", flag, addr)
	}
	return fmt.Errorf("%s: cannot listen on %s %s: %w", flag, network, addr, err)
}

// listenHTTP opens the demo HTTP listener (-http) and returns it with the
// URL it is reached at.
func listenHTTP(o nodeOptions) (net.Listener, string, error) {
	addr := o.httpAddr()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if o.HTTP == "" && errors.Is(err, syscall.EADDRINUSE) {
			return nil, "", fmt.Errorf("-http: tcp %s (the default, port 8080 on -bind) is already in use; choose another address with -http host:port (or CANOE_HTTP)", addr)
		}
		return nil, "", portError("-http", "tcp", addr, err)
	}
	kvURL := "http://" + ln.Addr().String()
	if host, port, _ := net.SplitHostPort(ln.Addr().String()); net.ParseIP(host).IsUnspecified() {
		kvURL = "http://" + net.JoinHostPort(advertisedHost(o), port)
	}
	return ln, kvURL, nil
}

// serveNode serves the demo HTTP API on ln until shutdown is called;
// serveErr receives the server's error if it fails before.
func serveNode(ln net.Listener, node *canoe.Node, kv *kvStore, mon *monitor, logger hclog.Logger) (serveErr chan error, shutdown func()) {
	srv := &http.Server{
		Handler: (&server{
			backend: func() (*canoe.Node, *kvStore) { return node, kv },
			monitor: mon,
			logger:  logger.Named("http"),
		}).handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr = make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	return serveErr, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-serveErr
	}
}

// startNode starts node. It returns started false, with a nil error, when
// ctx ended first. A first start (no node identity in -data yet) that does
// not complete removes what it wrote to -data, so the next try starts
// clean; a restart's -data is never touched.
func startNode(ctx context.Context, node *canoe.Node, o nodeOptions, logger hclog.Logger) (started bool, err error) {
	before, err := inspectDataDir(o.DataDir)
	if err != nil {
		return false, err
	}
	defer func() {
		if started || !before.first() {
			return
		}
		if rmErr := before.undo(); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("removing what the failed start wrote to -data: %w", rmErr))
		} else {
			logger.Info("removed what the failed first start wrote to -data", "data", o.DataDir)
		}
	}()

	if before.first() && o.Join != "" && o.Expect == 0 {
		logger.Info("joining the cluster", "through", o.Join)
	}
	done := make(chan error, 1)
	go func() { done <- node.Start() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Start is joining; Stop makes it give up.
		_ = node.Stop()
		<-done
		return false, nil
	}
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w (a port became busy after the check: change -raft-port, -config-port or -gossip-port)", err)
		}
		return false, err
	}
	logStart(node, o, before.first(), logger)
	return true, nil
}

// logStart says how the node came up. A node with a configuration that
// had one before it started restarted as a member: -bootstrap and -expect
// did nothing, and it says so instead of waiting for others.
func logStart(node *canoe.Node, o nodeOptions, first bool, logger hclog.Logger) {
	members := len(node.Peers())
	switch {
	case !first && members > 0:
		args := []any{"data", o.DataDir, "members", members}
		if o.Bootstrap || o.Expect > 0 {
			args = append(args, "ignored", "-bootstrap and -expect found new clusters only")
		}
		logger.Info("restarted from -data as a member of the cluster", args...)
	case o.Expect > 0 && members == 0:
		logger.Info("waiting for the other nodes by gossip before founding the cluster (-expect)", "expect", o.Expect)
	case !o.Bootstrap && o.Join == "" && members == 0:
		logger.Info("neither -bootstrap, -join nor -expect: waiting for a member to add this node (POST /peers)")
	}
}

// exitNode stops the node, or with -leave-on-exit removes it from the
// cluster and deletes its raft data.
func exitNode(node *canoe.Node, o nodeOptions, logger hclog.Logger) error {
	if !o.Leave {
		if err := node.Stop(); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		return nil
	}
	id := node.UniqueID()
	logger.Info("leaving the cluster (-leave-on-exit)", "node", id)
	if err := node.Destroy(); err != nil {
		stopErr := node.Stop()
		return errors.Join(fmt.Errorf("-leave-on-exit: node %d could not leave the cluster and stays a member (stopped): %w; "+
			"remove it from another member with DELETE /peers {\"id\":%d}", id, err, id), stopErr)
	}
	logger.Info("left the cluster; deleted the raft data in -data", "node", id, "data", o.DataDir)
	return nil
}

// printNode prints the node's addresses and a few commands to try.
func printNode(w io.Writer, self canoe.Peer, kvURL string) {
	fmt.Fprintf(w, `
canoe demo node %d
  raft      %s:%d
  canoe API http://%[2]s:%[4]d   (GET /status, /peers; join others through it)
  gossip    %[2]s:%[6]d
  KV + dashboard %[5]s/

Try:
  curl -i -X PUT --data-binary 'world' %[5]s/kv/hello
  curl '%[5]s/kv/hello?consistent=true'
  curl %[5]s/api/cluster
`, self.ID, self.Host, self.RaftPort, self.ConfigPort, kvURL, self.GossipPort)
}

// advertisedHost is the host shown in URLs when listening on all interfaces.
func advertisedHost(o nodeOptions) string {
	if o.Advertise != "" {
		return o.Advertise
	}
	return "127.0.0.1"
}

// identityFile is the file canoe keeps a node's identity in, in DataDir
// (README, "Storage"): its presence means the node has started there before.
const identityFile = "canoe.json"

// dataDirBefore is what -data held before a start.
type dataDirBefore struct {
	dir      string
	existed  bool
	entries  map[string]bool
	identity bool // a node has started on this directory before
}

func inspectDataDir(dir string) (dataDirBefore, error) {
	b := dataDirBefore{dir: dir, entries: map[string]bool{}}
	list, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return b, nil
	case err != nil:
		return b, fmt.Errorf("-data %s: %w", dir, err)
	}
	b.existed = true
	for _, e := range list {
		b.entries[e.Name()] = true
	}
	b.identity = b.entries[identityFile]
	return b, nil
}

// first reports whether the start is the first on this directory.
func (b dataDirBefore) first() bool { return !b.identity }

// undo removes what was created in the directory since inspectDataDir:
// the directory itself if it did not exist, else the new entries.
func (b dataDirBefore) undo() error {
	if !b.existed {
		return os.RemoveAll(b.dir)
	}
	list, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range list {
		if !b.entries[e.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(b.dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
