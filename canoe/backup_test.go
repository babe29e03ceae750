package canoe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/canoe/internal/backup"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// streamTestFSM is testFSM with streamed snapshots; its []byte methods
// fail, so that a test notices canoe calling them.
type streamTestFSM struct {
	*testFSM
	streams, restores int // guarded by testFSM.mu
}

func (f *streamTestFSM) Snapshot() (SnapshotData, error) {
	return nil, errors.New("Snapshot called on a StreamingFSM")
}

func (f *streamTestFSM) Restore(SnapshotData) error {
	return errors.New("Restore called on a StreamingFSM")
}

func (f *streamTestFSM) SnapshotStream() (func(io.Writer) error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams++
	captured := slices.Clone(f.entries)
	return func(w io.Writer) error { return json.NewEncoder(w).Encode(captured) }, nil
}

func (f *streamTestFSM) RestoreStream(r io.Reader) error {
	var entries []string
	if err := json.NewDecoder(r).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores++
	f.entries = entries
	return nil
}

func (f *streamTestFSM) counts() (streams, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams, f.restores
}

func streaming(cfg *NodeConfig) { cfg.FSM = &streamTestFSM{testFSM: cfg.FSM.(*testFSM)} }

func proposeAll(t *testing.T, n *Node, vals ...string) {
	t.Helper()
	for _, v := range vals {
		if err := n.ProposeContext(context.Background(), []byte(v)); err != nil {
			t.Fatalf("propose %q: %v", v, err)
		}
	}
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	return out
}

// TestBackupAndRestore: a backup taken on a follower holds every proposal
// committed before it; restored on the leader it replaces every node's
// state, which survives each node's restart (the applied index recorded
// before the restore must not make a restarted node replay the log on top
// of the restored state); the cluster goes on serving.
func TestBackupAndRestore(t *testing.T) {
	for name, tweak := range map[string]func(*NodeConfig){"[]byte": nil, "streaming": streaming} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 3, tweak)
				ctx := context.Background()
				l := c.leader()
				before := seq("a", 0, 20)
				proposeAll(t, l, before...)
				var buf bytes.Buffer
				f := c.followers()[0]
				index, err := f.Backup(ctx, &buf)
				if err != nil {
					t.Fatalf("Backup on a follower: %v", err)
				}
				info, err := InspectBackup(bytes.NewReader(buf.Bytes()))
				if err != nil {
					t.Fatalf("InspectBackup: %v", err)
				}
				if info.Index != index || info.ClusterID != DefaultClusterID || info.NodeID != f.id || len(info.Members) != 3 || info.Size != int64(buf.Len()) {
					t.Fatalf("InspectBackup: %+v; want index %d, cluster %d, node %d, 3 members, size %d", info, index, DefaultClusterID, f.id, buf.Len())
				}
				proposeAll(t, l, seq("b", 0, 30)...) // moves the applied index well past the backup's
				appliedBefore := l.Status().AppliedIndex
				if err := l.RestoreBackup(ctx, bytes.NewReader(buf.Bytes())); err != nil {
					t.Fatalf("RestoreBackup: %v", err)
				}
				if got := c.waitConverged(len(before)); !slices.Equal(got, before) {
					t.Fatalf("after the restore the FSMs hold %q, want %q", got, before)
				}
				if ai := l.Status().AppliedIndex; ai <= appliedBefore {
					t.Fatalf("applied index %d after the restore, want above %d (the restore's index is after the log)", ai, appliedBefore)
				}
				proposeAll(t, c.leader(), "after")
				want := append(slices.Clone(before), "after")
				c.waitConverged(len(want))
				for _, n := range c.running() {
					if err := n.Stop(); err != nil {
						t.Fatal(err)
					}
					if err := n.Start(); err != nil {
						t.Fatal(err)
					}
					c.fsm(n.id).mu.Lock()
					got := slices.Clone(c.fsm(n.id).entries)
					c.fsm(n.id).mu.Unlock()
					if !slices.Equal(got, want) {
						t.Fatalf("node %d restarted with %q, want %q", n.id, got, want)
					}
				}
				if got := c.waitConverged(len(want)); !slices.Equal(got, want) {
					t.Fatalf("after the restarts: %q, want %q", got, want)
				}
				if tweak != nil {
					for _, n := range c.running() {
						if _, restores := c.node(n.id).cfg.FSM.(*streamTestFSM).counts(); restores == 0 {
							t.Fatalf("node %d never called RestoreStream", n.id)
						}
					}
				}
			})
		})
	}
}

