package adapter

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
)

// replayLog returns a log as raft stores it: configurations, commands, and
// the no-ops and barriers raft never hands the FSM, ending on a no-op.
func replayLog(n int) (logs []*raft.Log, commands []string) {
	conf := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: ServerID(1), Address: "x:1", Suffrage: raft.Voter}}})
	for i := 1; i <= n; i++ {
		l := &raft.Log{Index: uint64(i), Term: 1}
		switch {
		case i == 1 || i%17 == 0:
			l.Type, l.Data = raft.LogConfiguration, conf
		case i == 2 || i%11 == 0 || i == n:
			l.Type = raft.LogNoop
		case i%13 == 0:
			l.Type = raft.LogBarrier
		default:
			v := fmt.Sprintf("c%03d", i)
			l.Type, l.Data = raft.LogCommand, EncodeProposal([]byte(v))
			commands = append(commands, v)
		}
		logs = append(logs, l)
	}
	return logs, commands
}

// raftDelivers hands logs to a.ApplyBatch as raft's FSM goroutine does:
// in batches, LogCommand and LogConfiguration entries only.
func raftDelivers(a *Adapter, logs []*raft.Log, batch int) {
	for lo := 0; lo < len(logs); lo += batch {
		var send []*raft.Log
		for _, l := range logs[lo:min(lo+batch, len(logs))] {
			if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
				send = append(send, l)
			}
		}
		if len(send) > 0 {
			a.ApplyBatch(send)
		}
	}
}

// TestReplayCommittedAppliesEachEntryOnce replays a prefix of the log (as
// Start does, up to the recorded applied index) while raft delivers the
// whole log (as it does once a leader tells it the commit index), both
// before, after and concurrently with the replay: every command and every
// configuration reaches the FSM exactly once and in order, and no-ops and
// barriers never do. Under -race it also checks that the user's FSM is
// never called concurrently.
func TestReplayCommittedAppliesEachEntryOnce(t *testing.T) {
	logs, commands := replayLog(200)
	lastFSMEntry := logs[len(logs)-2].Index // the log ends on a no-op
	for _, order := range []string{"replay first", "raft first", "concurrent"} {
		for _, upTo := range []int{0, 1, 2, 60, 150, 199, 200} {
			t.Run(fmt.Sprintf("%s/replay %d", order, upTo), func(t *testing.T) {
				fsm := &listFSM{}
				var configs atomic.Int32
				a := New(Config{FSM: fsm, ConfigurationApplied: func([]raft.Server) { configs.Add(1) }})
				replay := func() {
					for lo := 0; lo < upTo; lo += 7 {
						a.ReplayCommitted(logs[lo:min(lo+7, upTo)])
					}
				}
				switch order {
				case "replay first":
					replay()
					raftDelivers(a, logs, 5)
				case "raft first":
					raftDelivers(a, logs, 5)
					replay()
				default:
					var wg sync.WaitGroup
					wg.Go(replay)
					wg.Go(func() { raftDelivers(a, logs, 5) })
					wg.Wait()
				}
				if !slices.Equal(fsm.items, commands) {
					t.Fatalf("FSM applied %d commands %q..., want each of the %d once, in order", len(fsm.items), fsm.items[:min(5, len(fsm.items))], len(commands))
				}
				wantConfigs := 0
				for _, l := range logs {
					if l.Type == raft.LogConfiguration {
						wantConfigs++
					}
				}
				if got := configs.Load(); got != int32(wantConfigs) {
					t.Fatalf("%d configurations applied, want %d", got, wantConfigs)
				}
				if got := a.AppliedIndex(); got != lastFSMEntry {
					t.Fatalf("AppliedIndex %d, want %d (the last entry raft hands the FSM)", got, lastFSMEntry)
				}
			})
		}
	}
}

// TestReplayCommittedSkipsWhatRaftNeverApplies: a replayed run of no-ops
// and barriers leaves the FSM and its applied index alone.
func TestReplayCommittedSkipsWhatRaftNeverApplies(t *testing.T) {
	fsm := &listFSM{}
	a := New(Config{FSM: fsm})
	a.ReplayCommitted([]*raft.Log{cmd(1, EncodeProposal([]byte("a")))})
	a.ReplayCommitted([]*raft.Log{{Index: 2, Type: raft.LogNoop}, {Index: 3, Type: raft.LogBarrier}})
	if got := a.AppliedIndex(); got != 1 {
		t.Fatalf("AppliedIndex %d after a no-op and a barrier, want 1", got)
	}
	a.ReplayCommitted([]*raft.Log{cmd(4, EncodeProposal([]byte("b")))})
	if !slices.Equal(fsm.items, []string{"a", "b"}) || a.AppliedIndex() != 4 {
		t.Fatalf("FSM holds %q at index %d, want [a b] at 4", fsm.items, a.AppliedIndex())
	}
}
