package canoe

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/discovery"
	"github.com/canoe-raft/canoe/httpconfig"
	"github.com/canoe-raft/canoe/snapshotpolicy"
)

// DefaultClusterID is the cluster ID used when NodeConfig.ClusterID is 0 (the
// original canoe's default).
const DefaultClusterID uint64 = 0x100

// NodeConfig configures a Node. The zero value of every field but FSM is
// usable; NewNode works on a defaulted copy and never modifies the caller's.
type NodeConfig struct {
	// ID identifies the node in the cluster. 0 means: the ID persisted in
	// DataDir if there is one, else a new random one (persisted at Start).
	// A nonzero ID that differs from the one in DataDir is an error.
	ID uint64

	// ClusterID names the cluster; nodes of different clusters refuse each
	// other. 0 means DefaultClusterID.
	ClusterID uint64

	// FSM is the replicated state machine. Required.
	FSM FSM

	// RaftPort is the TCP port of the raft transport. 0 picks a free port
	// (and a restart from DataDir reuses the port picked the first time).
	RaftPort int

	// ConfigurationPort is the TCP port of the HTTP API. 0 picks a free port
	// the same way as RaftPort.
	ConfigurationPort int

	// BootstrapPeers are members to join through: http(s)://host:port URLs
	// of their HTTP API (the node asks to be added), or bare host:port gossip
	// addresses (the node joins the gossip pool and the leader adds it).
	// Nothing else is accepted (no path, query, fragment or user info; a
	// port in 1-65535); CheckBootstrapPeer checks one entry.
	// With state in DataDir no join is needed: a restarted member comes back,
	// and gossip seeds only help it find the pool again.
	BootstrapPeers []string

	// BootstrapNode makes this node found a new single-node cluster when it
	// has no state yet. Exactly one node of a new cluster sets it; the others
	// join through BootstrapPeers or are added with AddPeer.
	BootstrapNode bool

	// DataDir holds the raft log, snapshots and the node's identity. ""
	// keeps everything in memory: Stop and Start on the same Node keep the
	// state, a new process does not.
	DataDir string

	// InitBackoff paces retries while joining a cluster. nil means
	// DefaultInitializationBackoffArgs, and so does each zero field.
	InitBackoff *InitializationBackoffArgs

	// SnapshotConfig sets when snapshots are taken and how many are kept.
	// nil means DefaultSnapshotConfig.
	SnapshotConfig *SnapshotConfig

	// Logger receives canoe's, raft's and memberlist's logs. nil means
	// DefaultLogger.
	Logger Logger

	// BindAddr is the host every listener binds. "" means all interfaces.
	BindAddr string

	// AdvertiseAddr is the host other nodes use to reach this one. "" means
	// BindAddr when it is a specific address, else the first private IPv4
	// address of this machine, else 127.0.0.1.
	AdvertiseAddr string

	// GossipPort is the memberlist TCP and UDP port. 0 picks a free port
	// (and a restart from DataDir reuses it).
	GossipPort int

	// BootstrapExpect, when > 0 and DataDir holds no state, makes the node
	// wait until that many nodes of this cluster with the same setting see
	// each other by gossip (BootstrapPeers gives the seeds), and then all
	// found the cluster together (Consul's bootstrap_expect). If one of them
	// already belongs to a cluster, the node waits to be added instead.
	BootstrapExpect int

	// NonVoter makes the node a read replica: the cluster adds it (by URL
	// or by gossip, see BootstrapPeers) as a non-voter and keeps it one. It
	// gets every entry and serves ReadBarrier and local reads, but never
	// counts toward quorum, never becomes leader and is never promoted on
	// its own; Promote makes it a voter. It takes effect when the cluster
	// adds the node: a restart keeps whatever the cluster records for it
	// (a read replica stays one, and a node that is a voter in DataDir
	// stays a voter whatever NonVoter says). With BootstrapExpect the node
	// neither counts toward the expectation nor bootstraps: like a joining
	// node it waits, and the leader adds it by gossip once the cluster has
	// formed. It cannot be combined with BootstrapNode or RestoreFrom.
	NonVoter bool

	// DeadNodeTimeout, when > 0, makes the leader remove a member whose
	// gossip has failed for that long, as long as the live voters left are
	// a quorum. 0 (the default) never removes failed members: a crashed node
	// that comes back rejoins as it was.
	DeadNodeTimeout time.Duration

	// Timing holds raft's timeouts. The zero value means LANProfile().
	Timing Timing

	// ProposeTimeout bounds Propose (not ProposeContext). 0 means 10s.
	ProposeTimeout time.Duration

	// LogStore selects the on-disk format of the raft log in DataDir.
	// LogStoreAuto (the zero value) keeps the format DataDir already holds
	// and creates DefaultLogStore's in a new one.
	LogStore LogStore

	// ClusterSecret, when set, protects the cluster: keys derived from it
	// and ClusterID (HKDF-SHA256, one per use) authenticate every raft
	// connection (and seal it when TLSConfig is not set), encrypt gossip
	// and sign every HTTP API call (nodes of the cluster sign their own
	// calls; other programs use httpconfig.Client or httpconfig.NewSigner).
	// GET /metrics and GET /healthz also accept the read-only
	// httpconfig.MetricsToken. The secret itself never goes on the wire. It
	// must be 16, 24 or 32 bytes, the same on every node.
	ClusterSecret []byte

	// TLSConfig, when set, secures the raft transport and the HTTP API with
	// TLS. It serves as both server and client configuration: give it
	// Certificates, RootCAs (and ClientCAs with ClientAuth for mutual TLS);
	// certificates must name the advertised host (an IP SAN for an IP).
	TLSConfig *tls.Config

	// RestoreFrom, when set, is the path of a backup (written by
	// Node.Backup or GET /snapshot) to found a new cluster from: at its
	// first Start, with no state in DataDir, the node checks the backup
	// (format, checksum, and that it belongs to ClusterID) and founds a
	// one-node cluster whose FSM holds the backup's state before Start
	// returns; nothing is written if the backup is refused. The backup's
	// membership is not used: the new cluster's members join as usual.
	// It needs BootstrapNode or BootstrapExpect. With BootstrapExpect the
	// node founds the cluster at once, as a BootstrapNode does, and the
	// other BootstrapExpect nodes, seeing a member with state, wait for its
	// leader to add them: give RestoreFrom to one node only. A restart on a
	// DataDir that holds state ignores it.
	RestoreFrom string

	// MaxBackupBytes is the largest backup, in bytes, that RestoreBackup,
	// POST /snapshot and RestoreFrom accept; a larger one is refused
	// before anything changes. RestoreBackup stages the backup in DataDir
	// (the system's temporary directory when DataDir is "") before it
	// applies it, so this also bounds the disk that takes. 0 means
	// DefaultMaxBackupBytes (16 GiB).
	MaxBackupBytes int64

	// transport, when set (by tests), replaces the TCP raft transport; the
	// HTTP API is then not started and forwarder carries forwarded calls.
	transport raft.Transport
	forwarder forwarder
}