// TestRestoreRefusesBadBackups: damaged, truncated and foreign backups are
// refused with an error that says what is wrong, nothing changes, and the
// cluster keeps serving.
func TestRestoreRefusesBadBackups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, func(cfg *NodeConfig) { cfg.MaxBackupBytes = 4096 })
		ctx := context.Background()
		l := c.leader()
		proposeAll(t, l, "x", "y")
		var buf bytes.Buffer
		if _, err := l.Backup(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		good := buf.Bytes()
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 1
		foreign := rewriteCluster(t, good, 7)
		var big bytes.Buffer
		state := `["` + strings.Repeat("z", 5000) + `"]`
		if _, err := backup.Write(&big, backup.Header{ClusterID: DefaultClusterID, MembershipSize: 2, StateSize: int64(len(state))},
			[]byte("{}"), strings.NewReader(state)); err != nil {
			t.Fatal(err)
		}
		proposeAll(t, l, "z")
		for _, tt := range []struct {
			name, want string
			data       []byte
		}{
			{"truncated", "truncated", good[:len(good)-40]},
			{"bit flip", "checksum mismatch", flipped},
			{"other cluster", "backup of cluster 7, and this is cluster 256", foreign},
			{"not a backup", "not a canoe backup", []byte("hello, world: not a backup at all")},
			{"over MaxBackupBytes", "over the limit of 4096 bytes", big.Bytes()},
		} {
			for _, n := range c.running() {
				err := n.RestoreBackup(ctx, bytes.NewReader(tt.data))
				if !errors.Is(err, ErrInvalidBackup) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("%s on node %d: got %v, want ErrInvalidBackup saying %q", tt.name, n.id, err, tt.want)
				}
			}
		}
		if got := c.waitConverged(3); !slices.Equal(got, []string{"x", "y", "z"}) {
			t.Fatalf("FSMs hold %q after refused restores", got)
		}
		proposeAll(t, c.followers()[0], "served")
		c.waitConverged(4)
	})
}

// rewriteCluster returns the backup b with another cluster ID and a
// matching checksum: a valid backup of another cluster.
func rewriteCluster(t *testing.T, b []byte, cluster uint64) []byte {
	t.Helper()
	br, err := backup.NewReader(bytes.NewReader(b), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	h := br.Header()
	h.ClusterID = cluster
	var out bytes.Buffer
	if _, err := backup.Write(&out, h, br.Membership(), br.State()); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRestoreOnFollowerNeedsHTTP: a follower without the HTTP API (this
// in-memory cluster) says at once to restore on the leader.
func TestRestoreOnFollowerNeedsHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 2, nil)
		var buf bytes.Buffer
		if _, err := c.leader().Backup(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
		err := c.followers()[0].RestoreBackup(context.Background(), &buf)
		if want := fmt.Sprintf("to the leader (%d)", c.leader().id); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error naming the leader (%q)", err, want)
		}
	})
}

