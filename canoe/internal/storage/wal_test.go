package storage

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// TestReopenHelpsKnowsRaftWALRefusals pins the raft-wal (v0.4.1) error
// texts reopenHelps matches: raft-wal returns plain fmt errors when it
// refuses a write on its own checks, and walStore must not reopen the WAL
// for them (the write would fail the same way again). If an upgrade
// rewords them, this test fails instead of the refusals silently taking
// the reopen path.
func TestReopenHelpsKnowsRaftWALRefusals(t *testing.T) {
	var logs testutil.SyncBuffer
	s, err := openWAL(filepath.Join(t.TempDir(), walDir), hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &logs}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storeRange(t, s, 1, 10)

	refusals := []struct {
		name  string
		write func() error
	}{
		{"non-monotonic append", func() error {
			return s.StoreLogs([]*raft.Log{{Index: 20, Term: 1, Type: raft.LogCommand, Data: []byte("gap")}})
		}},
		{"delete from the middle", func() error { return s.DeleteRange(4, 6) }},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			reopened := strings.Count(logs.String(), "reopened the raft log")
			err := r.write()
			if err == nil {
				t.Fatalf("raft-wal accepted the write, want a refusal")
			}
			t.Logf("raft-wal: %v", err)
			if reopenHelps(err) {
				t.Errorf("reopenHelps(%q) = true: raft-wal reworded the error that reopenHelps matches; update reopenHelps", err)
			}
			if strings.Count(logs.String(), "reopened the raft log") != reopened {
				t.Errorf("walStore reopened the WAL for a refused write; its log:\n%s", logs.String())
			}
		})
	}
	checkRange(t, s, 1, 10)

	// Failures a reopen may cure still take the reopen path.
	for _, err := range []error{syscall.ENOSPC, fmt.Errorf("write segment: %w", syscall.EIO)} {
		if !reopenHelps(err) {
			t.Errorf("reopenHelps(%q) = false, want true", err)
		}
	}
}

// TestWALStoreLogsIsIdempotent: an append whose data reached the segment
// file but that returned an error (a failed fsync, or a full disk noticed
// after the write) is found in the WAL once it is reopened, and raft, which
// still believes its last index is the one before, stores the same entries
// again. That retry must succeed, not fail as non-monotonic forever (the
// disk-full follower then never caught up). Entries already held with the
// same term are skipped; an entry held with another term is still refused.
func TestWALStoreLogsIsIdempotent(t *testing.T) {
	s, err := openWAL(filepath.Join(t.TempDir(), walDir), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storeRange(t, s, 1, 10)
	again := func(lo, hi, term uint64) error {
		var logs []*raft.Log
		for i := lo; i <= hi; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry-%d", i)})
		}
		return s.StoreLogs(logs)
	}
	if err := again(6, 10, 1); err != nil {
		t.Fatalf("storing entries 6-10 again: %v", err)
	}
	if err := again(8, 15, 1); err != nil {
		t.Fatalf("storing entries 8-15, of which 8-10 are held: %v", err)
	}
	checkRange(t, s, 1, 15)
	if err := again(14, 16, 2); err == nil {
		t.Fatal("storing entry 14 of term 2 over the held entry of term 1 succeeded; want a refusal")
	}
	checkRange(t, s, 1, 15)
}
