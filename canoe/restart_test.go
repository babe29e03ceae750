package canoe

import (
	"encoding/json"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe/internal/storage"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// takeSnapshot makes n snapshot now and returns the snapshot's ID and index.
func takeSnapshot(t *testing.T, n *Node) (string, uint64) {
	t.Helper()
	f := n.rt.Load().raft.Snapshot()
	if err := f.Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		t.Fatalf("open the snapshot just taken: %v", err)
	}
	rc.Close()
	return meta.ID, meta.Index
}

// startRecovered starts n, turning a panic into an error.
func startRecovered(n *Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Start panicked: %v", r)
		}
	}()
	return n.Start()
}

// TestDamagedNewestSnapshotAtStart keeps two snapshots, at about index 10
// and 210, with the log compacted between them (TrailingLogs 20), damages
// the newest one and starts a new Node on the DataDir. raft v1.7.3 rejects
// the damaged snapshot, restores the older one and then panicked in
// NewRaft looking for the compacted entries after it: Start must instead
// return an error that names the damaged snapshot and says how to recover.
// That holds for a flipped byte (the store's CRC catches it before raft
// runs) and for a snapshot whose checksum matches but which the FSM
// refuses (raft's panic is caught). With TrailingLogs large enough that the
// log still holds every entry after the older snapshot, Start must succeed,
// say at WARN which snapshot it skipped, and hold every entry at once.
func TestDamagedNewestSnapshotAtStart(t *testing.T) {
	for _, store := range []LogStore{LogStoreWAL, LogStoreBolt} {
		for _, tc := range []struct {
			name     string
			trailing uint64
			damage   func(t *testing.T, snap string)
			wantErr  []string // nil: Start succeeds
		}{
			{"flipped byte, log compacted past the older snapshot", 20, flipByte, []string{"CRC mismatch", "remove this node's DataDir"}},
			{"refused by the FSM, log compacted past the older snapshot", 20, unreadableWithGoodCRC, []string{"raft panicked", "remove this node's DataDir"}},
			{"flipped byte, log covers the older snapshot", 1000, flipByte, nil},
		} {
			t.Run(fmt.Sprintf("%v/%s", store, tc.name), func(t *testing.T) {
				testDamagedNewestSnapshot(t, store, tc.trailing, tc.damage, tc.wantErr)
			})
		}
	}
}