// TestStreamingSnapshotInstall: with a StreamingFSM, the cluster
// snapshots and truncates its log, a new node gets the state by a
// snapshot install, and canoe never calls the []byte methods.
func TestStreamingSnapshotInstall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, func(cfg *NodeConfig) {
			streaming(cfg)
			cfg.SnapshotConfig = &SnapshotConfig{Interval: 50 * time.Millisecond, MinCommittedLogs: 16}
		})
		vals := seq("s", 0, 100)
		proposeAll(t, c.leader(), vals...)
		c.waitConverged(len(vals))
		testutil.WaitFor(t, 10*time.Second, "every node to take a snapshot", func() bool {
			for _, n := range c.running() {
				if s, _ := n.cfg.FSM.(*streamTestFSM).counts(); s == 0 {
					return false
				}
			}
			return true
		})
		n := c.join()
		c.waitVoters(4)
		c.waitConverged(len(vals))
		if _, restores := n.cfg.FSM.(*streamTestFSM).counts(); restores == 0 {
			t.Fatal("the new node caught up without installing a snapshot")
		}
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		if got := c.fsm(n.id).list(); !slices.Equal(got, vals) {
			t.Fatalf("restarted node holds %d entries, want %d", len(got), len(vals))
		}
	})
}

// TestRestoreFrom: a node founds a cluster from a backup with the backup's
// state before Start returns, and others join it; a damaged backup, or one
// of another cluster, fails Start and leaves no state; a restart does not
// use RestoreFrom.
func TestRestoreFrom(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		src := newTestCluster(t, 1, nil)
		proposeAll(t, src.leader(), "p", "q")
		var buf bytes.Buffer
		if _, err := src.leader().Backup(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
		src.stopAll()
		good, bad := filepath.Join(dir, "good.backup"), filepath.Join(dir, "bad.backup")
		if err := os.WriteFile(good, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bad, buf.Bytes()[:buf.Len()-1], 0o600); err != nil {
			t.Fatal(err)
		}
		foreign := filepath.Join(dir, "foreign.backup")
		if err := os.WriteFile(foreign, rewriteCluster(t, buf.Bytes(), 7), 0o600); err != nil {
			t.Fatal(err)
		}

		restoreFrom := bad
		c := &testCluster{t: t, nodes: map[uint64]*Node{}, fsms: map[uint64]*testFSM{}, trans: map[uint64]*raft.InmemTransport{},
			nextID: 100, tweak: func(cfg *NodeConfig) {
				if cfg.BootstrapNode {
					cfg.DataDir, cfg.RestoreFrom = filepath.Join(dir, "founder"), restoreFrom
				}
			}}
		t.Cleanup(c.stopAll)
		if _, err := c.startNode(true); !errors.Is(err, ErrInvalidBackup) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("Start from a truncated backup: got %v, want ErrInvalidBackup saying truncated", err)
		}
		restoreFrom = foreign
		if _, err := c.startNode(true); !errors.Is(err, ErrInvalidBackup) || !strings.Contains(err.Error(), "backup of cluster 7, and this node founds cluster 256") {
			t.Fatalf("Start from a backup of another cluster: got %v, want ErrInvalidBackup naming both clusters", err)
		}
		restoreFrom = good
		n := c.addNode(true)
		if got := c.fsm(n.id).list(); !slices.Equal(got, []string{"p", "q"}) {
			t.Fatalf("Start returned with the FSM holding %q, want the backup's [p q]", got)
		}
		testutil.WaitFor(t, 10*time.Second, "the founder to lead", n.IsLeader)
		proposeAll(t, n, "r")
		c.join()
		c.waitVoters(2)
		c.waitConverged(3)

		// A restart, with RestoreFrom naming a damaged file: not used.
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		cfg := n.cfg
		fsm := &testFSM{}
		cfg.FSM, cfg.RestoreFrom = fsm, bad
		again, err := NewNode(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.heal(n.id) // Stop closed its transport
		if err := again.Start(); err != nil {
			t.Fatalf("restart: %v", err)
		}
		c.mu.Lock()
		c.nodes[n.id], c.fsms[n.id] = again, fsm
		c.mu.Unlock()
		if got := fsm.list(); !slices.Equal(got, []string{"p", "q", "r"}) {
			t.Fatalf("restarted with %q, want [p q r]", got)
		}
	})
}

