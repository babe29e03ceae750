package snapshotpolicy_test

import (
	"fmt"
	"time"

	"github.com/canoe-raft/canoe/snapshotpolicy"
	"github.com/hashicorp/raft"
)

func ExampleConfig_Apply() {
	pol := snapshotpolicy.Config{Interval: 30 * time.Second, MinCommittedLogs: 1024}
	if err := pol.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	rc := raft.DefaultConfig()
	pol.Apply(rc)
	fmt.Println(rc.SnapshotInterval, rc.SnapshotThreshold, rc.TrailingLogs, pol.Retain())

	off := snapshotpolicy.Config{Interval: -1}
	off.Apply(rc)
	fmt.Println(rc.SnapshotInterval, rc.SnapshotThreshold == ^uint64(0))

	bad := snapshotpolicy.Config{Interval: time.Millisecond, MaxRetainedSnapshots: -1}
	fmt.Println(bad.Validate())
	// Output:
	// 30s 1024 1024 2
	// 24h0m0s true
	// snapshotpolicy: invalid config: Interval 1ms is below raft's minimum of 5ms (use a negative Interval to disable automatic snapshots)
	// snapshotpolicy: invalid config: MaxRetainedSnapshots is -1, must be >= 0 (0 means the default of 2)
}
