package discovery

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// realNode starts a node on 127.0.0.1 with a kernel-chosen gossip port.
func realNode(t *testing.T, id uint64, key []byte) *node {
	t.Helper()
	return realNodeIn(t, cluster, id, key)
}

func realNodeIn(t *testing.T, clusterID, id uint64, key []byte) *node {
	t.Helper()
	nd := start(t, Config{
		BindAddr:  "127.0.0.1",
		ClusterID: clusterID,
		SecretKey: key,
		Profile:   Local,
		Meta:      Meta{ID: id, RaftAddr: "127.0.0.1:" + itoa(7000+id)},
	})
	host, port, err := net.SplitHostPort(nd.AdvertiseAddr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("AdvertiseAddr() = %q (%v), want 127.0.0.1 with a resolved port", nd.AdvertiseAddr(), err)
	}
	return nd
}

func TestRealNetworkJoin(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  []byte
	}{
		{"plain", nil},
		{"encrypted", bytes.Repeat([]byte{7}, 32)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := realNode(t, 1, tt.key), realNode(t, 2, tt.key)
			if a.AdvertiseAddr() == b.AdvertiseAddr() {
				t.Fatalf("both nodes advertise %s", a.AdvertiseAddr())
			}
			n, err := b.Join(ctxTimeout(t, 5*time.Second), []string{a.AdvertiseAddr()})
			if err != nil || n != 1 {
				t.Fatalf("Join = (%d, %v), want (1, nil)", n, err)
			}
			for _, nd := range []*node{a, b} {
				testutil.WaitFor(t, convergence, nd.name+" to see both", sameNames(nd, "1", "2"))
			}
			testutil.WaitFor(t, convergence, "join event on a", func() bool {
				return a.hasEvent(EventJoin, "2", func(e Event) bool {
					return e.Member.Addr == b.AdvertiseAddr() && e.Member.Meta.RaftAddr == "127.0.0.1:7002"
				})
			})
		})
	}
}

func TestRealNetworkMismatchRefused(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 24)
	for _, tt := range []struct {
		name          string
		seed, joiner  []byte
		joinerCluster uint64
		hint          string
	}{
		{"different keys", k1, k2, cluster, "SecretKey mismatch"},
		{"joiner without key", k1, nil, cluster, "SecretKey mismatch"},
		{"seed without key", nil, k2, cluster, "SecretKey mismatch"},
		{"other cluster", nil, nil, cluster + 1, "different ClusterID"},
		{"other cluster and key", k1, k2, cluster + 1, "different ClusterID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := realNode(t, 1, tt.seed)
			b := realNodeIn(t, tt.joinerCluster, 2, tt.joiner)
			_, err := b.Join(ctxTimeout(t, 5*time.Second), []string{a.AdvertiseAddr()})
			if !errors.Is(err, ErrJoinFailed) {
				t.Fatalf("Join with a mismatched key or cluster: got %v, want ErrJoinFailed", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "join failed") || !strings.Contains(msg, tt.hint) {
				t.Errorf("Join error %q does not say %q", msg, tt.hint)
			}
			if je := (*JoinError)(nil); !errors.As(err, &je) || !je.Refused {
				t.Errorf("Join error %q is not marked Refused", err)
			}
			t.Logf("join error: %v", err)
			// Let a third, legitimate node join a, so some gossip has
			// happened; b must still be absent on both sides.
			c := realNode(t, 3, tt.seed)
			if _, err := c.Join(ctxTimeout(t, 5*time.Second), []string{a.AdvertiseAddr()}); err != nil {
				t.Fatalf("legitimate Join: %v", err)
			}
			testutil.WaitFor(t, convergence, "a and c to see each other", func() bool {
				return slices.Equal(memberNames(a), []string{"1", "3"}) && slices.Equal(memberNames(c), []string{"1", "3"})
			})
			if got := memberNames(b); !slices.Equal(got, []string{"2"}) {
				t.Errorf("rejected node sees %v, want only itself", got)
			}
		})
	}
}

func TestAdvertisePortResolvedWithExplicitAddr(t *testing.T) {
	nd := start(t, Config{BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1", Profile: Local, Meta: Meta{ID: 1}})
	_, port, err := net.SplitHostPort(nd.AdvertiseAddr())
	if err != nil || port == "0" {
		t.Fatalf("AdvertiseAddr() = %q, want a resolved port", nd.AdvertiseAddr())
	}
	if got := nd.LocalMember().Addr; got != nd.AdvertiseAddr() {
		t.Errorf("LocalMember().Addr = %q, want %q", got, nd.AdvertiseAddr())
	}
}

func TestJoinUnreachableAndCanceled(t *testing.T) {
	nd := realNode(t, 1, nil)
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	_, err = nd.Join(ctxTimeout(t, 5*time.Second), []string{dead})
	if !errors.Is(err, ErrJoinFailed) || !strings.Contains(err.Error(), "no seed reachable") {
		t.Errorf("Join of a closed port: got %v, want ErrJoinFailed saying no seed is reachable", err)
	}
	if je := (*JoinError)(nil); !errors.As(err, &je) || je.Refused {
		t.Errorf("Join of a closed port: %v is marked Refused; retrying may help", err)
	}
	// One seed refusing and one unreachable: not every seed refused.
	other := realNodeIn(t, cluster+1, 2, nil)
	_, err = nd.Join(ctxTimeout(t, 5*time.Second), []string{other.AdvertiseAddr(), dead})
	if je := (*JoinError)(nil); !errors.As(err, &je) || je.Refused {
		t.Errorf("Join of another cluster's seed and a closed port: got %v, want a JoinError not marked Refused", err)
	}
	if _, err := nd.Join(ctxTimeout(t, time.Second), nil); !errors.Is(err, ErrJoinFailed) {
		t.Errorf("Join with no seeds: got %v, want ErrJoinFailed", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := nd.Join(ctx, []string{dead}); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrJoinFailed) {
		t.Errorf("Join with a canceled ctx: got %v, want ErrJoinFailed and context.Canceled", err)
	} else if je := (*JoinError)(nil); errors.As(err, &je) && je.Refused {
		t.Errorf("Join with a canceled ctx: %v is marked Refused", err)
	}
}
