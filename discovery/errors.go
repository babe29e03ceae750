package discovery

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Match them with errors.Is; the texts are for people.
var (
	// ErrInvalidConfig is wrapped by every problem New finds in a Config.
	ErrInvalidConfig = errors.New("discovery: invalid config")

	// ErrInvalidMeta is returned by Meta.Encode and DecodeMeta for metadata
	// that breaks a rule (zero ID, negative BootstrapExpect, truncated or
	// malformed bytes, unknown format version).
	ErrInvalidMeta = errors.New("discovery: invalid metadata")

	// ErrMetaTooLarge is returned by Meta.Encode when the encoding exceeds
	// MaxMetaSize bytes (memberlist's hard limit).
	ErrMetaTooLarge = errors.New("discovery: metadata too large")

	// ErrClusterMismatch is the reason a peer of another cluster is refused.
	ErrClusterMismatch = errors.New("discovery: cluster ID mismatch")

	// ErrJoinFailed is matched by every *JoinError.
	ErrJoinFailed = errors.New("discovery: join failed")

	// ErrLeft is returned by Join and UpdateMeta after Leave: memberlist
	// cannot rejoin after a leave; create a new Discovery instead.
	ErrLeft = errors.New("discovery: left the cluster")

	// ErrShutdown is returned by calls made after Shutdown.
	ErrShutdown = errors.New("discovery: shut down")
)

// JoinError reports a Join in which no seed accepted this node. It matches
// ErrJoinFailed with errors.Is and unwraps to the per-seed errors.
type JoinError struct {
	Seeds []string // the seeds that were tried
	Hint  string   // likely reason, "" when it cannot be told
	Err   error    // per-seed errors (errors.Join)
	// Refused reports that every seed was reached and turned this node
	// away: a SecretKey or ClusterID mismatch, or a connection dropped
	// without an answer, which is how a seed with another ClusterID (gossip
	// label) or key treats it. Asking again fails the same way unless a
	// seed's configuration changes; a dropped connection is also what a seed
	// overloaded or shutting down at that moment does, so a caller should
	// see a refusal twice before giving up.
	Refused bool
}

// Error implements error.
func (e *JoinError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "discovery: join %v: join failed", e.Seeds)
	if e.Hint != "" {
		b.WriteString(" (likely cause: ")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(e.Err.Error(), "\n", "; "))
	}
	return b.String()
}

// Unwrap returns the per-seed errors.
func (e *JoinError) Unwrap() error { return e.Err }

// Is reports whether target is ErrJoinFailed.
func (e *JoinError) Is(target error) bool { return target == ErrJoinFailed }

// joinHint guesses why a join of seeds failed, and whether the seeds
// refused this node (see JoinError.Refused). memberlist formats the
// underlying errors with %v, so their types are lost and only the text is
// left; the texts are memberlist v0.6.0's, and the tests of this package pin
// them. The seeds' names are left out of the match.
func joinHint(err error, seeds ...string) (hint string, refused bool) {
	if err == nil {
		return "", false
	}
	s := err.Error()
	for _, seed := range seeds {
		s = strings.ReplaceAll(s, seed, "")
	}
	s = strings.ToLower(s)
	switch {
	case strings.Contains(s, strings.ToLower(strings.TrimPrefix(ErrClusterMismatch.Error(), "discovery: "))):
		return "the seed belongs to a different cluster (ClusterID mismatch)", true
	case strings.Contains(s, "decrypt"), strings.Contains(s, "encrypt"):
		return "SecretKey mismatch (the nodes use different gossip keys, or only one has a key)", true
	case strings.Contains(s, "label"), strings.Contains(s, "eof"),
		strings.Contains(s, "closed pipe"): // EOF on an in-memory transport
		return droppedHint, true
	case strings.Contains(s, "connection reset"), strings.Contains(s, "broken pipe"):
		return droppedHint, false
	case strings.Contains(s, "connection refused"), strings.Contains(s, "no route"),
		strings.Contains(s, "no such host"), strings.Contains(s, "i/o timeout"),
		strings.Contains(s, "unreachable"):
		return "no seed reachable (not running, wrong address or port, or a firewall)", false
	}
	return "", false
}

const droppedHint = "the seed dropped the connection: it probably has a different ClusterID " +
	"(gossip label) or SecretKey"

// flatten replaces memberlist's multierror (whose text spans several lines)
// by its parts, so that errors.Join gives one line per seed.
func flatten(err error) []error {
	var multi interface{ WrappedErrors() []error }
	if errors.As(err, &multi) {
		return multi.WrappedErrors()
	}
	return []error{err}
}
