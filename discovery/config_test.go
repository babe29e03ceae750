package discovery

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestConfigValidation(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   Config
		wants []string // substrings of the joined error
	}{
		{"zero id", Config{}, []string{"Meta.ID"}},
		{"many problems at once", Config{
			Meta:          Meta{ID: 1, ClusterID: 2},
			ClusterID:     3,
			SecretKey:     []byte("short"),
			BindAddr:      "localhost",
			AdvertiseAddr: "not-an-ip",
			BindPort:      70000,
			AdvertisePort: -1,
			Profile:       Profile(9),
		}, []string{"ClusterID 3 and Meta.ClusterID 2", "SecretKey", "BindAddr", "AdvertiseAddr", "BindPort", "AdvertisePort", "Profile"}},
		{"meta too large", Config{Meta: Meta{ID: 1, RaftAddr: strings.Repeat("x", 600)}}, []string{"too large"}},
		{"negative bootstrap expect", Config{Meta: Meta{ID: 1, BootstrapExpect: -2}}, []string{"BootstrapExpect"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	key := []byte("0123456789abcdef")
	in := Config{ClusterID: 5, SecretKey: key, BindPort: 4000, Meta: Meta{ID: 42}}
	got, err := in.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "42" || got.Meta.ClusterID != 5 || got.BindAddr != "0.0.0.0" || got.AdvertisePort != 4000 || got.Logger == nil {
		t.Errorf("defaults not applied: %+v", got)
	}
	key[0] = 'X'
	if got.SecretKey[0] == 'X' {
		t.Error("SecretKey shares the caller's slice")
	}
	if in.Name != "" || in.Meta.ClusterID != 0 || in.Logger != nil {
		t.Errorf("caller's config changed: %+v", in)
	}
	got, err = Config{Meta: Meta{ID: 1, ClusterID: 8}}.withDefaults()
	if err != nil || got.ClusterID != 8 {
		t.Errorf("ClusterID from Meta: got %d, %v; want 8", got.ClusterID, err)
	}
}

func TestProfiles(t *testing.T) {
	lan, local := LAN.memberlistConfig(), Local.memberlistConfig()
	if def := memberlist.DefaultLANConfig(); lan.ProbeInterval != def.ProbeInterval || lan.SuspicionMult != def.SuspicionMult {
		t.Errorf("LAN differs from memberlist's LAN defaults")
	}
	if local.ProbeInterval >= lan.ProbeInterval || local.ProbeTimeout >= local.ProbeInterval {
		t.Errorf("Local probe %v/%v not tighter than LAN %v", local.ProbeInterval, local.ProbeTimeout, lan.ProbeInterval)
	}
	var zero Config
	if zero.Profile != LAN || LAN.String() != "lan" || Local.String() != "local" {
		t.Error("LAN must be the zero Profile")
	}
}

func TestCheckPeer(t *testing.T) {
	d := &Discovery{clusterID: 7, rejected: map[string]string{}, logger: testLogger(t, "check")}
	enc := func(m Meta) []byte {
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	g := delegate{d: d}
	for _, tt := range []struct {
		name string
		meta []byte
		want error
	}{
		{"same cluster", enc(Meta{ID: 1, ClusterID: 7}), nil},
		{"other cluster", enc(Meta{ID: 1, ClusterID: 8}), ErrClusterMismatch},
		{"no meta", nil, ErrInvalidMeta},
		{"garbage", []byte("hello"), ErrInvalidMeta},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := &memberlist.Node{Name: "p", Meta: tt.meta}
			for range 2 { // the second refusal is logged at DEBUG
				if err := g.NotifyAlive(n); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Errorf("NotifyAlive: got %v, want %v", err, tt.want)
				}
			}
			err := g.NotifyMerge([]*memberlist.Node{{Name: "ok", Meta: enc(Meta{ID: 2, ClusterID: 7})}, n})
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("NotifyMerge: got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{EventJoin: "join", EventUpdate: "update", EventLeave: "leave",
		EventFailed: "failed", EventKind(0): "EventKind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
	for s, want := range map[MemberState]string{Alive: "alive", Suspect: "suspect", Dead: "dead", Left: "left"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestJoinHintIgnoresSeedNames(t *testing.T) {
	for _, tt := range []struct {
		err     string
		seeds   []string
		hint    string
		refused bool
	}{
		{"failed to join label-eof.example:7946: dial tcp: connect: connection refused", []string{"label-eof.example:7946"}, "no seed reachable", false},
		{"failed to join 10.0.0.1:7946: EOF", []string{"10.0.0.1:7946"}, "dropped the connection", true},
		{"failed to join 10.0.0.1:7946: read: connection reset by peer", []string{"10.0.0.1:7946"}, "dropped the connection", false},
		{"failed to join 10.0.0.1:7946: no installed keys could decrypt the message", []string{"10.0.0.1:7946"}, "SecretKey mismatch", true},
		{"failed to join 10.0.0.1:7946: something new", []string{"10.0.0.1:7946"}, "", false},
	} {
		hint, refused := joinHint(errors.New(tt.err), tt.seeds...)
		if !strings.Contains(hint, tt.hint) || tt.hint == "" && hint != "" || refused != tt.refused {
			t.Errorf("joinHint(%q) = %q, %v; want %q, %v", tt.err, hint, refused, tt.hint, tt.refused)
		}
	}
}

// TestMemberlistLogLowersExpectedWarnings: the refutations a restarted
// member causes are passed on at INFO, every other line as it is.
func TestMemberlistLogLowersExpectedWarnings(t *testing.T) {
	for in, want := range map[string]string{
		"[WARN] memberlist: Refuting a suspect message (from: n2)\n": "[INFO] memberlist: Refuting a suspect message (from: n2)\n",
		"[WARN] memberlist: Refuting an alive message for 'n1'\n":    "[INFO] memberlist: Refuting an alive message for 'n1'\n",
		"[WARN] memberlist: Was able to connect to n3 over TCP\n":    "[WARN] memberlist: Was able to connect to n3 over TCP\n",
		"[ERR] memberlist: Refuting a suspect message\n":             "[ERR] memberlist: Refuting a suspect message\n",
	} {
		var out strings.Builder
		n, err := (&memberlistLog{w: &out}).Write([]byte(in))
		if err != nil || n != len(in) || out.String() != want {
			t.Errorf("Write(%q) = %d, %v, wrote %q; want %d, nil, %q", in, n, err, out.String(), len(in), want)
		}
	}
}
