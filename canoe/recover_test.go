package canoe

import (
	"bytes"
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

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/canoe/internal/storage"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// lostQuorum leaves the state a loss of quorum leaves on a survivor: a
// cluster of two nodes with DataDirs under dir commits 60 entries (a
// snapshot after the first 30), then a third node joins (so the last
// entries are configuration changes, and the applied index each node
// records at Stop is past its last command), and every node stops. It
// returns the cluster, node 1's configuration for a new Node on its
// DataDir (ID 0: read back from DataDir) and the entries its FSM held.
func lostQuorum(t *testing.T, dir string, store LogStore) (*testCluster, NodeConfig, []string) {
	t.Helper()
	c := newTestCluster(t, 2, func(cfg *NodeConfig) {
		cfg.DataDir = filepath.Join(dir, fmt.Sprint(cfg.ID))
		cfg.LogStore = store
	})
	for i := range 30 {
		propose(t, c.running()[i%2], fmt.Sprintf("e%02d", i))
	}
	takeSnapshot(t, c.leader())
	for i := 30; i < 60; i++ {
		propose(t, c.running()[i%2], fmt.Sprintf("e%02d", i))
	}
	c.join()
	c.waitVoters(3)
	want := c.waitConverged(60)
	cfg := c.node(1).cfg
	for _, n := range c.running() {
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Minute) // see stopAll
	cfg.ID, cfg.BootstrapNode, cfg.FSM = 0, false, nil
	return c, cfg, want
}

// recoverySnapshot is the snapshot a recovery wrote in a stopped node's
// DataDir: the one whose configuration sits at index 1.
type recoverySnapshot struct {
	Index, Term uint64
	Servers     []raft.Server
	Data        []byte
	Applied     uint64 // the applied index on record
	LogLast     uint64 // the raft log's last index
}

func readRecoverySnapshot(t *testing.T, dir string) recoverySnapshot {
	t.Helper()
	st, err := storage.Open(dir, storage.Auto, DefaultSnapshotConfig.policy(), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	metas, err := st.Snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if m.ConfigurationIndex != 1 {
			continue
		}
		_, rc, err := st.Snaps.Open(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		applied, err := st.LoadApplied()
		if err != nil {
			t.Fatal(err)
		}
		last, err := st.Logs.LastIndex()
		if err != nil {
			t.Fatal(err)
		}
		return recoverySnapshot{Index: m.Index, Term: m.Term, Servers: m.Configuration.Servers, Data: data, Applied: applied, LogLast: last}
	}
	t.Fatalf("no recovery snapshot (configuration at index 1) in %s: %v", dir, metas)
	return recoverySnapshot{}
}

// lastCommand returns the index of the last command in dir's raft log
// and the applied index on record.
func lastCommand(t *testing.T, dir string) (command, applied uint64) {
	t.Helper()
	st, err := storage.Open(dir, storage.Auto, DefaultSnapshotConfig.policy(), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	last, err := st.Logs.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	for i := last; i > 0; i-- {
		var l raft.Log
		if err := st.Logs.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Type == raft.LogCommand {
			command = i
			break
		}
	}
	applied, err = st.LoadApplied()
	if err != nil {
		t.Fatal(err)
	}
	return command, applied
}

// TestRecoverClusterAfterQuorumLoss loses two of three nodes for good and
// recovers the survivor both ways, on two copies of its DataDir:
// RecoverCluster (the Go function, with the FSM) and ScheduleRecovery
// followed by Start (the operator command's way). Both must leave the
// same recovery snapshot (index, term, configuration, state), keep every
// entry the survivor held, and let it lead alone at once; the first then
// takes writes and two new nodes join and catch up.
func TestRecoverClusterAfterQuorumLoss(t *testing.T) {
	for _, store := range []LogStore{LogStoreWAL, LogStoreBolt} {
		t.Run(store.String(), func(t *testing.T) {
			root := t.TempDir()
			synctest.Test(t, func(t *testing.T) {
				c, cfg, want := lostQuorum(t, filepath.Join(root, "nodes"), store)
				command, applied := lastCommand(t, cfg.DataDir)
				if applied <= command {
					t.Fatalf("the survivor's applied index on record is %d and its last command %d: the scenario must end with configuration entries", applied, command)
				}
				copyDir := filepath.Join(root, "copy")
				if err := os.CopyFS(copyDir, os.DirFS(cfg.DataDir)); err != nil {
					t.Fatal(err)
				}
				members := []Peer{{ID: 1, Host: "127.0.0.1", RaftPort: 10001}}

				// The Go function: at once, with the FSM.
				fsm := &testFSM{}
				goCfg := cfg
				goCfg.FSM = fsm
				if err := RecoverCluster(&goCfg, members); err != nil {
					t.Fatalf("RecoverCluster: %v", err)
				}
				if got := fsm.list(); !slices.Equal(got, want) {
					t.Errorf("RecoverCluster left the FSM with %d entries, want the %d the survivor held", len(got), len(want))
				}
				byGo := readRecoverySnapshot(t, cfg.DataDir)

				// The request, carried out by Start.
				if err := ScheduleRecovery(copyDir, members); err != nil {
					t.Fatalf("ScheduleRecovery: %v", err)
				}
				if _, err := os.Stat(RecoveryFile(copyDir)); err != nil {
					t.Fatalf("ScheduleRecovery wrote no request: %v", err)
				}
				var logs testutil.SyncBuffer
				startCfg := cfg
				startCfg.DataDir, startCfg.FSM = copyDir, &testFSM{}
				startCfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "canoe", Level: hclog.Warn, Output: io.MultiWriter(&logs, testWriter{t})})
				n, err := NewNode(&startCfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Start(); err != nil {
					t.Fatalf("Start with a recovery request: %v", err)
				}
				if got := startCfg.FSM.(*testFSM).list(); !slices.Equal(got, want) {
					t.Errorf("right after Start the recovered node holds %d entries, want %d", len(got), len(want))
				}
				if _, err := os.Stat(RecoveryFile(copyDir)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the recovery request is still there after Start (%v)", err)
				}
				if !strings.Contains(logs.String(), "recovered the cluster") {
					t.Errorf("Start logged nothing at WARN about the recovery; its log:\n%s", logs.String())
				}
				testutil.WaitFor(t, 10*time.Second, "the node recovered at Start to lead", n.IsLeader)
				if err := n.Stop(); err != nil {
					t.Fatal(err)
				}
				byStart := readRecoverySnapshot(t, copyDir)

				t.Logf("recovery snapshot at index %d term %d, %d bytes; applied on record before %d, last command %d", byGo.Index, byGo.Term, len(byGo.Data), applied, command)
				if byGo.Index != byStart.Index || byGo.Term != byStart.Term || !slices.Equal(byGo.Servers, byStart.Servers) || !bytes.Equal(byGo.Data, byStart.Data) {
					t.Errorf("the two recoveries differ:\n RecoverCluster:         index %d term %d servers %v state %q\n ScheduleRecovery+Start: index %d term %d servers %v state %q",
						byGo.Index, byGo.Term, byGo.Servers, byGo.Data, byStart.Index, byStart.Term, byStart.Servers, byStart.Data)
				}
				wantServers := []raft.Server{{Suffrage: raft.Voter, ID: "1", Address: "127.0.0.1:10001"}}
				if !slices.Equal(byGo.Servers, wantServers) {
					t.Errorf("recovered configuration %v, want %v", byGo.Servers, wantServers)
				}
				if byGo.Index < applied || byGo.Applied != byGo.Index || byGo.LogLast > byGo.Index {
					t.Errorf("after RecoverCluster: snapshot index %d, applied on record %d (before: %d), log ends at %d: want the snapshot to cover the log and the record to be the snapshot's index",
						byGo.Index, byGo.Applied, applied, byGo.LogLast)
				}

				// The survivor restarts, leads alone, takes writes; two new
				// nodes join.
				fsm = &testFSM{}
				runCfg := cfg
				runCfg.FSM = fsm
				n, err = NewNode(&runCfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Start(); err != nil {
					t.Fatalf("Start after RecoverCluster: %v", err)
				}
				c.mu.Lock()
				c.nodes[1], c.fsms[1] = n, fsm
				c.mu.Unlock()
				if got := fsm.list(); !slices.Equal(got, want) {
					t.Errorf("right after Start the recovered node holds %d entries, want %d", len(got), len(want))
				}
				testutil.WaitFor(t, 10*time.Second, "the recovered node to lead", n.IsLeader)
				if ps := n.Peers(); len(ps) != 1 || ps[0].ID != 1 || !ps[0].Voter {
					t.Errorf("recovered node's members: %+v, want node 1 alone, a voter", ps)
				}
				propose(t, n, "after recovery")
				c.join()
				c.join()
				c.waitVoters(3)
				got := c.waitConverged(len(want) + 1)
				if !slices.Equal(got, append(slices.Clone(want), "after recovery")) {
					t.Errorf("after two nodes joined the FSMs hold %q, want the survivor's entries and one more", got)
				}
				for _, id := range []uint64{2, 3} {
					if !n.fsm.Removed(id) {
						t.Errorf("lost node %d is not recorded as removed: discovery could add it back", id)
					}
				}
			})
		})
	}
}

// TestRecoverClusterTwice runs RecoverCluster again on a recovered
// DataDir, as after a crash between its last steps (or a Start that
// failed to delete the request): the state must be the same.
func TestRecoverClusterTwice(t *testing.T) {
	root := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		_, cfg, want := lostQuorum(t, filepath.Join(root, "nodes"), LogStoreWAL)
		members := []Peer{{ID: 1, Host: "127.0.0.1", RaftPort: 10001}}
		var snaps []recoverySnapshot
		for range 2 {
			fsm := &testFSM{}
			c := cfg
			c.FSM = fsm
			if err := RecoverCluster(&c, members); err != nil {
				t.Fatalf("RecoverCluster: %v", err)
			}
			if got := fsm.list(); !slices.Equal(got, want) {
				t.Errorf("RecoverCluster left the FSM with %d entries, want %d", len(got), len(want))
			}
			snaps = append(snaps, readRecoverySnapshot(t, cfg.DataDir))
			// Snapshot names hold the time in milliseconds; in the bubble
			// it stands still.
			time.Sleep(time.Millisecond)
		}
		a, b := snaps[0], snaps[1]
		if a.Index != b.Index || a.Term != b.Term || !slices.Equal(a.Servers, b.Servers) || !bytes.Equal(a.Data, b.Data) || a.Applied != b.Applied {
			t.Errorf("a second recovery changed the state: %+v, then %+v", a, b)
		}
	})
}

// TestRecoverClusterRefusals checks that every bad request is refused with
// a clear error and changes nothing: the node then starts as the member
// of the old three-node cluster it was.
func TestRecoverClusterRefusals(t *testing.T) {
	root := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		_, cfg, _ := lostQuorum(t, filepath.Join(root, "nodes"), LogStoreWAL)
		cfg.FSM = &testFSM{}
		self := Peer{ID: 1, Host: "127.0.0.1", RaftPort: 10001}
		other := Peer{ID: 7, Host: "127.0.0.1", RaftPort: 10007}
		for _, tc := range []struct {
			name     string
			members  []Peer
			want     error
			contains string
		}{
			{"no members", nil, ErrInvalidPeer, "at least this node"},
			{"without this node", []Peer{other}, ErrInvalidPeer, "not among the members"},
			{"zero port", []Peer{self, {ID: 7, Host: "127.0.0.1"}}, ErrInvalidPeer, "raft port 0"},
			{"empty host", []Peer{self, {ID: 7, RaftPort: 10007}}, ErrInvalidPeer, "host is empty"},
			{"bad host", []Peer{self, {ID: 7, Host: "a b", RaftPort: 10007}}, ErrInvalidPeer, "neither an IP address nor a host name"},
			{"duplicate id", []Peer{self, self}, ErrInvalidPeer, "listed twice"},
			{"duplicate address", []Peer{self, {ID: 7, Host: "127.0.0.1", RaftPort: 10001}}, ErrInvalidPeer, "same raft address"},
			{"this node elsewhere", []Peer{{ID: 1, Host: "127.0.0.1", RaftPort: 9999}}, ErrInvalidPeer, "it advertises 127.0.0.1:10001"},
		} {
			err := RecoverCluster(&cfg, tc.members)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("%s: RecoverCluster: got %v, want %v containing %q", tc.name, err, tc.want, tc.contains)
			}
		}
		for _, tc := range []struct {
			name     string
			members  []Peer
			contains string
		}{
			{"without this node", []Peer{other}, "not among the members"},
			{"this node at another port", []Peer{{ID: 1, Host: "127.0.0.1", RaftPort: 9999}}, "raft port 10001"},
		} {
			err := ScheduleRecovery(cfg.DataDir, tc.members)
			if !errors.Is(err, ErrInvalidPeer) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("%s: ScheduleRecovery: got %v, want ErrInvalidPeer containing %q", tc.name, err, tc.contains)
			}
		}
		if _, err := os.Stat(RecoveryFile(cfg.DataDir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused ScheduleRecovery left a request behind (%v)", err)
		}

		empty := filepath.Join(root, "empty")
		noLog := filepath.Join(root, "nolog")
		if err := os.MkdirAll(noLog, 0o750); err != nil {
			t.Fatal(err)
		}
		ident, _ := os.ReadFile(filepath.Join(cfg.DataDir, "canoe.json"))
		if err := os.WriteFile(filepath.Join(noLog, "canoe.json"), ident, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{empty, noLog} {
			c := cfg
			c.DataDir = dir
			if err := RecoverCluster(&c, []Peer{self}); err == nil || !strings.Contains(err.Error(), "holds no node state") {
				t.Errorf("RecoverCluster on %s: got %v, want an error saying it holds no node state", dir, err)
			}
			if err := ScheduleRecovery(dir, []Peer{self}); err == nil || !strings.Contains(err.Error(), "holds no node state") {
				t.Errorf("ScheduleRecovery on %s: got %v, want an error saying it holds no node state", dir, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 1 {
				t.Errorf("a refused recovery wrote to %s: %v", dir, entries)
			}
		}
		inMem := cfg
		inMem.DataDir = ""
		if err := RecoverCluster(&inMem, []Peer{self}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("RecoverCluster without a DataDir: got %v, want ErrInvalidConfig", err)
		}

		// A bad request in DataDir makes Start fail, naming the file, and
		// stays; without it the node starts as before.
		path := RecoveryFile(cfg.DataDir)
		for _, tc := range []struct{ content, contains string }{
			{"{not json", "not valid JSON"},
			{`{"version": 9, "members": []}`, "version 9"},
			{`{"version": 1, "members": [{"id": 7, "host": "127.0.0.1", "raft_port": 10007}]}`, "not among the members"},
		} {
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			n, err := NewNode(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = n.Start()
			if err == nil {
				n.Stop()
				t.Fatalf("Start with recovery request %s succeeded, want an error", tc.content)
			}
			if !strings.Contains(err.Error(), tc.contains) || !strings.Contains(err.Error(), path) {
				t.Errorf("Start with request %s: got %v, want an error naming %s and containing %q", tc.content, err, path, tc.contains)
			}
			if _, serr := os.Stat(path); serr != nil {
				t.Errorf("a refused recovery request is gone: %v", serr)
			}
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		n, err := NewNode(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatalf("Start after the refusals: %v", err)
		}
		if got := len(n.Peers()); got != 3 {
			t.Errorf("after refused recoveries the node sees %d members, want the 3 it had", got)
		}
		// A running node's DataDir is refused, by both.
		if err := RecoverCluster(&cfg, []Peer{self}); !errors.Is(err, ErrDataDirInUse) {
			t.Errorf("RecoverCluster on a running node's DataDir: got %v, want ErrDataDirInUse", err)
		}
		if err := ScheduleRecovery(cfg.DataDir, []Peer{self}); !errors.Is(err, ErrDataDirInUse) {
			t.Errorf("ScheduleRecovery on a running node's DataDir: got %v, want ErrDataDirInUse", err)
		}
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseMembers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Peer
		err  string
	}{
		{"1@10.0.0.1:7000", []Peer{{ID: 1, Host: "10.0.0.1", RaftPort: 7000, Voter: true}}, ""},
		{" 1@10.0.0.1:7000 , 2@node-b.internal:7000", []Peer{{ID: 1, Host: "10.0.0.1", RaftPort: 7000, Voter: true}, {ID: 2, Host: "node-b.internal", RaftPort: 7000, Voter: true}}, ""},
		{"18446744073709551615@[::1]:7000", []Peer{{ID: 1<<64 - 1, Host: "::1", RaftPort: 7000, Voter: true}}, ""},
		{"", nil, "is empty"},
		{"1@10.0.0.1:7000,", nil, "is empty"},
		{"10.0.0.1:7000", nil, "has no @"},
		{"0@10.0.0.1:7000", nil, "not a nonzero decimal"},
		{"x@10.0.0.1:7000", nil, "not a nonzero decimal"},
		{"-1@10.0.0.1:7000", nil, "not a nonzero decimal"},
		{"1@10.0.0.1", nil, "not HOST:PORT"},
		{"1@10.0.0.1:0", nil, "not HOST:PORT"},
		{"1@10.0.0.1:70000", nil, "not HOST:PORT"},
		{"1@:7000", nil, "neither an IP address"},
		{"1@a/b:7000", nil, "neither an IP address"},
		{"1@::1:7000", nil, "not HOST:PORT"},
	} {
		got, err := ParseMembers(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseMembers(%q): %v", tc.in, err)
		case tc.err != "" && (!errors.Is(err, ErrInvalidPeer) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseMembers(%q): got %v, want ErrInvalidPeer containing %q", tc.in, err, tc.err)
		case tc.err == "" && !slices.Equal(got, tc.want):
			t.Errorf("ParseMembers(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	// Every bad entry is reported.
	_, err := ParseMembers("x@h:1,1@h,2@h:2")
	if err == nil || !strings.Contains(err.Error(), `"x@h:1"`) || !strings.Contains(err.Error(), `"1@h"`) {
		t.Errorf("ParseMembers with two bad entries: %v, want both named", err)
	}
}

// TestRecoverClusterTwoSurvivors loses three of five nodes: the two
// survivors, each recovered with both as members, elect a leader between
// them and serve.
func TestRecoverClusterTwoSurvivors(t *testing.T) {
	root := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 5, func(cfg *NodeConfig) {
			cfg.DataDir = filepath.Join(root, fmt.Sprint(cfg.ID))
		})
		for i := range 20 {
			propose(t, c.running()[i%5], fmt.Sprintf("e%02d", i))
		}
		want := c.waitConverged(20)
		cfgs := map[uint64]NodeConfig{1: c.node(1).cfg, 2: c.node(2).cfg}
		for _, n := range c.running() {
			if err := n.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Minute) // see stopAll
		members := []Peer{{ID: 1, Host: "127.0.0.1", RaftPort: 10001}, {ID: 2, Host: "127.0.0.1", RaftPort: 10002}}
		for id, cfg := range cfgs {
			cfg.ID, cfg.BootstrapNode, cfg.FSM = 0, false, &testFSM{}
			if err := RecoverCluster(&cfg, members); err != nil {
				t.Fatalf("RecoverCluster on node %d: %v", id, err)
			}
			fsm := &testFSM{}
			cfg.FSM = fsm
			n, err := NewNode(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.heal(id)
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			c.nodes[id], c.fsms[id] = n, fsm
			c.mu.Unlock()
		}
		l := c.leader()
		if l.id != 1 && l.id != 2 {
			t.Fatalf("leader %d, want a survivor", l.id)
		}
		if ps := l.Peers(); len(ps) != 2 || !ps[0].Voter || !ps[1].Voter {
			t.Errorf("members after the recovery: %+v, want the two survivors, voters", ps)
		}
		propose(t, c.node(3-l.id), "after")
		if got := c.waitConverged(21); !slices.Equal(got, append(slices.Clone(want), "after")) {
			t.Errorf("FSMs hold %q, want the 20 entries and one more", got)
		}
	})
}

// TestRecoveryMembersSelfAddress: this node's entry must be at the address
// it advertises: AdvertiseAddr (a host name, or the address it resolves
// to, which raft's configuration holds), else BindAddr, and its RaftPort.
func TestRecoveryMembersSelfAddress(t *testing.T) {
	for _, tc := range []struct {
		advertise, bind, host string
		port                  int
		ok                    bool
	}{
		{"", "10.1.2.3", "10.1.2.3", 7000, true},
		{"", "10.1.2.3", "10.1.2.4", 7000, false},
		{"", "10.1.2.3", "10.1.2.3", 7001, false},
		{"10.9.9.9", "0.0.0.0", "10.9.9.9", 7000, true},
		{"localhost", "", "localhost", 7000, true},
		{"localhost", "", "127.0.0.1", 7000, true},
		{"localhost", "", "10.1.2.3", 7000, false},
	} {
		n, err := NewNode(&NodeConfig{ID: 5, FSM: &testFSM{}, AdvertiseAddr: tc.advertise, BindAddr: tc.bind, RaftPort: 7000})
		if err != nil {
			t.Fatal(err)
		}
		err = n.checkRecoveryMembers([]Peer{{ID: 5, Host: tc.host, RaftPort: tc.port}})
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalidPeer) {
			t.Errorf("AdvertiseAddr %q, BindAddr %q, entry %s:%d: got %v, want ok %v", tc.advertise, tc.bind, tc.host, tc.port, err, tc.ok)
		}
	}
}

// FuzzParseMembers: no input makes ParseMembers panic, and what it accepts
// are valid peers that print back to a list it reads the same.
func FuzzParseMembers(f *testing.F) {
	for _, s := range []string{"1@10.0.0.1:7000", "1@h:1, 2@[::1]:2", "", "x@", "1@a:b:c", "0@h:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		peers, err := ParseMembers(s)
		if err != nil {
			return
		}
		var parts []string
		for _, p := range peers {
			if err := p.validate(); err != nil || !validHost(p.Host) {
				t.Fatalf("ParseMembers(%q) accepted %+v: %v", s, p, err)
			}
			parts = append(parts, fmt.Sprintf("%d@%s", p.ID, p.raftAddr()))
		}
		again, err := ParseMembers(strings.Join(parts, ","))
		if err != nil || !slices.Equal(again, peers) {
			t.Fatalf("ParseMembers(%q) = %+v, but its printed form reads as %+v, %v", s, peers, again, err)
		}
	})
}