// LogStore is an on-disk format of the raft log.
type LogStore int

const (
	// LogStoreAuto uses the store DataDir holds, or DefaultLogStore when it
	// holds none yet.
	LogStoreAuto LogStore = iota
	// LogStoreBolt is hashicorp/raft-boltdb/v2: one B+tree file, raft.db,
	// two fsyncs per append.
	LogStoreBolt
	// LogStoreWAL is hashicorp/raft-wal: segment files under wal/, one
	// fsync per append.
	LogStoreWAL
)

// DefaultLogStore is the format a new DataDir gets under LogStoreAuto.
const DefaultLogStore = LogStoreWAL

func (s LogStore) String() string {
	switch s {
	case LogStoreAuto:
		return "auto"
	case LogStoreBolt:
		return "bolt"
	case LogStoreWAL:
		return "wal"
	}
	return fmt.Sprintf("LogStore(%d)", int(s))
}

// SnapshotConfig says when canoe snapshots the FSM and compacts the log.
type SnapshotConfig struct {
	// Interval is how often to check whether a snapshot is due (raft staggers
	// the checks over [Interval, 2*Interval]). Interval < 0 disables
	// automatic snapshots; 0 means the default, 2 minutes.
	Interval time.Duration

	// MinCommittedLogs is the least number of entries committed since the
	// last snapshot for a check to take a new one. It is also how many
	// entries are kept after a snapshot for slow followers. 0 means 8192.
	MinCommittedLogs uint64

	// MaxRetainedSnapshots is how many snapshot files are kept. 0 means 2.
	MaxRetainedSnapshots uint
}

