package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"
)

// voters is a raft.Transport whose AppendEntries answers as each voter is
// told to; only the methods a Confirmer calls are implemented.
type voters struct {
	raft.Transport

	mu    sync.Mutex
	sent  map[raft.ServerID]int
	reply map[raft.ServerID]func(term uint64) (uint64, error) // answered term
	delay map[raft.ServerID]time.Duration
}

func newVoters() *voters {
	return &voters{sent: map[raft.ServerID]int{}, reply: map[raft.ServerID]func(uint64) (uint64, error){}, delay: map[raft.ServerID]time.Duration{}}
}

func (v *voters) LocalAddr() raft.ServerAddress { return "self" }

func (v *voters) EncodePeer(_ raft.ServerID, a raft.ServerAddress) []byte { return []byte(a) }

func (v *voters) AppendEntries(id raft.ServerID, _ raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	v.mu.Lock()
	v.sent[id]++
	reply, delay := v.reply[id], v.delay[id]
	v.mu.Unlock()
	time.Sleep(delay)
	if reply == nil {
		resp.Term = req.Term
		return nil
	}
	term, err := reply(req.Term)
	resp.Term = term
	return err
}

func (v *voters) set(id raft.ServerID, delay time.Duration, reply func(uint64) (uint64, error)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.delay[id], v.reply[id] = delay, reply
}

func (v *voters) total() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, c := range v.sent {
		n += c
	}
	return n
}

func config(n int) []raft.Server {
	servers := []raft.Server{{ID: "self", Address: "self", Suffrage: raft.Voter}}
	for i := 1; i < n; i++ {
		id := raft.ServerID(fmt.Sprintf("v%d", i))
		servers = append(servers, raft.Server{ID: id, Address: raft.ServerAddress(id), Suffrage: raft.Voter})
	}
	return servers
}

// confirmer runs f inside a synctest bubble with a Confirmer over v and
// joins its goroutines.
func confirmer(t *testing.T, v *voters, f func(t *testing.T, c *Confirmer)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		c := NewConfirmer(ctx, NewProgress(v), "self")
		f(t, c)
		cancel()
		c.Wait()
	})
}

var (
	failed = func(uint64) (uint64, error) { return 0, errors.New("connection refused") }
	newer  = func(term uint64) (uint64, error) { return term + 1, nil }
)

func TestConfirmQuorums(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers []raft.Server
		replies map[raft.ServerID]func(uint64) (uint64, error)
		want    error
	}{
		{"alone", config(1), nil, nil},
		{"three", config(3), nil, nil},
		{"three, one fails", config(3), map[raft.ServerID]func(uint64) (uint64, error){"v1": failed}, nil},
		{"three, both fail", config(3), map[raft.ServerID]func(uint64) (uint64, error){"v1": failed, "v2": failed}, ErrNoQuorum},
		{"three, one knows a newer term", config(3), map[raft.ServerID]func(uint64) (uint64, error){"v1": newer}, ErrDeposed},
		{"five, two fail", config(5), map[raft.ServerID]func(uint64) (uint64, error){"v1": failed, "v2": failed}, nil},
		{"five, three fail", config(5), map[raft.ServerID]func(uint64) (uint64, error){"v1": failed, "v3": failed, "v4": failed}, ErrNoQuorum},
		{"not a voter", config(3)[1:], nil, ErrDeposed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVoters()
			for id, r := range tc.replies {
				v.set(id, 0, r)
			}
			confirmer(t, v, func(t *testing.T, c *Confirmer) {
				if err := c.Confirm(t.Context(), 7, tc.servers); !errors.Is(err, tc.want) {
					t.Fatalf("Confirm = %v, want %v", err, tc.want)
				}
			})
		})
	}
}

// A round asks only as many voters as a quorum needs while they answer in
// time: with three voters, one heartbeat per round rather than two.
func TestConfirmAsksOnlyAQuorum(t *testing.T) {
	v := newVoters()
	v.set("v1", 100*time.Microsecond, nil)
	v.set("v2", 100*time.Microsecond, nil)
	const rounds = 100
	confirmer(t, v, func(t *testing.T, c *Confirmer) {
		for range rounds {
			if err := c.Confirm(t.Context(), 1, config(3)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
	})
	// Each voter is asked once before its round trip is known.
	if got := v.total(); got > rounds+1 {
		t.Errorf("%d rounds sent %d heartbeats, want at most %d", rounds, got, rounds+1)
	}
}

// A voter that does not answer costs a round at most the hedge delay, and
// later rounds ask the others first.
func TestConfirmHedgesPastASlowVoter(t *testing.T) {
	v := newVoters()
	v.set("v1", time.Hour, nil)
	v.set("v2", 100*time.Microsecond, nil)
	confirmer(t, v, func(t *testing.T, c *Confirmer) {
		for round := range 3 {
			start := time.Now()
			if err := c.Confirm(t.Context(), 1, config(3)); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if round == 0 && took > maxHedge+100*time.Microsecond {
				t.Errorf("first round took %v, want at most the hedge delay %v and v2's round trip", took, maxHedge)
			}
			if round > 0 && took != 100*time.Microsecond {
				t.Errorf("round %d took %v, want v2's round trip 100µs", round, took)
			}
		}
	})
}

// A failed voter is replaced at once, not after the hedge delay.
func TestConfirmAsksAnotherWhenOneFails(t *testing.T) {
	v := newVoters()
	v.set("v1", 0, failed)
	v.set("v2", 100*time.Microsecond, nil)
	confirmer(t, v, func(t *testing.T, c *Confirmer) {
		start := time.Now()
		if err := c.Confirm(t.Context(), 1, config(3)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 100*time.Microsecond {
			t.Errorf("round took %v, want v2's round trip 100µs", took)
		}
	})
}

func TestConfirmHonorsContext(t *testing.T) {
	v := newVoters()
	v.set("v1", time.Hour, nil)
	v.set("v2", time.Hour, nil)
	confirmer(t, v, func(t *testing.T, c *Confirmer) {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if err := c.Confirm(ctx, 1, config(3)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Confirm = %v, want the context's deadline", err)
		}
	})
}

// Voters that left the configuration, or moved, get a new beater; the old
// one ends.
func TestConfirmFollowsTheConfiguration(t *testing.T) {
	v := newVoters()
	confirmer(t, v, func(t *testing.T, c *Confirmer) {
		if err := c.Confirm(t.Context(), 1, config(5)); err != nil {
			t.Fatal(err)
		}
		servers := config(3)
		servers[2].Address = "moved"
		if err := c.Confirm(t.Context(), 1, servers); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.peers) != 2 || c.peers["v2"].addr != "moved" {
			t.Errorf("beaters: %v, want v1 and v2 at its new address", c.peers)
		}
	})
}
