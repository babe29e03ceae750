package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

// nodeOptions are the flags of "demo node".
type nodeOptions struct {
	ID         uint64
	ClusterID  uint64
	Bind       string
	Advertise  string
	RaftPort   int
	ConfigPort int
	GossipPort int
	HTTP       string
	DataDir    string
	Bootstrap  bool
	Join       string
	Expect     int
	DeadNode   time.Duration
	Secret     string
	Verbose    bool
}

const nodeUsage = `Usage: demo node [flags]

Runs one canoe node of a replicated key-value store: one process per machine.
Form a cluster in one of two ways:

  one founder, the others join it (any member's canoe API URL, or any
  member's gossip address host:port):
    demo node -id 1 -bind 10.0.0.1 -bootstrap
    demo node -id 2 -bind 10.0.0.2 -join http://10.0.0.1:7001
    demo node -id 3 -bind 10.0.0.3 -join 10.0.0.1:7946

  N nodes found it together once they see each other by gossip:
    demo node -id 1 -bind 10.0.0.1 -expect 3 -join 10.0.0.2:7946,10.0.0.3:7946
    (the same on 10.0.0.2 and 10.0.0.3, each listing the others)

A node restarted on the same -data comes back as the member it was; -bootstrap
and -expect are then ignored and -join only helps it find the gossip pool.`

func parseNodeFlags(args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) (nodeOptions, error) {
	var o nodeOptions
	fs := flag.NewFlagSet("demo node", flag.ContinueOnError)
	fs.Uint64Var(&o.ID, "id", 0, "node `ID`, nonzero and unique in the cluster; 0 means the ID recorded in -data, else a random one")
	fs.Uint64Var(&o.ClusterID, "cluster-id", 0, "cluster `ID`; nodes of different clusters refuse each other; 0 means canoe's default")
	fs.StringVar(&o.Bind, "bind", "127.0.0.1", "IP `address` the raft and canoe API listeners bind; 0.0.0.0 for all interfaces")
	fs.StringVar(&o.Advertise, "advertise", "", "`host` other nodes use to reach this one; empty means -bind if it is a specific address, else this machine's first private IPv4")
	fs.IntVar(&o.RaftPort, "raft-port", 7000, "TCP `port` of the raft transport")
	fs.IntVar(&o.ConfigPort, "config-port", 7001, "TCP `port` of canoe's HTTP API (joins, forwarding, /status)")
	fs.IntVar(&o.GossipPort, "gossip-port", 7946, "TCP and UDP `port` of gossip (memberlist); 0 picks a free one")
	fs.StringVar(&o.HTTP, "http", "", "`host:port` of the demo's key-value API and dashboard; empty means port 8080 on -bind")
	fs.StringVar(&o.DataDir, "data", "canoe-data", "`directory` of the raft log, snapshots and the node's identity")
	fs.BoolVar(&o.Bootstrap, "bootstrap", false, "found a new cluster with this node as its first member (one node only)")
	fs.StringVar(&o.Join, "join", "", "comma-separated `members` to join through: canoe API URLs (http://10.0.0.1:7001) or gossip addresses (10.0.0.1:7946)")
	fs.IntVar(&o.Expect, "expect", 0, "found a new cluster together once `N` nodes (all started with -expect N) see each other by gossip; -join lists gossip addresses")
	fs.DurationVar(&o.DeadNode, "dead-node-timeout", 0, "remove a member whose gossip has failed this `long` (while a quorum stays); 0 never removes")
	fs.StringVar(&o.Secret, "secret", "", "shared cluster `secret` of 16, 24 or 32 bytes that signs every canoe API call; empty means none (prefer CANOE_SECRET)")
	fs.BoolVar(&o.Verbose, "v", false, "debug logging (canoe and raft internals)")
	if err := parseFlags(fs, args, nodeUsage, stderr, lookupEnv); err != nil {
		return o, err
	}
	return o, o.validate()
}