// DefaultSnapshotConfig is used when NodeConfig.SnapshotConfig is nil:
// snapshots are on, so the log cannot grow forever (the original canoe had
// them off by default).
var DefaultSnapshotConfig = &SnapshotConfig{
	Interval:             2 * time.Minute,
	MinCommittedLogs:     8192,
	MaxRetainedSnapshots: 2,
}

func (c *SnapshotConfig) policy() snapshotpolicy.Config {
	return snapshotpolicy.Config{
		Interval:             c.Interval,
		MinCommittedLogs:     c.MinCommittedLogs,
		MaxRetainedSnapshots: int(min(c.MaxRetainedSnapshots, 1<<20)),
	}.WithDefaults()
}

// InitializationBackoffArgs paces the attempts to join a cluster: the first
// retry waits InitialInterval, each next one Multiplier times longer (at most
// MaxInterval), each randomized by +-RandomizationFactor, and joining fails
// once MaxElapsedTime has passed. A join that cannot succeed (a wrong
// ClusterSecret, another ClusterID, a server that is not canoe) fails at
// once instead.
//
// Every zero field takes DefaultInitializationBackoffArgs' value, except a
// zero MaxInterval, which is at least InitialInterval. So a Multiplier of 0
// means the default 2 (use 1 for a constant interval), and a
// RandomizationFactor of 0 means the default 0.5 (use a tiny one such as
// 1e-9 for practically no randomization).
type InitializationBackoffArgs struct {
	InitialInterval     time.Duration // first wait; must not exceed MaxInterval
	Multiplier          float64       // growth of each next wait; at least 1
	MaxInterval         time.Duration // longest wait
	MaxElapsedTime      time.Duration // give up joining after this long
	RandomizationFactor float64       // each wait is randomized by +-this fraction, in [0, 1]
}

// withDefaults returns b (nil: none) with every zero field defaulted.
func (b *InitializationBackoffArgs) withDefaults() InitializationBackoffArgs {
	d := *DefaultInitializationBackoffArgs
	if b == nil {
		return d
	}
	out := *b
	if out.InitialInterval == 0 {
		out.InitialInterval = d.InitialInterval
	}
	if out.Multiplier == 0 {
		out.Multiplier = d.Multiplier
	}
	if out.MaxInterval == 0 {
		out.MaxInterval = max(d.MaxInterval, out.InitialInterval)
	}
	if out.MaxElapsedTime == 0 {
		out.MaxElapsedTime = d.MaxElapsedTime
	}
	if out.RandomizationFactor == 0 {
		out.RandomizationFactor = d.RandomizationFactor
	}
	return out
}

// problems lists what is wrong with defaulted backoff arguments.
func (b InitializationBackoffArgs) problems() []error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"InitialInterval", b.InitialInterval}, {"MaxInterval", b.MaxInterval}, {"MaxElapsedTime", b.MaxElapsedTime}} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("InitBackoff.%s %v is negative", f.name, f.d))
		}
	}
	if b.InitialInterval > 0 && b.MaxInterval >= 0 && b.MaxInterval < b.InitialInterval {
		errs = append(errs, fmt.Errorf("InitBackoff.MaxInterval %v is below InitialInterval %v", b.MaxInterval, b.InitialInterval))
	}
	if b.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("InitBackoff.Multiplier %v must be at least 1", b.Multiplier))
	}
	if b.RandomizationFactor < 0 || b.RandomizationFactor > 1 {
		errs = append(errs, fmt.Errorf("InitBackoff.RandomizationFactor %v must be in [0, 1]", b.RandomizationFactor))
	}
	return errs
}

