package canoe

import (
	"errors"
	"strings"
	"testing"
	"time"
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
		{"bad peer URL", &NodeConfig{FSM: fsm, BootstrapPeers: []string{"h", "ftp://h:1", "http://h"}}, []string{`"h" is neither`, `"ftp://h:1"`, `"http://h" has no port`}},
		{"bad bind", &NodeConfig{FSM: fsm, BindAddr: "example.com"}, []string{"BindAddr"}},
		{"bad secret", &NodeConfig{FSM: fsm, ClusterSecret: []byte("short")}, []string{"ClusterSecret is 5 bytes"}},
		{"bad timing", &NodeConfig{FSM: fsm, Timing: Timing{HeartbeatTimeout: time.Second, LeaderLeaseTimeout: 2 * time.Second}}, []string{"LeaderLeaseTimeout"}},
		{"bad snapshot interval", &NodeConfig{FSM: fsm, SnapshotConfig: &SnapshotConfig{Interval: time.Millisecond}}, []string{"nterval"}},
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
