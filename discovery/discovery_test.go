package discovery

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

const (
	cluster     = 0xC0FFEE
	convergence = 10 * time.Second // generous for -race on a loaded machine
)

// memCluster starts n nodes (IDs 1..n) on one in-memory network and joins
// them through node 1, waiting until everyone sees everyone.
func memCluster(t *testing.T, n int) (*memNetwork, []*node) {
	t.Helper()
	mn := &memNetwork{}
	var nodes []*node
	var names []string
	for i := 1; i <= n; i++ {
		nodes = append(nodes, memNode(t, mn, uint64(i), cluster))
		names = append(names, "n"+itoa(uint64(i)))
	}
	for _, nd := range nodes[1:] {
		if _, err := nd.Join(ctxTimeout(t, 5*time.Second), []string{nodes[0].AdvertiseAddr()}); err != nil {
			t.Fatalf("%s: Join: %v", nd.name, err)
		}
	}
	for _, nd := range nodes {
		testutil.WaitFor(t, convergence, nd.name+" to see all members", sameNames(nd, names...))
	}
	return mn, nodes
}

func TestJoinSeesMembersAndMeta(t *testing.T) {
	_, nodes := memCluster(t, 3)
	for _, nd := range nodes {
		members := nd.Members()
		for _, m := range members {
			id, _ := strconvID(m.Name)
			want := Meta{ID: id, ClusterID: cluster, RaftAddr: "127.0.0.1:" + itoa(7000+id)}
			if m.Meta != want {
				t.Errorf("%s sees %s with meta %+v, want %+v", nd.name, m.Name, m.Meta, want)
			}
			if m.State != Alive {
				t.Errorf("%s sees %s in state %v, want alive", nd.name, m.Name, m.State)
			}
			if m.Addr == "" {
				t.Errorf("%s sees %s with no address", nd.name, m.Name)
			}
		}
		local := nd.LocalMember()
		if i := slices.IndexFunc(members, func(m Member) bool { return m.Name == local.Name }); i < 0 {
			t.Errorf("%s: Members does not include self", nd.name)
		} else if members[i].Addr != nd.AdvertiseAddr() || members[i].Meta != local.Meta {
			t.Errorf("%s: self in Members = %+v, LocalMember = %+v", nd.name, members[i], local)
		}
		// Every node gets a join event for each other node, none for itself.
		for _, other := range nodes {
			if other == nd {
				if evs := nd.eventsAbout(nd.name); len(evs) > 0 {
					t.Errorf("%s got events about itself: %+v", nd.name, evs)
				}
				continue
			}
			testutil.WaitFor(t, convergence, nd.name+" join event for "+other.name, func() bool {
				return nd.hasEvent(EventJoin, other.name, func(e Event) bool {
					return e.Member.Meta.ID == other.LocalMember().Meta.ID && !e.At.IsZero()
				})
			})
		}
	}
}

func strconvID(name string) (uint64, bool) {
	var v uint64
	for _, c := range strings.TrimPrefix(name, "n") {
		v = v*10 + uint64(c-'0')
	}
	return v, v != 0
}

func TestUpdateMetaPropagates(t *testing.T) {
	_, nodes := memCluster(t, 3)
	a := nodes[0]
	err := a.UpdateMeta(ctxTimeout(t, 5*time.Second), func(m *Meta) {
		m.HasState = true
		m.ConfigAddr = "127.0.0.1:9001"
	})
	if err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	if got := a.LocalMember().Meta; !got.HasState || got.ConfigAddr != "127.0.0.1:9001" {
		t.Errorf("LocalMember().Meta = %+v, want the update", got)
	}
	updated := func(e Event) bool { return e.Member.Meta.HasState && e.Member.Meta.ConfigAddr == "127.0.0.1:9001" }
	for _, nd := range nodes[1:] {
		testutil.WaitFor(t, convergence, nd.name+" update event", func() bool { return nd.hasEvent(EventUpdate, a.name, updated) })
		i := slices.IndexFunc(nd.Members(), func(m Member) bool { return m.Name == a.name })
		if i < 0 || !nd.Members()[i].Meta.HasState {
			t.Errorf("%s: Members does not show the update", nd.name)
		}
	}
}

func TestUpdateMetaRejectsBadChanges(t *testing.T) {
	mn := &memNetwork{}
	a := memNode(t, mn, 1, cluster)
	ctx := ctxTimeout(t, 5*time.Second)
	for _, tt := range []struct {
		name string
		fn   func(*Meta)
		want error
	}{
		{"id", func(m *Meta) { m.ID = 99 }, ErrInvalidMeta},
		{"cluster", func(m *Meta) { m.ClusterID++ }, ErrInvalidMeta},
		{"too large", func(m *Meta) { m.ConfigAddr = strings.Repeat("x", 600) }, ErrMetaTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := a.LocalMember().Meta
			if err := a.UpdateMeta(ctx, tt.fn); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if after := a.LocalMember().Meta; after != before {
				t.Errorf("meta changed to %+v after a refused update", after)
			}
		})
	}
}