// DefaultInitializationBackoffArgs is used when NodeConfig.InitBackoff is
// nil, and for each of its zero fields (the original canoe's values).
var DefaultInitializationBackoffArgs = &InitializationBackoffArgs{
	InitialInterval:     500 * time.Millisecond,
	RandomizationFactor: .5,
	Multiplier:          2,
	MaxInterval:         5 * time.Second,
	MaxElapsedTime:      2 * time.Minute,
}

// Timing holds raft's timeouts. Fields left zero take LANProfile's value.
type Timing struct {
	// HeartbeatTimeout is how long a follower waits without hearing from a
	// leader before it campaigns.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes before it
	// campaigns again. At least HeartbeatTimeout.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without hearing
	// from a quorum. At most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how often an idle leader sends an empty
	// AppendEntries, which tells followers the commit index. (A follower
	// waiting to apply its own forwarded proposal, or for a ReadBarrier, is
	// told at once instead.)
	CommitTimeout time.Duration

	// Gossip picks memberlist's timing: GossipLAN (the zero value: a
	// crashed node is noticed in about 5 s) or GossipLocal (about a second;
	// too tight for real networks).
	Gossip GossipTiming
}

// GossipTiming is a set of memberlist timeouts (Timing.Gossip).
type GossipTiming int

const (
	// GossipLAN is memberlist's LAN configuration.
	GossipLAN GossipTiming = iota
	// GossipLocal is for nodes on one machine: faster probes and gossip.
	GossipLocal
)

func (g GossipTiming) profile() discovery.Profile {
	if g == GossipLocal {
		return discovery.Local
	}
	return discovery.LAN
}

// LANProfile returns timeouts for a local network: a crashed leader is
// replaced in about 0.7 s (raft's own defaults take 1.5-2 s; the README's
// Performance section has the measurement), and gossip uses memberlist's
// LAN settings (a crash is noticed in about 5 s). The leader sends
// heartbeats every 30 ms, so only a pause of 300 ms (a stalled process, a
// saturated link) makes followers campaign.
func LANProfile() Timing {
	return Timing{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      2 * time.Millisecond,
	}
}

// LocalProfile returns timeouts for nodes on one machine (tests, demos): a
// crashed leader is replaced in a few hundred milliseconds, and gossip
// notices a crash in about a second.
func LocalProfile() Timing {
	return Timing{
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      time.Millisecond,
		Gossip:             GossipLocal,
	}
}

