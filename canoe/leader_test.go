package canoe

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

func TestTransferLeadershipTo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		ctx := context.Background()
		l := c.leader()
		fs := c.followers()
		var nle *NotLeaderError
		if err := fs[0].TransferLeadershipTo(ctx, fs[1].id); !errors.As(err, &nle) || nle.LeaderID != l.id {
			t.Errorf("TransferLeadershipTo on a follower: got %v, want a NotLeaderError naming %d", err, l.id)
		}
		if err := l.TransferLeadershipTo(ctx, 999); !errors.Is(err, ErrPeerNotFound) {
			t.Errorf("TransferLeadershipTo(unknown): got %v, want ErrPeerNotFound", err)
		}
		if err := l.TransferLeadershipTo(ctx, l.id); err != nil || !l.IsLeader() {
			t.Errorf("TransferLeadershipTo(itself): got %v (still leader: %v), want nil and no change", err, l.IsLeader())
		}
		// A non-voter that cannot catch up stays one.
		n := c.addNode(false)
		c.partition(n.id)
		if err := l.AddPeer(ctx, Peer{ID: n.id, Host: "127.0.0.1", RaftPort: int(10000 + n.id)}); err != nil {
			t.Fatal(err)
		}
		if err := l.TransferLeadershipTo(ctx, n.id); !errors.Is(err, ErrInvalidPeer) {
			t.Errorf("TransferLeadershipTo(non-voter): got %v, want ErrInvalidPeer", err)
		}

		st := l.Status()
		for _, f := range fs {
			if d, ok := st.LastContact[f.id]; !ok || d < 0 || d > 2*l.cfg.Timing.HeartbeatTimeout {
				t.Errorf("leader's last contact with follower %d: %v (known: %v), want within two heartbeat timeouts", f.id, d, ok)
			}
		}
		if _, ok := st.LastContact[l.id]; ok {
			t.Errorf("leader reports a last contact with itself")
		}
		if got := fs[0].Status().LastContact; got != nil {
			t.Errorf("follower reports last contacts %v, want none", got)
		}

		target := fs[1]
		if err := l.TransferLeadershipTo(ctx, target.id); err != nil {
			t.Fatalf("TransferLeadershipTo(%d): %v", target.id, err)
		}
		if got := l.LeaderID(); got == 0 || got == l.id {
			t.Errorf("after the transfer the old leader knows leader %d, want another node", got)
		}
		testutil.WaitFor(t, 10*time.Second, "the target to lead", target.IsLeader)
		propose(t, fs[0], "after transfer")
	})
}