func TestLeaveGivesLeaveEvent(t *testing.T) {
	_, nodes := memCluster(t, 3)
	c := nodes[2]
	if err := c.Leave(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if got := c.LocalMember().State; got != Left {
		t.Errorf("LocalMember().State after Leave = %v, want left", got)
	}
	if err := c.Leave(context.Background()); err != nil {
		t.Errorf("second Leave: %v, want nil", err)
	}
	if _, err := c.Join(context.Background(), []string{nodes[0].AdvertiseAddr()}); !errors.Is(err, ErrLeft) {
		t.Errorf("Join after Leave: got %v, want ErrLeft", err)
	}
	if err := c.UpdateMeta(context.Background(), func(*Meta) {}); !errors.Is(err, ErrLeft) {
		t.Errorf("UpdateMeta after Leave: got %v, want ErrLeft", err)
	}
	for _, nd := range nodes[:2] {
		testutil.WaitFor(t, convergence, nd.name+" leave event", func() bool {
			return nd.hasEvent(EventLeave, c.name, func(e Event) bool {
				return e.Member.State == Left && e.Member.Meta.Leaving && e.Member.Meta.ID == 3
			})
		})
		// The flag arrived as an update before the leave.
		if !nd.hasEvent(EventUpdate, c.name, func(e Event) bool { return e.Member.Meta.Leaving }) {
			t.Errorf("%s: no update event with Leaving before the leave", nd.name)
		}
		if nd.hasEvent(EventFailed, c.name, nil) {
			t.Errorf("%s: got a failed event for a graceful leave: %+v", nd.name, nd.eventsAbout(c.name))
		}
		testutil.WaitFor(t, convergence, nd.name+" to drop the leaver", sameNames(nd, "n1", "n2"))
	}
	if err := c.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := c.Leave(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown: got %v, want ErrShutdown", err)
	}
}

func TestShutdownWithoutLeaveGivesFailedEvent(t *testing.T) {
	_, nodes := memCluster(t, 3)
	c := nodes[2]
	if err := c.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	select {
	case <-c.done: // Events() was closed
	case <-time.After(time.Second):
		t.Fatal("Events channel not closed by Shutdown")
	}
	start := time.Now()
	for _, nd := range nodes[:2] {
		testutil.WaitFor(t, convergence, nd.name+" failed event", func() bool {
			return nd.hasEvent(EventFailed, c.name, func(e Event) bool { return e.Member.State == Dead && e.Member.Meta.ID == 3 })
		})
		if nd.hasEvent(EventLeave, c.name, nil) {
			t.Errorf("%s: got a leave event for a crash", nd.name)
		}
		testutil.WaitFor(t, convergence, nd.name+" to drop the failed node", sameNames(nd, "n1", "n2"))
	}
	t.Logf("failure detected in %v", time.Since(start).Round(time.Millisecond))
	if _, err := c.Join(context.Background(), []string{nodes[0].AdvertiseAddr()}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Join after Shutdown: got %v, want ErrShutdown", err)
	}
}

func TestOtherClusterRejected(t *testing.T) {
	for _, tt := range []struct {
		name    string
		noLabel bool // false: memberlist's label drops the traffic; true: the delegates refuse it
		hint    string
	}{
		{"by label", false, "different ClusterID"},
		{"by delegate", true, "ClusterID mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mn := &memNetwork{}
			mk := func(id, cid uint64) *node {
				name := "n" + itoa(id)
				return start(t, Config{Name: name, Profile: Local, Transport: mn.newTransport(name), noLabel: tt.noLabel,
					Meta: Meta{ID: id, ClusterID: cid, RaftAddr: "127.0.0.1:1"}})
			}
			a, b := mk(1, cluster), mk(2, cluster)
			x := mk(9, cluster+1)

			_, err := x.Join(ctxTimeout(t, 5*time.Second), []string{a.AdvertiseAddr()})
			var je *JoinError
			if !errors.Is(err, ErrJoinFailed) || !errors.As(err, &je) {
				t.Fatalf("Join from another cluster: got %v, want a JoinError", err)
			}
			if !strings.Contains(err.Error(), "join failed") || !strings.Contains(err.Error(), tt.hint) {
				t.Errorf("Join error %q does not mention %q", err, tt.hint)
			}
			if !je.Refused {
				t.Errorf("Join error %q is not marked Refused", err)
			}
			t.Logf("join error: %v", err)

			// The other direction fails too.
			if _, err := a.Join(ctxTimeout(t, 5*time.Second), []string{x.AdvertiseAddr()}); !errors.Is(err, ErrJoinFailed) {
				t.Errorf("Join into another cluster: got %v, want ErrJoinFailed", err)
			}

			// A legitimate join afterwards converges, and x never shows up.
			if _, err := b.Join(ctxTimeout(t, 5*time.Second), []string{a.AdvertiseAddr()}); err != nil {
				t.Fatalf("Join: %v", err)
			}
			testutil.WaitFor(t, convergence, "a and b to see each other", func() bool {
				return slices.Equal(memberNames(a), []string{"n1", "n2"}) && slices.Equal(memberNames(b), []string{"n1", "n2"})
			})
			if got := memberNames(x); !slices.Equal(got, []string{"n9"}) {
				t.Errorf("outsider sees %v, want only itself", got)
			}
			for _, nd := range []*node{a, b} {
				if evs := nd.eventsAbout("n9"); len(evs) > 0 {
					t.Errorf("%s got events about the outsider: %+v", nd.name, evs)
				}
			}
		})
	}
}

func TestEventsNeverDrop(t *testing.T) {
	q := newEventQueue()
	done := make(chan struct{})
	go func() { defer close(done); q.run() }()
	const n = 10000
	for i := range n { // nobody reads yet: push must not block
		q.push(Event{Kind: EventUpdate, Member: Member{Name: itoa(uint64(i))}})
	}
	for i := range n {
		e := <-q.out
		if e.Member.Name != itoa(uint64(i)) {
			t.Fatalf("event %d is %q, want in order", i, e.Member.Name)
		}
	}
	q.push(Event{Kind: EventJoin})
	q.close()
	q.push(Event{Kind: EventJoin}) // after close: discarded, no panic
	<-done
	for range q.out { // closed by run
	}
}
