package canoe

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/canoe/internal/storage"
)

// A node restarted on its DataDir must come back with its FSM where it was,
// but raft restores only the newest snapshot at NewRaft and replays the log
// after it once a leader tells it the commit index (hashicorp/raft#549),
// seconds later. So canoe records in the stable store how far the FSM has
// applied the log, and replays the log up to there before Start returns.

const (
	// appliedRecordInterval is the least time between two records of the
	// applied index while it moves; an idle node records nothing. A crash
	// loses at most this much of the record: a restart then replays less
	// before Start returns, and raft applies the rest once a leader speaks.
	appliedRecordInterval = 250 * time.Millisecond
	// replayBatch is the most log entries replayApplied hands the FSM at once.
	replayBatch = 64
)

// newRaft is raft.NewRaft, with a panic in it returned as an error: raft
// v1.7.3 panics in NewRaft, on the calling goroutine, when a log entry it
// needs after the snapshot it restored is missing (storage.Stores.CheckStart
// rules out the cases it can see first: this catches, for one, a newer
// snapshot whose checksum holds but that the FSM refused). No raft
// goroutine has started when it panics there. The error names the
// snapshots newer than the one the FSM holds: raft skipped them.
func (n *Node) newRaft(rc *raft.Config, st *storage.Stores, logs raft.LogStore, trans raft.Transport) (r *raft.Raft, err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		r = nil
		var skipped []string
		if metas, lerr := st.Snaps.List(); lerr == nil {
			for _, m := range metas {
				if m.Index > n.fsm.AppliedIndex() {
					skipped = append(skipped, st.SnapshotPath(m.ID))
				}
			}
		}
		err = fmt.Errorf("raft panicked restoring its state from DataDir %q: %v (snapshots raft could not restore: %s); %s",
			n.cfg.DataDir, p, strings.Join(skipped, ", "), storage.RecoverHint)
	}()
	return raft.NewRaft(rc, n.fsm, logs, st.Stable, st.Snaps, trans)
}

// replayApplied applies the committed log entries between the snapshot raft
// restored and the applied index recorded before the node stopped or
// crashed, so that the FSM holds at least what it held then. Raft, already
// running, may apply the same entries meanwhile: the adapter applies each
// once, and replayApplied skips what raft has applied (and may have
// compacted away). It returns the recorded index.
func (n *Node) replayApplied(st *storage.Stores) (uint64, error) {
	recorded, err := st.LoadApplied()
	if err != nil {
		return 0, err
	}
	from := n.fsm.AppliedIndex() + 1
	if recorded < from {
		return recorded, nil
	}
	to := recorded
	last, err := st.Logs.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("canoe: replay the log: %w", err)
	}
	if last < to {
		n.logger.Warn("the raft log ends before the applied index recorded before the restart; replaying what it holds, a leader sends the rest",
			"recorded", recorded, "last_index", last)
		to = last
	}
	for lo := from; ; {
		lo = max(lo, n.fsm.AppliedIndex()+1)
		if lo > to {
			break
		}
		hi := min(lo+replayBatch-1, to)
		batch := make([]*raft.Log, 0, hi-lo+1)
		for i := lo; i <= hi; i++ {
			l := new(raft.Log)
			if err := st.Logs.GetLog(i, l); err != nil {
				if n.fsm.AppliedIndex() >= i {
					break // raft applied it meanwhile, and compacted it away
				}
				return 0, fmt.Errorf("canoe: replay log entry %d of the %d applied before the restart: %w", i, recorded, err)
			}
			batch = append(batch, l)
		}
		n.fsm.ReplayCommitted(batch)
		lo += uint64(len(batch))
	}
	n.logger.Info("replayed the log up to where the FSM was before the restart", "from", from, "to", to)
	return recorded, nil
}

// recordApplied records the FSM's applied index in the stable store, at
// most every appliedRecordInterval while it moves, until Stop (which
// records the final one). recorded is the index on record at Start.
func (n *Node) recordApplied(rt *run, recorded uint64) {
	failing := false
	for {
		advanced := n.fsm.Advanced()
		if n.fsm.AppliedIndex() == recorded {
			select {
			case <-rt.ctx.Done():
				return
			case <-advanced:
			}
		}
		t := time.NewTimer(appliedRecordInterval)
		select {
		case <-rt.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		index := n.fsm.AppliedIndex()
		if err := rt.stores.SaveApplied(index); err != nil {
			if !failing {
				n.logger.Warn("could not record the applied index; a restart may replay less of the log before Start returns", "error", err)
			}
			failing = true
			continue
		}
		failing = false
		recorded = index
		n.logger.Trace("recorded the applied index", "index", index)
	}
}