func (t Timing) withDefaults() Timing {
	d := LANProfile()
	if t.HeartbeatTimeout == 0 {
		t.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if t.ElectionTimeout == 0 {
		t.ElectionTimeout = max(d.ElectionTimeout, t.HeartbeatTimeout)
	}
	if t.LeaderLeaseTimeout == 0 {
		t.LeaderLeaseTimeout = min(d.LeaderLeaseTimeout, t.HeartbeatTimeout)
	}
	if t.CommitTimeout == 0 {
		t.CommitTimeout = d.CommitTimeout
	}
	return t
}

// Validate reports every problem with the configuration at once. It does not
// modify c.
func (c *NodeConfig) Validate() error {
	if c == nil {
		return fmt.Errorf("%w: nil NodeConfig", ErrInvalidConfig)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.FSM == nil {
		bad("FSM is nil: canoe needs a state machine to replicate")
	}
	for _, p := range []struct {
		name string
		port int
	}{{"RaftPort", c.RaftPort}, {"ConfigurationPort", c.ConfigurationPort}, {"GossipPort", c.GossipPort}} {
		if p.port < 0 || p.port > 65535 {
			bad("%s %d is not a TCP port (0-65535)", p.name, p.port)
		}
	}
	if c.RaftPort != 0 && (c.RaftPort == c.ConfigurationPort || c.RaftPort == c.GossipPort) ||
		c.ConfigurationPort != 0 && c.ConfigurationPort == c.GossipPort {
		bad("RaftPort, ConfigurationPort and GossipPort must differ (%d, %d, %d)", c.RaftPort, c.ConfigurationPort, c.GossipPort)
	}
	if c.BootstrapNode && len(c.BootstrapPeers) > 0 {
		bad("BootstrapNode founds a new cluster and BootstrapPeers joins an existing one: set one of them")
	}
	if c.BootstrapNode && c.BootstrapExpect > 0 {
		bad("BootstrapNode and BootstrapExpect both found a cluster: set one of them")
	}
	if c.BootstrapNode && c.NonVoter {
		bad("BootstrapNode founds a cluster with this node as its only voter, and NonVoter keeps it a non-voter: set one of them")
	}
	if c.RestoreFrom != "" && c.NonVoter {
		bad("RestoreFrom founds a cluster with this node as its only voter, and NonVoter keeps it a non-voter: set one of them")
	}
	if c.RestoreFrom != "" && !c.BootstrapNode && c.BootstrapExpect <= 0 {
		bad("RestoreFrom founds a new cluster from a backup: set BootstrapNode or BootstrapExpect with it")
	}
	if c.MaxBackupBytes < 0 {
		bad("MaxBackupBytes %d is negative", c.MaxBackupBytes)
	}
	if c.BootstrapExpect < 0 {
		bad("BootstrapExpect %d is negative", c.BootstrapExpect)
	}
	if c.DeadNodeTimeout < 0 {
		bad("DeadNodeTimeout %v is negative", c.DeadNodeTimeout)
	}
	if c.LogStore < LogStoreAuto || c.LogStore > LogStoreWAL {
		bad("LogStore %d is not LogStoreAuto, LogStoreBolt or LogStoreWAL", int(c.LogStore))
	}
	for _, s := range c.BootstrapPeers {
		p, err := parseBootstrapPeer(s)
		if err == nil && p.url != nil && c.BootstrapExpect > 0 {
			err = fmt.Errorf("BootstrapPeers entry %q is a URL, but BootstrapExpect needs gossip addresses (host:port)", s)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.BindAddr != "" && net.ParseIP(c.BindAddr) == nil {
		bad("BindAddr %q is not an IP address", c.BindAddr)
	}
	if strings.ContainsAny(c.AdvertiseAddr, ":/ ") && net.ParseIP(c.AdvertiseAddr) == nil {
		bad("AdvertiseAddr %q is not a host name or IP address (no port)", c.AdvertiseAddr)
	}
	if s := c.SnapshotConfig; s != nil {
		if err := s.policy().Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.InitBackoff.withDefaults().problems()...)
	t := c.Timing.withDefaults()
	if t.HeartbeatTimeout < 5*time.Millisecond || t.ElectionTimeout < 5*time.Millisecond || t.LeaderLeaseTimeout < 5*time.Millisecond {
		bad("Timing: heartbeat, election and leader lease timeouts must be at least 5ms")
	}
	if t.CommitTimeout < time.Millisecond {
		bad("Timing.CommitTimeout %v must be at least 1ms", t.CommitTimeout)
	}
	if t.Gossip != GossipLAN && t.Gossip != GossipLocal {
		bad("Timing.Gossip %d is neither GossipLAN nor GossipLocal", int(t.Gossip))
	}
	if t.LeaderLeaseTimeout > t.HeartbeatTimeout {
		bad("Timing.LeaderLeaseTimeout %v exceeds HeartbeatTimeout %v", t.LeaderLeaseTimeout, t.HeartbeatTimeout)
	}
	if t.ElectionTimeout < t.HeartbeatTimeout {
		bad("Timing.ElectionTimeout %v is below HeartbeatTimeout %v", t.ElectionTimeout, t.HeartbeatTimeout)
	}
	switch len(c.ClusterSecret) {
	case 0, 16, 24, 32:
	default:
		bad("ClusterSecret is %d bytes; it must be 16, 24 or 32", len(c.ClusterSecret))
	}
	if c.ProposeTimeout < 0 {
		bad("ProposeTimeout %v is negative", c.ProposeTimeout)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// withDefaults returns a copy of c with every zero field defaulted.
func (c *NodeConfig) withDefaults() NodeConfig {
	d := *c
	d.BootstrapPeers = append([]string(nil), c.BootstrapPeers...)
	if d.ClusterID == 0 {
		d.ClusterID = DefaultClusterID
	}
	b := c.InitBackoff.withDefaults()
	d.InitBackoff = &b
	if d.SnapshotConfig == nil {
		d.SnapshotConfig = DefaultSnapshotConfig
	}
	s := *d.SnapshotConfig
	d.SnapshotConfig = &s
	if d.Logger == nil {
		d.Logger = DefaultLogger
	}
	d.Timing = d.Timing.withDefaults()
	if d.ProposeTimeout == 0 {
		d.ProposeTimeout = 10 * time.Second
	}
	if d.MaxBackupBytes == 0 {
		d.MaxBackupBytes = DefaultMaxBackupBytes
	}
	return d
}

// bootstrapPeer is one BootstrapPeers entry: the base URL of a member's
// HTTP API, or a member's gossip address.
type bootstrapPeer struct {
	url    *url.URL // http(s)://host:port with an empty path; nil for a gossip address
	gossip string   // host:port; "" for a URL
}

// bootstrapPeerForms names the accepted forms in errors.
const bootstrapPeerForms = "want http(s)://host:port (a member's API) or host:port (a member's gossip address)"

// parseBootstrapPeer parses a BootstrapPeers entry. It is the only parser
// of BootstrapPeers: Validate and the joins use it.
func parseBootstrapPeer(s string) (bootstrapPeer, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("BootstrapPeers entry %q %s; %s", s, fmt.Sprintf(format, args...), bootstrapPeerForms)
	}
	if s == "" {
		return bootstrapPeer{}, bad("is empty")
	}
	if strings.Contains(s, "://") {
		u, err := httpconfig.ParseBaseURL(s)
		if be := (*httpconfig.BaseURLError)(nil); errors.As(err, &be) {
			return bootstrapPeer{}, bad("is not a valid URL: %s", be.Reason)
		} else if err != nil {
			return bootstrapPeer{}, bad("is not a valid URL: %v", err)
		}
		return bootstrapPeer{url: u}, nil
	}
	// Whatever has a path, query, fragment or user info but no "://" is a
	// mistyped URL ("http//h:7001", "http:/h:7001"), not a gossip address.
	host, port, err := net.SplitHostPort(s)
	if err != nil || strings.ContainsAny(s, "/?#@") {
		return bootstrapPeer{}, bad("is neither an http(s):// URL nor a host:port gossip address")
	}
	if host == "" {
		return bootstrapPeer{}, bad("has no host")
	}
	if !validHost(host) {
		return bootstrapPeer{}, bad("has a host that is neither an IP address nor a host name")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bootstrapPeer{}, bad("has a bad port %q (want 1-65535)", port)
	}
	return bootstrapPeer{gossip: s}, nil
}

// CheckBootstrapPeer reports what is wrong with s as a BootstrapPeers
// entry, with the accepted forms: http(s)://host:port (a member's HTTP
// API) or host:port (a member's gossip address). NewNode checks every entry
// this way.
func CheckBootstrapPeer(s string) error {
	_, err := parseBootstrapPeer(s)
	return err
}

// validHost reports whether h is an IP address (IPv6 possibly with a zone)
// or a host name of letters, digits, '-', '_' and '.'.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// bootstrapURLs returns the API base URLs among BootstrapPeers, without a
// trailing slash.
func (c *NodeConfig) bootstrapURLs() []string {
	var out []string
	for _, s := range c.BootstrapPeers {
		if p, err := parseBootstrapPeer(s); err == nil && p.url != nil {
			out = append(out, p.url.String())
		}
	}
	return out
}

// bootstrapGossip returns the gossip addresses among BootstrapPeers.
func (c *NodeConfig) bootstrapGossip() []string {
	var out []string
	for _, s := range c.BootstrapPeers {
		if p, err := parseBootstrapPeer(s); err == nil && p.gossip != "" {
			out = append(out, p.gossip)
		}
	}
	return out
}
