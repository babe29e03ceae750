package snapshotpolicy

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// DefaultInterval is the Interval used when Config.Interval is 0.
	DefaultInterval = 2 * time.Minute
	// DefaultMinCommittedLogs is the MinCommittedLogs used when
	// Config.MinCommittedLogs is 0.
	DefaultMinCommittedLogs uint64 = 8192
	// DefaultMaxRetainedSnapshots is the MaxRetainedSnapshots used when
	// Config.MaxRetainedSnapshots is 0.
	DefaultMaxRetainedSnapshots = 2

	// MinInterval is the smallest positive Interval raft accepts
	// (raft.ValidateConfig rejects a SnapshotInterval below 5ms).
	MinInterval = 5 * time.Millisecond

	// DisabledInterval is the SnapshotInterval written to raft when automatic
	// snapshots are disabled. raft needs a positive period; with the
	// threshold at math.MaxUint64 each check is a no-op, so a long period
	// only keeps the wasted wake-ups rare.
	DisabledInterval = 24 * time.Hour
)

// Config is canoe's snapshot policy. The zero value means every default (see
// Default). Use Validate to check it, WithDefaults to fill it in, and Apply
// or Reloadable to hand it to raft. Methods never modify the receiver.
type Config struct {
	// Interval is how often raft checks whether to take a snapshot; raft
	// jitters each wait to a random period in [Interval, 2*Interval] so a
	// cluster's nodes do not snapshot together. 0 means DefaultInterval
	// (2m). A negative Interval disables automatic snapshots (explicit
	// snapshot requests still work). A positive Interval must be at least
	// MinInterval (5ms).
	Interval time.Duration

	// MinCommittedLogs is the least number of log entries appended since the
	// last snapshot before raft takes a new one at a check; fewer are cheaper
	// to replay than to snapshot. It is also the number of entries kept in
	// the log after a snapshot truncates it (raft's TrailingLogs), so a
	// follower that lags by at most this many entries catches up from the log,
	// and one further behind is sent the snapshot instead. 0 means
	// DefaultMinCommittedLogs (8192).
	MinCommittedLogs uint64

	// MaxRetainedSnapshots is how many snapshots the file store keeps; older
	// ones are deleted after each new snapshot completes. 0 means
	// DefaultMaxRetainedSnapshots (2). It must not be negative. The in-memory
	// store always keeps exactly one.
	MaxRetainedSnapshots int
}

// Default returns the default policy: check every 2 minutes, snapshot after
// 8192 new entries, keep 2 snapshots.
func Default() Config {
	return Config{
		Interval:             DefaultInterval,
		MinCommittedLogs:     DefaultMinCommittedLogs,
		MaxRetainedSnapshots: DefaultMaxRetainedSnapshots,
	}
}

// Disabled reports whether automatic snapshots are off (Interval < 0).
func (c Config) Disabled() bool {
	return c.Interval < 0
}

// Validate reports every problem with c at once, joined with errors.Join;
// each problem matches ErrInvalidConfig. It returns nil for a valid Config,
// including the zero Config. Zero fields are valid (they mean defaults).
// Validate never modifies c.
func (c Config) Validate() error {
	var errs []error
	if c.Interval > 0 && c.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("%w: Interval %v is below raft's minimum of %v (use a negative Interval to disable automatic snapshots)",
			ErrInvalidConfig, c.Interval, MinInterval))
	}
	if c.MaxRetainedSnapshots < 0 {
		errs = append(errs, fmt.Errorf("%w: MaxRetainedSnapshots is %d, must be >= 0 (0 means the default of %d)",
			ErrInvalidConfig, c.MaxRetainedSnapshots, DefaultMaxRetainedSnapshots))
	}
	return errors.Join(errs...)
}

// WithDefaults returns a copy of c with every zero field replaced by its
// default. A negative Interval (disabled) is kept as is. c is not modified.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.MinCommittedLogs == 0 {
		c.MinCommittedLogs = DefaultMinCommittedLogs
	}
	if c.MaxRetainedSnapshots == 0 {
		c.MaxRetainedSnapshots = DefaultMaxRetainedSnapshots
	}
	return c
}

// Retain returns the number of snapshots the file store keeps: the defaulted
// MaxRetainedSnapshots, and never less than 1 (raft's minimum), even for an
// invalid negative value.
func (c Config) Retain() int {
	return max(c.WithDefaults().MaxRetainedSnapshots, 1)
}

// raftValues returns the SnapshotInterval, SnapshotThreshold and
// TrailingLogs raft should use for c, after defaults.
func (c Config) raftValues() (interval time.Duration, threshold, trailing uint64) {
	d := c.WithDefaults()
	if d.Disabled() {
		return DisabledInterval, math.MaxUint64, d.MinCommittedLogs
	}
	return d.Interval, d.MinCommittedLogs, d.MinCommittedLogs
}

// Apply writes the defaulted policy into rc's SnapshotInterval,
// SnapshotThreshold and TrailingLogs, leaving every other field alone. When
// automatic snapshots are disabled it sets SnapshotThreshold to
// math.MaxUint64 and SnapshotInterval to DisabledInterval. Call Validate
// first: Apply cannot fail, and passes an Interval below MinInterval through
// for raft.NewRaft to reject. Apply panics if rc is nil.
func (c Config) Apply(rc *raft.Config) {
	rc.SnapshotInterval, rc.SnapshotThreshold, rc.TrailingLogs = c.raftValues()
}

// Reloadable returns cur with SnapshotInterval, SnapshotThreshold and
// TrailingLogs set as Apply would set them, and its other fields (the
// heartbeat and election timeouts) unchanged. Pass cur from
// (*raft.Raft).ReloadableConfig and the result to (*raft.Raft).ReloadConfig to
// change the policy of a running node; raft validates it there. A new
// TrailingLogs takes effect at the next snapshot.
func (c Config) Reloadable(cur raft.ReloadableConfig) raft.ReloadableConfig {
	cur.SnapshotInterval, cur.SnapshotThreshold, cur.TrailingLogs = c.raftValues()
	return cur
}
