package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// appliedCounts reads a node's EntryApplied observations: how many
// proposals each log entry held, so that the state at a log index is known.
type appliedCounts struct {
	obs   *canoe.Observer
	ch    chan canoe.Observation
	count map[uint64]int // proposals per log index
}

func watchApplied(t *testing.T, n *canoe.Node) *appliedCounts {
	t.Helper()
	a := &appliedCounts{ch: make(chan canoe.Observation, 1<<16), count: map[uint64]int{}}
	a.obs = canoe.NewObserver(a.ch, func(o canoe.Observation) bool { _, ok := o.(canoe.EntryApplied); return ok })
	n.RegisterObserver(a.obs)
	t.Cleanup(func() { n.UnregisterObserver(a.obs) })
	return a
}

// proposalsUpTo returns how many proposals the entries up to index held.
// Every entry up to index must be applied already: observations are queued
// as entries are applied.
func (a *appliedCounts) proposalsUpTo(t *testing.T, index uint64) int {
	t.Helper()
	for {
		select {
		case o := <-a.ch:
			e := o.(canoe.EntryApplied)
			a.count[e.Index] = e.Count
			continue
		default:
		}
		break
	}
	if d := a.obs.Dropped(); d > 0 {
		t.Fatalf("the observer dropped %d EntryApplied observations", d)
	}
	n := 0
	for i, c := range a.count {
		if i <= index {
			n += c
		}
	}
	return n
}

// writers propose through every member until stopped, and record which
// proposals were acknowledged, and which started after a mark.
type writers struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	marked  atomic.Bool
	mu      sync.Mutex // guards acked, after
	acked   map[string]bool
	after   map[string]bool // proposals started after mark
	nAcked  atomic.Int64
	failure atomic.Value
}

func startWriters(t *testing.T, c *cluster, n int) *writers {
	w := &writers{stop: make(chan struct{}), acked: map[string]bool{}, after: map[string]bool{}}
	for g := range n {
		w.wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-w.stop:
					return
				default:
				}
				ms := c.snapshot()
				m := ms[(g+k)%len(ms)]
				v := fmt.Sprintf("w%d-%05d", g, k)
				if w.marked.Load() {
					w.mu.Lock()
					w.after[v] = true
					w.mu.Unlock()
				}
				err := propose(&m, v)
				switch {
				case err == nil:
					w.mu.Lock()
					w.acked[v] = true
					w.mu.Unlock()
					w.nAcked.Add(1)
				case errors.Is(err, canoe.ErrUnknownOutcome), errors.Is(err, canoe.ErrTimeout), errors.Is(err, canoe.ErrNoLeader):
					time.Sleep(5 * time.Millisecond) // a leader change: allowed
				default:
					w.failure.CompareAndSwap(nil, fmt.Sprintf("propose %q on %v: %v", v, &m, err))
					return
				}
			}
		})
	}
	t.Cleanup(w.halt)
	return w
}

func (w *writers) waitAcked(t *testing.T, n int64) {
	t.Helper()
	target := w.nAcked.Load() + n
	testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("%d more acknowledged writes", n), func() bool {
		if f := w.failure.Load(); f != nil {
			t.Fatal(f)
		}
		return w.nAcked.Load() >= target
	})
}

func (w *writers) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

func (w *writers) ackedSet() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.acked)
}

// restoreAgain runs restore until it succeeds, again while its error says
// the outcome is unknown or there is no leader: a leader that restores a
// large state can lose its lease on a loaded machine before the restore
// commits. Restoring a backup twice gives the same state. It returns the
// number of attempts.
func restoreAgain(t *testing.T, c *cluster, restore func() error) int {
	t.Helper()
	for try := 1; ; try++ {
		err := restore()
		var se *httpconfig.StatusError
		switch {
		case err == nil:
			return try
		case try < 5 && (errors.Is(err, canoe.ErrUnknownOutcome) || errors.Is(err, canoe.ErrNoLeader) ||
			errors.As(err, &se) && (se.Code >= 500 || se.Code == 421)):
			t.Logf("restore attempt %d: %v; restoring again", try, err)
			c.leader()
		default:
			t.Fatalf("restore: %v", err)
		}
	}
}

