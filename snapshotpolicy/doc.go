// Package snapshotpolicy maps canoe's snapshot policy onto hashicorp/raft.
//
// A Config states the policy in canoe's terms: how often to check for a
// snapshot (Interval), how many new log entries make one worthwhile
// (MinCommittedLogs), and how many snapshot files to keep
// (MaxRetainedSnapshots). Zero fields mean the defaults of Default, so the
// zero Config is a usable policy, and a negative Interval turns automatic
// snapshots off.
//
// Apply writes the policy into a raft.Config before raft.NewRaft, Reloadable
// does the same for a raft.ReloadableConfig so the policy can change at
// runtime with (*raft.Raft).ReloadConfig, and NewStore opens the snapshot
// store that keeps Retain snapshots:
//
//	pol := snapshotpolicy.Config{MinCommittedLogs: 1024}
//	if err := pol.Validate(); err != nil {
//		return err
//	}
//	rc := raft.DefaultConfig()
//	pol.Apply(rc)
//	snaps, err := snapshotpolicy.NewStore(dataDir, pol, logger)
//
// How raft uses the three knobs (raft v1.7.3): every SnapshotInterval,
// jittered to a random period in [Interval, 2*Interval], raft takes a
// snapshot if at least SnapshotThreshold entries were appended since the
// last one; it then drops the log up to TrailingLogs entries before the
// snapshot's index. raft has no off switch, so disabling sets the threshold to
// math.MaxUint64. A snapshot requested explicitly with (*raft.Raft).Snapshot
// ignores the threshold and is still taken when automatic snapshots are off.
package snapshotpolicy
