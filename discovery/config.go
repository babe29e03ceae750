package discovery

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Profile selects memberlist's timing values.
type Profile int

const (
	// LAN is memberlist.DefaultLANConfig unchanged: probe every 1 s with a
	// 500 ms probe timeout and 3 indirect checks, suspicion multiplier 4
	// (a dead node of a small cluster is declared failed roughly 4-6 s
	// after it stops answering), gossip every 200 ms to 3 nodes,
	// retransmit multiplier 4, push/pull every 30 s, TCP timeout 10 s,
	// gossip to the dead for 30 s.
	LAN Profile = iota

	// Local is for tests and loopback clusters: memberlist.DefaultLocalConfig
	// (TCP timeout 1 s, 1 indirect check, retransmit multiplier 2, suspicion
	// multiplier 3) further tightened to: probe every 200 ms with a 100 ms
	// timeout, gossip every 50 ms, suspicion max-timeout multiplier 2,
	// push/pull every 5 s, gossip to the dead for 5 s. A crashed node of a
	// small cluster is declared failed in about 1-2 s. Too aggressive for
	// real networks: packet delay above 100 ms makes members suspect.
	Local
)

// String implements fmt.Stringer.
func (p Profile) String() string {
	switch p {
	case LAN:
		return "lan"
	case Local:
		return "local"
	}
	return fmt.Sprintf("Profile(%d)", int(p))
}

// memberlistConfig returns memberlist's base configuration for p.
func (p Profile) memberlistConfig() *memberlist.Config {
	if p != Local {
		return memberlist.DefaultLANConfig()
	}
	c := memberlist.DefaultLocalConfig()
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.SuspicionMaxTimeoutMult = 2
	c.PushPullInterval = 5 * time.Second
	c.GossipToTheDeadTime = 5 * time.Second
	return c
}

// Config configures New. The zero value of each field is its default.
type Config struct {
	// Name is the memberlist node name; it must be unique in the cluster.
	// Default: the decimal Meta.ID.
	Name string

	// BindAddr is the IP address to listen on (TCP and UDP, one port).
	// Default "" = 0.0.0.0 (all interfaces).
	BindAddr string

	// BindPort is the gossip port. 0 picks a free port (memberlist binds
	// TCP and UDP to the same kernel-chosen port, retrying on conflicts)
	// and advertises it; AdvertiseAddr tells which.
	BindPort int

	// AdvertiseAddr is the IP address peers use to reach this node.
	// Default: BindAddr if it is a specific address, else memberlist picks
	// the first private IPv4 address (and New fails if there is none).
	AdvertiseAddr string

	// AdvertisePort is the port peers use. Default: the bound port. It is
	// ignored when BindPort is 0 (memberlist then advertises the port it
	// picked).
	AdvertisePort int

	// ClusterID isolates clusters: peers whose Meta.ClusterID differs are
	// refused, and gossip is labelled "canoe/<ClusterID>" so that packets of
	// other clusters are dropped. Default: Meta.ClusterID; if both are set
	// they must agree.
	ClusterID uint64

	// SecretKey, when set, encrypts all gossip with AES-GCM (memberlist's
	// SecretKey); it must be 16, 24 or 32 bytes and the same on every node.
	// nil = no encryption.
	SecretKey []byte

	// Profile selects the timing values; default LAN.
	Profile Profile

	// Meta is this node's initial metadata; Meta.ID is required.
	Meta Meta

	// Logger receives this package's and memberlist's logs. Default: an
	// hclog logger at INFO on stderr.
	Logger hclog.Logger

	// Transport replaces the real network; for tests only. nil = UDP+TCP.
	Transport memberlist.NodeAwareTransport

	// noLabel, for tests only, leaves memberlist's Label unset so that
	// nodes of different clusters reach the delegates' cluster check.
	noLabel bool
}

// label returns the memberlist Label for a cluster.
func label(clusterID uint64) string {
	return "canoe/" + strconv.FormatUint(clusterID, 10)
}

// withDefaults validates c and returns a defaulted copy; c is not changed.
// All problems are reported at once (errors.Join), each wrapping
// ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}

	if c.Meta.ID == 0 {
		bad("Meta.ID must be nonzero")
	}
	switch {
	case c.ClusterID == 0:
		c.ClusterID = c.Meta.ClusterID
	case c.Meta.ClusterID == 0:
		c.Meta.ClusterID = c.ClusterID
	case c.ClusterID != c.Meta.ClusterID:
		bad("ClusterID %d and Meta.ClusterID %d differ", c.ClusterID, c.Meta.ClusterID)
	}
	if c.Name == "" && c.Meta.ID != 0 {
		c.Name = strconv.FormatUint(c.Meta.ID, 10)
	}
	if c.Meta.ID != 0 {
		if _, err := c.Meta.Encode(); err != nil {
			bad("Meta: %v", err)
		}
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
		if c.SecretKey != nil {
			c.SecretKey = append([]byte(nil), c.SecretKey...)
		}
	default:
		bad("SecretKey must be 16, 24 or 32 bytes, got %d", len(c.SecretKey))
	}
	if c.BindAddr != "" && net.ParseIP(c.BindAddr) == nil {
		bad("BindAddr %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		bad("AdvertiseAddr %q is not an IP address", c.AdvertiseAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		bad("BindPort %d out of range [0, 65535]", c.BindPort)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		bad("AdvertisePort %d out of range [0, 65535]", c.AdvertisePort)
	}
	if c.Profile != LAN && c.Profile != Local {
		bad("unknown Profile %d", int(c.Profile))
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}

	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.AdvertisePort == 0 {
		// memberlist would otherwise advertise port 0 whenever
		// AdvertiseAddr is set and BindPort is not 0.
		c.AdvertisePort = c.BindPort
	}
	if c.Logger == nil {
		c.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info})
	}
	return c, nil
}
