package canoe

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/httpconfig"
)

func TestNewNodeRejectsBadConfig(t *testing.T) {
	fsm := &testFSM{}
	tests := []struct {
		name string
		cfg  *NodeConfig
		want []string // every one must appear in the error
	}{
		{"nil config", nil, []string{"nil NodeConfig"}},
		{"nil FSM", &NodeConfig{}, []string{"FSM is nil"}},
		{"bad ports", &NodeConfig{FSM: fsm, RaftPort: -1, ConfigurationPort: 70000}, []string{"RaftPort -1", "ConfigurationPort 70000"}},
		{"same ports", &NodeConfig{FSM: fsm, RaftPort: 5000, ConfigurationPort: 5000}, []string{"must differ (5000, 5000, 0)"}},
		{"bootstrap and peers", &NodeConfig{FSM: fsm, BootstrapNode: true, BootstrapPeers: []string{"http://h:1"}}, []string{"set one of them"}},
		{"bootstrap a non-voter", &NodeConfig{FSM: fsm, BootstrapNode: true, NonVoter: true}, []string{"BootstrapNode founds a cluster with this node as its only voter, and NonVoter"}},
		{"restore into a non-voter", &NodeConfig{FSM: fsm, BootstrapExpect: 3, RestoreFrom: "b", NonVoter: true}, []string{"RestoreFrom founds a cluster with this node as its only voter, and NonVoter"}},
		{"bad peer URL", &NodeConfig{FSM: fsm, BootstrapPeers: []string{"h", "ftp://h:1", "http://h"}}, []string{`"h" is neither`, `"ftp://h:1"`, `"http://h" is not a valid URL: missing port`}},
		{"bad bind", &NodeConfig{FSM: fsm, BindAddr: "example.com"}, []string{"BindAddr"}},
		{"bad secret", &NodeConfig{FSM: fsm, ClusterSecret: []byte("short")}, []string{"ClusterSecret is 5 bytes"}},
		{"bad timing", &NodeConfig{FSM: fsm, Timing: Timing{HeartbeatTimeout: time.Second, LeaderLeaseTimeout: 2 * time.Second}}, []string{"LeaderLeaseTimeout"}},
		{"bad snapshot interval", &NodeConfig{FSM: fsm, SnapshotConfig: &SnapshotConfig{Interval: time.Millisecond}}, []string{"nterval"}},
		{"RestoreFrom without founding", &NodeConfig{FSM: fsm, RestoreFrom: "b.backup", BootstrapPeers: []string{"http://h:1"}}, []string{"RestoreFrom founds a new cluster"}},
		{"negative MaxBackupBytes", &NodeConfig{FSM: fsm, MaxBackupBytes: -1}, []string{"MaxBackupBytes -1"}},
		{"everything at once", &NodeConfig{RaftPort: -1, ClusterSecret: []byte("x")}, []string{"FSM is nil", "RaftPort -1", "ClusterSecret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNode(tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewNodeDoesNotModifyConfig(t *testing.T) {
	cfg := &NodeConfig{FSM: &testFSM{}, BootstrapNode: true}
	before := *cfg
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClusterID != before.ClusterID || cfg.SnapshotConfig != nil || cfg.InitBackoff != nil || cfg.Logger != nil || cfg.ID != 0 {
		t.Fatalf("NewNode modified the caller's config: %+v", cfg)
	}
	if n.UniqueID() == 0 {
		t.Fatal("UniqueID is 0")
	}
}

func TestAddPeerRejectsBadPeer(t *testing.T) {
	n, err := NewNode(&NodeConfig{FSM: &testFSM{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Peer{{}, {ID: 1, Host: "h"}, {ID: 1, Host: "h", RaftPort: 1, ConfigPort: -1}} {
		if err := n.AddPeer(t.Context(), p); !errors.Is(err, ErrInvalidPeer) {
			t.Errorf("AddPeer(%+v): got %v, want ErrInvalidPeer", p, err)
		}
	}
}

func TestBootstrapExpectNeedsGossipSeeds(t *testing.T) {
	_, err := NewNode(&NodeConfig{FSM: &testFSM{}, BootstrapExpect: 3, BootstrapPeers: []string{"http://h:1"}})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "needs gossip addresses") {
		t.Fatalf("got %v, want an error saying BootstrapExpect needs gossip addresses", err)
	}
	_, err = NewNode(&NodeConfig{FSM: &testFSM{}, BootstrapExpect: 3, BootstrapNode: true})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("BootstrapExpect with BootstrapNode: got %v, want ErrInvalidConfig", err)
	}
	if _, err := NewNode(&NodeConfig{FSM: &testFSM{}, BootstrapExpect: 3, BootstrapPeers: []string{"127.0.0.1:7946"}}); err != nil {
		t.Fatalf("BootstrapExpect with gossip seeds: %v", err)
	}
}

func TestBootstrapPeerForms(t *testing.T) {
	accepted := "http(s)://host:port"
	for _, tt := range []struct {
		in     string
		url    string // the API base URL it stands for, "" if a gossip address
		gossip string // the gossip address it stands for
		bad    string // part of the error, "" if accepted
	}{
		{in: "http://10.0.0.1:7001", url: "http://10.0.0.1:7001"},
		{in: "https://node-1.example.com:7001/", url: "https://node-1.example.com:7001"},
		{in: "http://[::1]:7001", url: "http://[::1]:7001"},
		{in: "10.0.0.1:7946", gossip: "10.0.0.1:7946"},
		{in: "node-1.example.com:7946", gossip: "node-1.example.com:7946"},
		{in: "[::1]:7946", gossip: "[::1]:7946"},
		{in: "http://h:7001#x", bad: "fragment"},
		{in: "http://h:7001?x=1", bad: "query"},
		{in: "http://h:7001/peers", bad: "path"},
		{in: "http://u:p@h:7001", bad: "user info"},
		{in: "http://h", bad: "port"},
		{in: "http://h:0", bad: "port"},
		{in: "http://h:70000", bad: "port"},
		{in: "ftp://h:7001", bad: "scheme"},
		{in: "http//127.0.0.1:7001", bad: "http//127.0.0.1:7001"},
		{in: "http:/h:7001", bad: "http:/h:7001"},
		{in: "h:7001#x", bad: "h:7001#x"},
		{in: "h:7001/x", bad: "h:7001/x"},
		{in: "u@h:7001", bad: "u@h:7001"},
		{in: "h", bad: `"h"`},
		{in: ":7946", bad: "host"},
		{in: "h:0", bad: "port"},
		{in: "h:http", bad: "port"},
		{in: "", bad: "empty"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			p, err := parseBootstrapPeer(tt.in)
			if tt.bad != "" {
				if err == nil {
					t.Fatalf("got %+v, want an error mentioning %q", p, tt.bad)
				}
				for _, w := range []string{tt.bad, accepted, "host:port"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if cerr := CheckBootstrapPeer(tt.in); cerr == nil || cerr.Error() != err.Error() {
					t.Errorf("CheckBootstrapPeer(%q) = %v, want %v", tt.in, cerr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want it accepted", err)
			}
			got := ""
			if p.url != nil {
				got = p.url.String()
			}
			if got != tt.url || p.gossip != tt.gossip {
				t.Errorf("got url %q gossip %q, want url %q gossip %q", got, p.gossip, tt.url, tt.gossip)
			}
		})
	}
	// NewNode rejects the same entries, all of them at once.
	_, err := NewNode(&NodeConfig{FSM: &testFSM{}, BootstrapPeers: []string{"http://h:7001#x", "http//127.0.0.1:7001", "h:7946"}})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "fragment") || !strings.Contains(err.Error(), `"http//127.0.0.1:7001"`) {
		t.Errorf("NewNode with malformed BootstrapPeers: got %v, want ErrInvalidConfig naming both entries", err)
	}
}

func TestInitBackoffZeroFieldsTakeDefaults(t *testing.T) {
	d := *DefaultInitializationBackoffArgs
	for _, tt := range []struct {
		name string
		in   *InitializationBackoffArgs
		want InitializationBackoffArgs
	}{
		{"nil", nil, d},
		{"empty", &InitializationBackoffArgs{}, d},
		{"only InitialInterval", &InitializationBackoffArgs{InitialInterval: 100 * time.Millisecond},
			InitializationBackoffArgs{InitialInterval: 100 * time.Millisecond, Multiplier: d.Multiplier, MaxInterval: d.MaxInterval, MaxElapsedTime: d.MaxElapsedTime, RandomizationFactor: d.RandomizationFactor}},
		{"InitialInterval above the default MaxInterval", &InitializationBackoffArgs{InitialInterval: time.Minute},
			InitializationBackoffArgs{InitialInterval: time.Minute, Multiplier: d.Multiplier, MaxInterval: time.Minute, MaxElapsedTime: d.MaxElapsedTime, RandomizationFactor: d.RandomizationFactor}},
		{"all set", &InitializationBackoffArgs{InitialInterval: 1, Multiplier: 1.5, MaxInterval: 2, MaxElapsedTime: 3, RandomizationFactor: .1},
			InitializationBackoffArgs{InitialInterval: 1, Multiplier: 1.5, MaxInterval: 2, MaxElapsedTime: 3, RandomizationFactor: .1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &NodeConfig{FSM: &testFSM{}, InitBackoff: tt.in}
			var before InitializationBackoffArgs
			if tt.in != nil {
				before = *tt.in
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := cfg.withDefaults().InitBackoff
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
			if tt.in != nil && *tt.in != before {
				t.Errorf("the caller's InitBackoff changed to %+v", *tt.in)
			}
			if got == DefaultInitializationBackoffArgs {
				t.Error("withDefaults shares DefaultInitializationBackoffArgs instead of copying it")
			}
		})
	}
}

func TestInitBackoffValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   InitializationBackoffArgs
		want []string
	}{
		{"MaxInterval below InitialInterval", InitializationBackoffArgs{InitialInterval: 10 * time.Second, MaxInterval: time.Second}, []string{"MaxInterval 1s is below InitialInterval 10s"}},
		{"MaxInterval below the default InitialInterval", InitializationBackoffArgs{MaxInterval: 100 * time.Millisecond}, []string{"MaxInterval 100ms is below InitialInterval 500ms"}},
		{"negative", InitializationBackoffArgs{InitialInterval: -1, MaxElapsedTime: -1}, []string{"InitialInterval", "MaxElapsedTime", "negative"}},
		{"multiplier", InitializationBackoffArgs{Multiplier: .5}, []string{"Multiplier 0.5"}},
		{"randomization", InitializationBackoffArgs{RandomizationFactor: 2}, []string{"RandomizationFactor 2"}},
		{"everything at once", InitializationBackoffArgs{InitialInterval: time.Second, MaxInterval: time.Millisecond, Multiplier: .5, RandomizationFactor: -1},
			[]string{"MaxInterval 1ms is below InitialInterval 1s", "Multiplier 0.5", "RandomizationFactor -1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			err := (&NodeConfig{FSM: &testFSM{}, InitBackoff: &in}).Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if in != tt.in {
				t.Errorf("Validate changed InitBackoff to %+v", in)
			}
		})
	}
}

func FuzzBootstrapPeer(f *testing.F) {
	for _, s := range []string{"http://h:7001", "https://[::1]:1/", "h:7946", "[fe80::1%eth0]:7946",
		"http//h:1", "http:/h:1", "h:1#x", "u@h:1", ":1", "h:0", "", "\xff:1", "http://h:1?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseBootstrapPeer(s)
		if err != nil {
			if !strings.Contains(err.Error(), bootstrapPeerForms) {
				t.Errorf("error %q does not name the accepted forms", err)
			}
			return
		}
		switch {
		case p.url != nil && p.gossip == "":
			if _, err := httpconfig.ParseBaseURL(p.url.String()); err != nil || p.url.Path != "" {
				t.Errorf("accepted %q as URL %v, which does not parse back: %v", s, p.url, err)
			}
		case p.url == nil && p.gossip == s:
			host, port, err := net.SplitHostPort(s)
			if err != nil || host == "" || port == "0" || strings.ContainsAny(s, "/?#@ ") {
				t.Errorf("accepted %q as a gossip address", s)
			}
		default:
			t.Errorf("parseBootstrapPeer(%q) = %+v: want exactly one of url and gossip", s, p)
		}
	})
}