// validate reports every problem with the flags at once.
func (o *nodeOptions) validate() error {
	var errs []error
	if o.Bootstrap && o.Join != "" {
		errs = append(errs, errors.New("-bootstrap founds a new cluster and -join joins an existing one: give one of them"))
	}
	if o.Bootstrap && o.Expect != 0 {
		errs = append(errs, errors.New("-bootstrap founds the cluster alone and -expect founds it with others: give one of them"))
	}
	if o.Expect < 0 {
		errs = append(errs, fmt.Errorf("-expect %d is negative", o.Expect))
	}
	if o.DeadNode < 0 {
		errs = append(errs, fmt.Errorf("-dead-node-timeout %v is negative", o.DeadNode))
	}
	for _, p := range []struct {
		name string
		port int
	}{{"-raft-port", o.RaftPort}, {"-config-port", o.ConfigPort}, {"-gossip-port", o.GossipPort}} {
		if !portOK(p.port) {
			errs = append(errs, fmt.Errorf("%s %d is not a TCP port (0-65535)", p.name, p.port))
		}
	}
	if net.ParseIP(o.Bind) == nil {
		errs = append(errs, fmt.Errorf("-bind %q is not an IP address", o.Bind))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("-data is empty: a node needs a directory to restart from"))
	}
	if o.HTTP != "" {
		if _, _, err := net.SplitHostPort(o.HTTP); err != nil {
			errs = append(errs, fmt.Errorf("-http %q is not host:port: %v", o.HTTP, err))
		}
	}
	for _, u := range o.joinURLs() {
		if err := canoe.CheckBootstrapPeer(u); err != nil {
			errs = append(errs, fmt.Errorf("-join: %v", err))
		} else if o.Expect > 0 && strings.Contains(u, "://") {
			errs = append(errs, fmt.Errorf("-join %s: -expect needs gossip addresses (host:port), not API URLs", u))
		}
	}
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

// joinURLs splits -join: API URLs and gossip addresses, as canoe's
// BootstrapPeers takes them.
func (o *nodeOptions) joinURLs() []string {
	var out []string
	for _, u := range strings.Split(o.Join, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, strings.TrimSuffix(u, "/"))
		}
	}
	return out
}

func (o *nodeOptions) httpAddr() string {
	if o.HTTP != "" {
		return o.HTTP
	}
	if ip := net.ParseIP(o.Bind); ip != nil && ip.IsUnspecified() {
		return ":8080"
	}
	return net.JoinHostPort(o.Bind, "8080")
}

// runNode runs one node until ctx ends.
func runNode(ctx context.Context, o nodeOptions, stdout, stderr io.Writer) error {
	logger := newLogger(stderr, o.Verbose)
	kv := newKVStore()
	cfg := canoe.NodeConfig{
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
		DataDir:           o.DataDir,
		Logger:            canoeLogger(logger, o.Verbose),
		BindAddr:          o.Bind,
		AdvertiseAddr:     o.Advertise,
		Timing:            canoe.LANProfile(),
		ClusterSecret:     []byte(o.Secret),
	}
	node, err := canoe.NewNode(&cfg)
	if err != nil {
		return err
	}

	// Listen first, so a busy port fails before the node joins anything.
	ln, err := net.Listen("tcp", o.httpAddr())
	if err != nil {
		return fmt.Errorf("demo HTTP server: %w", err)
	}
	kvURL := "http://" + ln.Addr().String()
	if host, port, _ := net.SplitHostPort(ln.Addr().String()); net.ParseIP(host).IsUnspecified() {
		kvURL = "http://" + net.JoinHostPort(advertisedHost(o), port)
	}
	events := newEventLog(logger.Named("cluster"))
	clusterID := cfg.ClusterID
	if clusterID == 0 {
		clusterID = canoe.DefaultClusterID
	}
	client := httpconfig.NewClient(nil, cfg.ClusterSecret, clusterID)
	defer client.Close()
	srv := &http.Server{
		Handler: (&server{
			backend: func() (*canoe.Node, *kvStore) { return node, kv },
			cluster: &remoteCluster{node: node, client: client, scheme: "http", kvURL: kvURL, events: events},
			logger:  logger.Named("http"),
		}).handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
		<-serveErr
	}()

	w := events.watch(node)
	defer w.stop()
	switch {
	case o.Expect > 0:
		logger.Info("waiting for the other nodes by gossip before founding the cluster (-expect)", "expect", o.Expect)
	case !o.Bootstrap && o.Join == "":
		logger.Info("neither -bootstrap, -join nor -expect: restarting from -data, or waiting for a member to add this node (POST /peers)")
	}
	started := make(chan error, 1)
	go func() { started <- node.Start() }()
	select {
	case err := <-started:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		// Start is joining; Stop makes it give up.
		_ = node.Stop()
		<-started
		return nil
	}
	defer func() {
		if err := node.Stop(); err != nil {
			logger.Error("stop", "error", err)
		}
	}()

	self := node.Self()
	fmt.Fprintf(stdout, `
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

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return nil
	case err := <-serveErr:
		serveErr <- err // for the deferred shutdown
		return fmt.Errorf("demo HTTP server: %w", err)
	}
}

// advertisedHost is the host shown in URLs when listening on all interfaces.
func advertisedHost(o nodeOptions) string {
	if o.Advertise != "" {
		return o.Advertise
	}
	return "127.0.0.1"
}
