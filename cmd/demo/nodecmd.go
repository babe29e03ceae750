package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/canoe-raft/canoe/canoe"
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
	Leave      bool // -leave-on-exit
	NonVoter   bool // -nonvoter
	Verbose    bool
	Backups    backupOptions // -backup-dir, -backup-every, -backup-keep
}

const nodeUsage = `Usage: demo node [flags]

Runs one canoe node of a replicated key-value store: one process per machine.
Form a cluster in one of two ways:

  one founder, the others join through its canoe API (or a gossip seed:
  -join 10.0.0.1:7946):
    demo node -id 1 -bind 10.0.0.1 -data /var/lib/kv -bootstrap
    demo node -id 2 -bind 10.0.0.2 -data /var/lib/kv -join http://10.0.0.1:7001
    demo node -id 3 -bind 10.0.0.3 -data /var/lib/kv -join http://10.0.0.1:7001

  no designated first node: start all three with the same seeds, each with
  its own -id and -bind:
    demo node -id 1 -bind 10.0.0.1 -data /var/lib/kv -expect 3 -join 10.0.0.1:7946,10.0.0.2:7946,10.0.0.3:7946

  a read replica joins like any node (by API or gossip seed); it gets every
  write and serves reads, also ?consistent=true ones, but never votes, so it
  adds reads without slowing writes:
    demo node -id 4 -bind 10.0.0.4 -data /var/lib/kv -join http://10.0.0.1:7001 -nonvoter
  make it a voter later: curl -X POST -d '{"id":4}' http://10.0.0.1:7001/peers/promote

A node restarted on the same -data comes back as the member it was; -bootstrap
and -expect are then ignored and -join only helps it find the gossip pool.
Ctrl-C (or SIGTERM) stops the node and it stays a member, counted in the
quorum. To take a node out for good, stop it once with -leave-on-exit: it
leaves the cluster and deletes its raft data from -data. A dead machine's
node is removed from any member: curl -X DELETE -d '{"id":3}' http://10.0.0.1:7001/peers

Automatic backups: with -backup-dir, the leader writes a backup of the store
into that directory at every -backup-every (each node checks at each tick,
and followers skip it), named canoe-backup-TIME-INDEX.bak, and deletes the
oldest beyond -backup-keep. Give every node the same flags: whichever leads
writes. Restore one with: canoe snapshot restore FILE`

func parseNodeFlags(args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) (nodeOptions, error) {
	var o nodeOptions
	fs := flag.NewFlagSet("demo node", flag.ContinueOnError)
	fs.Uint64Var(&o.ID, "id", 0, "node `ID`, nonzero and unique in the cluster; 0 means the ID recorded in -data, else a random one")
	fs.Uint64Var(&o.ClusterID, "cluster-id", 0, "cluster `ID`; nodes of different clusters refuse each other; 0 means canoe's default")
	fs.StringVar(&o.Bind, "bind", "127.0.0.1", "IP `address` the raft and canoe API listeners bind; 0.0.0.0 for all interfaces")
	fs.StringVar(&o.Advertise, "advertise", "", "`host` other nodes use to reach this one; empty means -bind if it is a specific address, else this machine's first private IPv4")
	fs.IntVar(&o.RaftPort, "raft-port", 7000, "TCP `port` of the raft transport")
	fs.IntVar(&o.ConfigPort, "config-port", 7001, "TCP `port` of canoe's HTTP API (joins, membership, /status, backups)")
	fs.IntVar(&o.GossipPort, "gossip-port", 7946, "TCP and UDP `port` of gossip (memberlist); 0 picks a free one")
	fs.StringVar(&o.HTTP, "http", "", "`host:port` of the demo's key-value API and dashboard; empty means port 8080 on -bind")
	fs.StringVar(&o.DataDir, "data", "canoe-data", "`directory` of the raft log, snapshots and the node's identity")
	fs.BoolVar(&o.Bootstrap, "bootstrap", false, "found a new cluster with this node as its first member (one node only)")
	fs.StringVar(&o.Join, "join", "", "comma-separated `members` to join through: canoe API URLs (http://10.0.0.1:7001) or gossip addresses (10.0.0.1:7946)")
	fs.IntVar(&o.Expect, "expect", 0, "found a new cluster together once `N` nodes (all started with -expect N) see each other by gossip; -join lists gossip addresses")
	fs.DurationVar(&o.DeadNode, "dead-node-timeout", 0, "remove a member whose gossip has failed this `long` (while a quorum stays); 0 never removes")
	fs.StringVar(&o.Secret, "secret", "", "shared cluster `secret` of 16, 24 or 32 bytes that signs every canoe API call; empty means none (prefer CANOE_SECRET)")
	fs.BoolVar(&o.NonVoter, "nonvoter", false, "join as a read replica: get every write and serve reads, but never vote or lead (POST /peers/promote makes it a voter); with -expect it waits to be added instead of counting")
	fs.BoolVar(&o.Leave, "leave-on-exit", false, "on Ctrl-C or SIGTERM leave the cluster for good and delete the raft data in -data, instead of stopping as a member that may come back")
	fs.StringVar(&o.Backups.Dir, "backup-dir", "", "`directory` for automatic backups: at every -backup-every the leader writes one there; empty means none")
	fs.DurationVar(&o.Backups.Every, "backup-every", time.Hour, "how `often` the leader writes a backup into -backup-dir")
	fs.IntVar(&o.Backups.Keep, "backup-keep", 24, "the `number` of backups kept in -backup-dir (the oldest go); 0 keeps them all")
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
	if o.Bootstrap && o.NonVoter {
		errs = append(errs, errors.New("-bootstrap founds a cluster with this node as its only voter and -nonvoter keeps it from voting: give one of them"))
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
	if err := o.samePorts(); err != nil {
		errs = append(errs, err)
	}
	if net.ParseIP(o.Bind) == nil {
		errs = append(errs, fmt.Errorf("-bind %q is not an IP address", o.Bind))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("-data is empty: a node needs a directory to restart from"))
	}
	if o.Backups.Every <= 0 {
		errs = append(errs, fmt.Errorf("-backup-every %v must be positive", o.Backups.Every))
	}
	if o.Backups.Keep < 0 {
		errs = append(errs, fmt.Errorf("-backup-keep %d is negative (0 keeps every backup)", o.Backups.Keep))
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

// samePorts reports two listeners given the same TCP port.
func (o *nodeOptions) samePorts() error {
	named := []struct {
		name string
		port int
	}{{"-raft-port", o.RaftPort}, {"-config-port", o.ConfigPort}, {"-gossip-port", o.GossipPort}}
	if _, p, err := net.SplitHostPort(o.httpAddr()); err == nil {
		if port, err := strconv.Atoi(p); err == nil {
			named = append(named, struct {
				name string
				port int
			}{"-http", port})
		}
	}
	for i, a := range named {
		for _, b := range named[i+1:] {
			if a.port != 0 && a.port == b.port {
				return fmt.Errorf("%s and %s are both port %d: give each its own", a.name, b.name, a.port)
			}
		}
	}
	return nil
}