// flipByte flips one bit in the middle of the snapshot's state.bin.
func flipByte(t *testing.T, snap string) {
	state := filepath.Join(snap, "state.bin")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// unreadableWithGoodCRC overwrites the snapshot's format magic and fixes
// the CRC in its meta.json: the store opens it, the FSM refuses it.
func unreadableWithGoodCRC(t *testing.T, snap string) {
	state, metaPath := filepath.Join(snap, "state.bin"), filepath.Join(snap, "meta.json")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "XXXX")
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(mb, &meta); err != nil {
		t.Fatal(err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(b)
	meta["CRC"] = h.Sum(nil) // []byte: base64, as raft writes it
	if mb, err = json.Marshal(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaPath, mb, 0o600); err != nil {
		t.Fatal(err)
	}
}

func testDamagedNewestSnapshot(t *testing.T, store LogStore, trailing uint64, damage func(*testing.T, string), wantErr []string) {
	dir := filepath.Join(t.TempDir(), "node")
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, func(cfg *NodeConfig) {
			cfg.DataDir = dir
			cfg.LogStore = store
			cfg.SnapshotConfig = &SnapshotConfig{Interval: -1, MinCommittedLogs: trailing, MaxRetainedSnapshots: 2}
		})
		n := c.leader()
		for i := range 10 {
			propose(t, n, fmt.Sprintf("e%03d", i))
		}
		_, olderIndex := takeSnapshot(t, n)
		for i := 10; i < 210; i++ {
			propose(t, n, fmt.Sprintf("e%03d", i))
		}
		newestID, newestIndex := takeSnapshot(t, n)
		first, err := n.rt.Load().stores.Logs.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		if compacted := first > olderIndex+1; compacted != (wantErr != nil) {
			t.Fatalf("log starts at %d, older snapshot at %d, newest at %d: compacted past the older one is %v, want %v",
				first, olderIndex, newestIndex, compacted, wantErr != nil)
		}
		t.Logf("snapshots at %d and %d, log from %d", olderIndex, newestIndex, first)
		want := c.fsm(n.id).list()
		cfg := n.cfg
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		snap := filepath.Join(dir, "snapshots", newestID)
		damage(t, snap)

		var logs testutil.SyncBuffer
		fsm := &testFSM{}
		cfg.ID, cfg.FSM, cfg.BootstrapNode = 0, fsm, false
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "canoe", Level: hclog.Warn, Output: io.MultiWriter(&logs, testWriter{t})})
		again, err := NewNode(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = startRecovered(again)
		if wantErr != nil {
			if err == nil {
				again.Stop()
				t.Fatalf("Start with a damaged newest snapshot and the log compacted past the older one succeeded, want an error")
			}
			for _, s := range append(wantErr, snap) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Start failed with %q, want an error containing %q", err, s)
				}
			}
			t.Logf("Start: %v", err)
			return
		}
		if err != nil {
			t.Fatalf("Start with a damaged newest snapshot and a log that covers the older one: %v", err)
		}
		c.mu.Lock()
		c.nodes[again.id], c.fsms[again.id] = again, fsm
		c.mu.Unlock()
		if !strings.Contains(logs.String(), snap) {
			t.Errorf("Start logged nothing at WARN naming the damaged snapshot %s; its log:\n%s", snap, logs.String())
		}
		if got := fsm.list(); !slices.Equal(got, want) {
			t.Errorf("right after Start the FSM holds %d entries, want the %d it held before", len(got), len(want))
		}
		testutil.WaitFor(t, 10*time.Second, "the restarted node to lead", again.IsLeader)
		propose(t, again, "after")
		if got := fsm.list(); !slices.Equal(got, append(want, "after")) {
			t.Errorf("after a new proposal the FSM holds %d entries, want %d", len(got), len(want)+1)
		}
	})
}

// TestAppliedRecordAheadOfLog: an applied index on record past the end of
// the raft log (a bit flip in it, or a log that lost its tail) makes a
// restart replay the whole log, say so at WARN, and start; the record is
// then corrected to the FSM's index.
func TestAppliedRecordAheadOfLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, func(cfg *NodeConfig) { cfg.DataDir = dir })
		n := c.leader()
		for i := range 5 {
			propose(t, n, fmt.Sprintf("e%d", i))
		}
		want := c.fsm(n.id).list()
		cfg := n.cfg
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		const bogus = 1<<40 + 3
		st, err := storage.Open(dir, storage.Auto, DefaultSnapshotConfig.policy(), hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SaveApplied(bogus); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		var logs testutil.SyncBuffer
		fsm := &testFSM{}
		cfg.ID, cfg.FSM, cfg.BootstrapNode = 0, fsm, false
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "canoe", Level: hclog.Warn, Output: io.MultiWriter(&logs, testWriter{t})})
		again, err := NewNode(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := startRecovered(again); err != nil {
			t.Fatalf("Start with the applied index on record past the log: %v", err)
		}
		c.mu.Lock()
		c.nodes[again.id], c.fsms[again.id] = again, fsm
		c.mu.Unlock()
		if got := fsm.list(); !slices.Equal(got, want) {
			t.Errorf("right after Start the FSM holds %q, want %q", got, want)
		}
		if !strings.Contains(logs.String(), "the raft log ends before the applied index recorded") {
			t.Errorf("Start said nothing at WARN about the record past the log; its log:\n%s", logs.String())
		}
		testutil.WaitFor(t, 10*time.Second, "the applied index on record to be corrected", func() bool {
			got, err := again.rt.Load().stores.LoadApplied()
			return err == nil && got == again.fsm.AppliedIndex()
		})
	})
}
