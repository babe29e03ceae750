package canoe

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"
)

// TestPromotionTrustsOnlyTheLeader: a member that answers every
// AppendEntries claiming a log far ahead of the leader's (LastLog 2^40),
// without accepting a single entry, is never promoted to voter: promotion
// rests on what the leader knows it replicated, not on what a follower
// says about itself.
func TestPromotionTrustsOnlyTheLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		leader := c.leader()
		propose(t, leader, "x")

		// A liar on the in-memory network.
		addr, liar := raft.NewInmemTransport("127.0.0.1:10099")
		c.mu.Lock()
		for _, other := range c.trans {
			liar.Connect(other.LocalAddr(), other)
			other.Connect(addr, liar)
		}
		c.mu.Unlock()
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case rpc := <-liar.Consumer():
					switch cmd := rpc.Command.(type) {
					case *raft.AppendEntriesRequest:
						rpc.Respond(&raft.AppendEntriesResponse{Term: cmd.Term, LastLog: 1 << 40, Success: false}, nil)
					default:
						rpc.Respond(nil, fmt.Errorf("liar does not answer %T", cmd))
					}
				case <-done:
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := leader.AddPeer(ctx, Peer{ID: 99, Host: "127.0.0.1", RaftPort: 10099}); err != nil {
			t.Fatalf("AddPeer: %v", err)
		}
		time.Sleep(10 * time.Second) // many promotion rounds, in virtual time
		for _, p := range c.leader().Peers() {
			if p.ID == 99 && p.Voter {
				t.Fatal("the member that claims LastLog 2^40 was promoted to voter")
			}
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.leader().RemovePeer(ctx, 99); err != nil {
			t.Fatalf("RemovePeer: %v", err)
		}
		liar.Close()
	})
}