// TestBackupOnRestartedIdleFollower: a follower restarted from a snapshot
// of its whole log backs up what it holds, with no new entry since. (Raft's
// own Snapshot refuses then: its FSM goroutine has applied nothing since
// the restart.)
func TestBackupOnRestartedIdleFollower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, nil)
		proposeAll(t, c.leader(), "a", "b", "c")
		c.waitConverged(3)
		f := c.followers()[0]
		if _, index := takeSnapshot(t, f); index != f.Status().CommitIndex {
			t.Fatalf("snapshot at %d, want the commit index %d", index, f.Status().CommitIndex)
		}
		if err := f.Stop(); err != nil {
			t.Fatal(err)
		}
		c.heal(f.id) // Stop closed its transport
		if err := f.Start(); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := f.Backup(context.Background(), &buf); err != nil {
			t.Fatalf("Backup on a restarted idle follower: %v", err)
		}
		br, err := backup.NewReader(&buf, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		state, err := io.ReadAll(br.State())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := json.Unmarshal(state, &got); err != nil || !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("backup holds %q (%v), want [a b c]", state, err)
		}
	})
}

// TestInspectBackupRefuses: InspectBackup, which needs no node, refuses a
// truncated or bit-flipped backup, and one whose checksum holds but whose
// membership record is not canoe's JSON, with errors matching
// ErrInvalidBackup that say what is wrong; a backup of any cluster is
// described.
func TestInspectBackupRefuses(t *testing.T) {
	write := func(cluster uint64, membership string) []byte {
		var buf bytes.Buffer
		h := backup.Header{ClusterID: cluster, Index: 9, Term: 2, MembershipSize: int64(len(membership)), StateSize: 5}
		if _, err := backup.Write(&buf, h, []byte(membership), strings.NewReader("state")); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := write(7, `{"peers":[{"id":3,"host":"h","raft_port":1}],"servers":[{"id":3,"voter":true}]}`)
	info, err := InspectBackup(bytes.NewReader(good))
	if err != nil || info.ClusterID != 7 || info.Index != 9 || info.StateSize != 5 || info.Size != int64(len(good)) ||
		!slices.Equal(info.Members, []Peer{{ID: 3, Host: "h", RaftPort: 1, Voter: true}}) {
		t.Fatalf("InspectBackup: %+v, %v", info, err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-40] ^= 0x04
	for _, tt := range []struct {
		name, want string
		data       []byte
	}{
		{"truncated", "truncated", good[:len(good)-1]},
		{"bit flip", "checksum mismatch", flipped},
		{"garbage membership", "membership record is not canoe's JSON", write(7, "\x00garbage")},
		{"garbage", "not a canoe backup", []byte("garbage, not a backup")},
	} {
		if _, err := InspectBackup(bytes.NewReader(tt.data)); !errors.Is(err, ErrInvalidBackup) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want ErrInvalidBackup saying %q", tt.name, err, tt.want)
		}
	}
}

// TestInspectBackupReadReplica: a read replica in the backup's membership
// is described as one (NonVoter), as Node.Peers does, not as a member
// catching up; a voter never is, whatever its record says.
func TestInspectBackupReadReplica(t *testing.T) {
	m := `{"peers":[{"id":1,"host":"a","raft_port":1},{"id":2,"host":"b","raft_port":2,"nonvoter":true},{"id":3,"host":"c","raft_port":3,"nonvoter":true}],` +
		`"servers":[{"id":1,"voter":true},{"id":2,"voter":false},{"id":3,"voter":true}]}`
	var buf bytes.Buffer
	if _, err := backup.Write(&buf, backup.Header{ClusterID: 1, MembershipSize: int64(len(m))}, []byte(m), strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	info, err := InspectBackup(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		{ID: 1, Host: "a", RaftPort: 1, Voter: true},
		{ID: 2, Host: "b", RaftPort: 2, NonVoter: true},
		{ID: 3, Host: "c", RaftPort: 3, Voter: true},
	}
	if !slices.Equal(info.Members, want) {
		t.Fatalf("members %+v, want %+v", info.Members, want)
	}
}
