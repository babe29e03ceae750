package canoe

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is: the errors canoe returns wrap
// them with detail.
var (
	// ErrorRemovedFromCluster is returned by a node that the cluster removed.
	// The node has stopped itself; its state stays in DataDir.
	ErrorRemovedFromCluster = errors.New("canoe: node was removed from the cluster")

	// ErrNotRunning is returned by operations on a node that is not started
	// or already stopped.
	ErrNotRunning = errors.New("canoe: node is not running")

	// ErrNoLeader is returned when no leader emerged before the deadline.
	ErrNoLeader = errors.New("canoe: no leader")

	// ErrNotLeader is returned by operations only the leader can do, when
	// this node is not the leader. The error is a *NotLeaderError.
	ErrNotLeader = errors.New("canoe: not the leader")

	// ErrTimeout is returned when the deadline passed while an operation was
	// in progress. For a proposal, the outcome is then unknown: it may still
	// commit. When the caller's context ended it, the error also matches
	// that context's error (context.DeadlineExceeded or context.Canceled).
	ErrTimeout = errors.New("canoe: timed out")

	// ErrUnknownOutcome is returned when the leader was lost after a proposal
	// was handed to it: the proposal may or may not commit. Do not retry
	// blindly unless the proposal is idempotent.
	ErrUnknownOutcome = errors.New("canoe: outcome unknown")

	// ErrInvalidConfig is returned by NewNode for a bad NodeConfig.
	ErrInvalidConfig = errors.New("canoe: invalid config")

	// ErrInvalidPeer is returned for a member the operation cannot take: a
	// Peer that cannot be added (zero ID, bad ports or host), the last voter
	// to remove, a non-voter (or no other voter) to hand leadership to, or
	// invalid members for a recovery.
	ErrInvalidPeer = errors.New("canoe: invalid peer")

	// ErrPeerNotFound is returned when removing or promoting a node that is
	// not a member, or handing leadership to one.
	ErrPeerNotFound = errors.New("canoe: no such peer")

	// ErrEmptyProposal is returned by Propose for nil or empty data.
	ErrEmptyProposal = errors.New("canoe: empty proposal")

	// ErrInvalidBackup is returned for a backup that RestoreBackup,
	// InspectBackup or RestoreFrom refuses: not a canoe backup, of an
	// unknown format version, truncated, damaged (its checksum does not
	// match), larger than MaxBackupBytes, or of another cluster. The error
	// says which; nothing was changed.
	ErrInvalidBackup = errors.New("canoe: invalid backup")

	// ErrInvalidProposal is returned for a proposal over MaxProposalSize, or
	// one the leader refused as malformed; nothing was committed.
	ErrInvalidProposal = errors.New("canoe: invalid proposal")

	// ErrResultUnavailable is returned by ProposeResult for a proposal that
	// committed and whose effect this node's FSM holds, but whose result is
	// gone: the node was so far behind that it installed a snapshot past
	// the proposal instead of applying it.
	ErrResultUnavailable = errors.New("canoe: the proposal committed, but its result is not available on this node")
)

// NotLeaderError says which node is the leader, when it is known.
type NotLeaderError struct {
	LeaderID uint64 // 0: no leader known
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == 0 {
		return "canoe: not the leader (no leader known)"
	}
	return fmt.Sprintf("canoe: not the leader (leader is %d)", e.LeaderID)
}

// Is makes a *NotLeaderError match ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// ApplyError is the error the FSM returned for a proposal (or a panic in it,
// recovered so that the node keeps serving). Proposals that fail are still
// committed, and fail the same way, on every node. Err is the error this
// node's own FSM returned, on the leader and on a follower alike, so
// errors.Is and errors.As match the FSM's own error values.
type ApplyError struct {
	Index uint64 // the raft log index of the entry that held the proposal
	Err   error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("canoe: FSM.Apply of entry %d: %v", e.Index, e.Err)
}

// Unwrap returns the FSM's error.
func (e *ApplyError) Unwrap() error { return e.Err }

func isApplyError(err error) bool {
	var ae *ApplyError
	return errors.As(err, &ae)
}