// waitState waits until every member in ms holds exactly want.
func waitState(t *testing.T, want []string, ms ...*member) {
	t.Helper()
	waitSameState(t, 30*time.Second, len(want), ms...)
	if got := ms[0].fsm.state().Entries; !slices.Equal(got, want) {
		t.Fatalf("FSMs hold %d entries, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

// TestBackupWhileWriting takes a backup on a follower while writers keep
// writing, then restores it into the same cluster (through another
// follower, which sends it to the leader), restarts every node, and
// founds two new 3-node clusters from it (RestoreFrom, and POST /snapshot
// on a fresh cluster): every FSM then holds exactly the state at the
// backup's index, which holds every write acknowledged before Backup was
// called and none started after it returned. On each log store, with a
// StreamingFSM on one and a []byte FSM on the other.
func TestBackupWhileWriting(t *testing.T) {
	for _, tc := range []struct {
		store     canoe.LogStore
		streaming bool
	}{{canoe.LogStoreWAL, true}, {canoe.LogStoreBolt, false}} {
		t.Run(fmt.Sprintf("%v/streaming=%v", tc.store, tc.streaming), func(t *testing.T) {
			opts := clusterOpts{streaming: tc.streaming, logStore: tc.store,
				snapshot: &canoe.SnapshotConfig{Interval: 20 * time.Millisecond, MinCommittedLogs: 64}}
			c := newCluster(t, 3, opts)
			ctx := context.Background()
			f := c.followers()[0]
			counts := watchApplied(t, f.node)
			w := startWriters(t, c, 3)
			w.waitAcked(t, 150)
			ackedBefore := w.ackedSet()
			var buf bytes.Buffer
			index, err := f.node.Backup(ctx, &buf)
			if err != nil {
				t.Fatalf("Backup on follower %v: %v", f, err)
			}
			w.marked.Store(true)
			w.waitAcked(t, 150)
			w.halt()
			waitSameState(t, 30*time.Second, -1, c.running()...)

			want := slices.Clone(f.fsm.state().Entries[:counts.proposalsUpTo(t, index)])
			in := make(map[string]bool, len(want))
			for _, v := range want {
				in[v] = true
			}
			for v := range ackedBefore {
				if !in[v] {
					t.Fatalf("write %q acknowledged before Backup was called is not in the backup", v)
				}
			}
			for v := range w.after {
				if in[v] {
					t.Fatalf("write %q started after Backup returned is in the backup", v)
				}
			}
			info, err := canoe.InspectBackup(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("InspectBackup: %v", err)
			}
			if info.Index != index || info.NodeID != f.id || len(info.Members) != 3 {
				t.Fatalf("InspectBackup: %+v, want index %d from node %v with 3 members", info, index, f)
			}
			t.Logf("backup of %d bytes at index %d holds %d of %d writes", buf.Len(), index, len(want), len(f.fsm.state().Entries))

			// The same cluster, through another follower.
			g := c.followers()[1]
			restoreAgain(t, c, func() error { return g.node.RestoreBackup(ctx, bytes.NewReader(buf.Bytes())) })
			waitState(t, want, c.running()...)
			mustPropose(t, c.leader(), "after restore")
			want = append(want, "after restore")
			waitState(t, want, c.running()...)
			// Restarts come back with the restored state, not the log
			// before it (the applied index recorded then is below the
			// restore's).
			for _, m := range c.running() {
				c.restart(m)
			}
			c.waitVoters(3)
			waitState(t, want, c.running()...)
			if tc.streaming {
				for _, m := range c.running() {
					if m.cfg.FSM.(*streamRecFSM).restores.Load() == 0 {
						t.Fatalf("node %v restarted without RestoreStream", m)
					}
				}
			}
			restored := want[:len(want)-1]

			// A new cluster founded from the backup file.
			path := filepath.Join(t.TempDir(), "cluster.backup")
			if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			c2 := &cluster{t: t, logger: newLogger(t), opts: opts}
			t.Cleanup(c2.stopAll)
			cfg := c2.config(true)
			cfg.RestoreFrom = path
			first := c2.mustStart(cfg)
			if got := first.fsm.state().Entries; !slices.Equal(got, restored) {
				t.Fatalf("a node founded from the backup returned from Start with %d entries, want %d", len(got), len(restored))
			}
			testutil.WaitFor(t, 10*time.Second, "the founder to lead", first.node.IsLeader)
			for range 2 {
				c2.mustStart(c2.config(false, first.url))
			}
			c2.waitVoters(3)
			waitState(t, restored, c2.running()...)

			// A new cluster restored over HTTP (POST /snapshot on a follower).
			c3 := newCluster(t, 3, opts)
			mustPropose(t, c3.leader(), "replaced by the restore")
			client := httpconfig.NewClient(nil, nil, canoe.DefaultClusterID)
			t.Cleanup(client.Close)
			file, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			var bi uint64
			restoreAgain(t, c3, func() error {
				if _, err := file.Seek(0, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				bi, err = client.RestoreSnapshot(ctx, c3.followers()[0].url, file)
				return err
			})
			if bi != index {
				t.Fatalf("POST /snapshot answered backup index %d, want %d", bi, index)
			}
			waitState(t, restored, c3.running()...)
		})
	}
}

// TestRestoreRefusesBadBackups: over the signed HTTP API and through the
// Go API, a truncated, bit-flipped or other-cluster backup is refused with
// an error that says what is wrong; nothing changes and the cluster keeps
// serving.
func TestRestoreRefusesBadBackups(t *testing.T) {
	secret := []byte("0123456789abcdef")
	c := newCluster(t, 3, clusterOpts{secret: secret})
	ctx := context.Background()
	for i := range 20 {
		mustPropose(t, c.leader(), fmt.Sprintf("v%02d", i))
	}
	client := httpconfig.NewClient(nil, secret, canoe.DefaultClusterID)
	t.Cleanup(client.Close)
	f := c.followers()[0]
	var good bytes.Buffer
	index, err := client.Backup(ctx, f.url, &good)
	if err != nil {
		t.Fatalf("GET /snapshot: %v", err)
	}
	if info, err := canoe.InspectBackup(bytes.NewReader(good.Bytes())); err != nil || info.Index != index {
		t.Fatalf("InspectBackup of GET /snapshot's backup: %+v, %v; want index %d", info, err, index)
	}

	other := newCluster(t, 1, clusterOpts{secret: secret, clusterID: 7})
	mustPropose(t, other.leader(), "other")
	var foreign bytes.Buffer
	if _, err := other.leader().node.Backup(ctx, &foreign); err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good.Bytes())
	flipped[len(flipped)-100] ^= 0x40
	before := c.leader().fsm.state().Entries
	for _, tt := range []struct {
		name, want string
		data       []byte
	}{
		{"truncated", "truncated", good.Bytes()[:good.Len()/2]},
		{"bit flip", "checksum mismatch", flipped},
		{"other cluster", "backup of cluster 7", foreign.Bytes()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range c.running() {
				_, err := client.RestoreSnapshot(ctx, m.url, bytes.NewReader(tt.data))
				if !errors.Is(err, httpconfig.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("POST /snapshot on %v: got %v, want 400 saying %q", m, err, tt.want)
				}
				err = m.node.RestoreBackup(ctx, bytes.NewReader(tt.data))
				if !errors.Is(err, canoe.ErrInvalidBackup) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("RestoreBackup on %v: got %v, want ErrInvalidBackup saying %q", m, err, tt.want)
				}
			}
		})
	}
	mustPropose(t, f, "still serving")
	waitState(t, append(before, "still serving"), c.running()...)
	for _, m := range c.running() {
		if staged, _ := filepath.Glob(filepath.Join(m.cfg.DataDir, ".canoe-restore-*")); len(staged) > 0 {
			t.Fatalf("refused backups left staged files on %v: %v", m, staged)
		}
	}
	// The good backup, signed, through a follower (which sends it on to
	// the leader, signed too).
	restoreAgain(t, c, func() error {
		_, err := client.RestoreSnapshot(ctx, c.followers()[0].url, bytes.NewReader(good.Bytes()))
		return err
	})
	waitState(t, before, c.running()...)
}

// TestBootstrapExpectFromBackup: of three BootstrapExpect nodes, the one
// given RestoreFrom founds the cluster from the backup at once and the
// others, seeing a member with state, wait for it to add them: one
// cluster, every FSM holding the backup's state.
func TestBootstrapExpectFromBackup(t *testing.T) {
	src := newCluster(t, 1, clusterOpts{})
	for _, v := range []string{"x", "y", "z"} {
		mustPropose(t, src.leader(), v)
	}
	var buf bytes.Buffer
	if _, err := src.leader().node.Backup(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "src.backup")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	c := expectCluster(t, 3, func(cfg *canoe.NodeConfig) {
		once.Do(func() { cfg.RestoreFrom = path })
	})
	want := memberIDs(c.leader().node)
	for _, m := range c.running() {
		if got := memberIDs(m.node); !slices.Equal(got, want) {
			t.Fatalf("node %v sees members %v, the leader %v: two clusters", m, got, want)
		}
	}
	waitState(t, []string{"x", "y", "z"}, c.running()...)
	mustPropose(t, c.followers()[0], "w")
	waitState(t, []string{"x", "y", "z", "w"}, c.running()...)
}
