package httpconfig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. The node returns them (wrapped with %w as it likes) from
// the interfaces in this package, the server maps them to HTTP statuses with
// errors.Is, and the client returns a *StatusError that matches the sentinel
// of its status code. context.DeadlineExceeded maps to 504 the same way.
var (
	// ErrInvalid is a malformed or semantically invalid request (400).
	ErrInvalid = errors.New("httpconfig: invalid request")
	// ErrUnauthorized is a request that is not properly signed, or does not
	// carry the metrics token where that is accepted (401).
	ErrUnauthorized = errors.New("httpconfig: unauthorized")
	// ErrPeerNotFound is a peer id that is not a member (404).
	ErrPeerNotFound = errors.New("httpconfig: peer not found")
	// ErrConflict is a change that contradicts the current membership, for
	// example an id already used by a member at another address (409).
	ErrConflict = errors.New("httpconfig: conflict")
	// ErrRemoved is returned by a node that was removed from the cluster (410).
	ErrRemoved = errors.New("httpconfig: node removed from cluster")
	// ErrTooLarge is a request body over the configured limit (413).
	ErrTooLarge = errors.New("httpconfig: request too large")
	// ErrNotLeader is an operation that only the leader serves, sent to a
	// node that is not the leader (421 Misdirected Request). Return a
	// *NotLeaderError to tell the caller who the leader is.
	ErrNotLeader = errors.New("httpconfig: not the leader")
	// ErrNoLeader means the cluster has no known leader right now (503).
	ErrNoLeader = errors.New("httpconfig: no leader")
	// ErrUnexpectedAnswer is a 2xx answer that the Client cannot decode:
	// the server is most likely not a canoe node. The error quotes the
	// start of the body.
	ErrUnexpectedAnswer = errors.New("httpconfig: unexpected answer (not a canoe API?)")
)

// NotLeaderError is an ErrNotLeader that names the current leader.
// LeaderID 0 means the leader is unknown. The server puts LeaderID into the
// 421 answer's body as "leader_id", and the client copies it into
// StatusError.LeaderID.
type NotLeaderError struct {
	LeaderID uint64
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == 0 {
		return ErrNotLeader.Error()
	}
	return fmt.Sprintf("%s (leader is %d)", ErrNotLeader.Error(), e.LeaderID)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// StatusError is a non-2xx answer received by the Client. errors.Is matches
// it against the sentinel of its Code (400 ErrInvalid, 401 ErrUnauthorized,
// 404 ErrPeerNotFound, 409 ErrConflict, 410 ErrRemoved, 413 ErrTooLarge,
// 421 ErrNotLeader, 503 ErrNoLeader, 504 context.DeadlineExceeded); other
// codes match no sentinel. Note that 404 is also the answer for an unknown
// path, so a server without a route also matches ErrPeerNotFound.
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// Message is the server's "error" text, or the start of the body if it
	// was not a JSON error, or the status text if the body was empty.
	Message string
	// LeaderID is the leader the server named in a 421 answer, 0 if none.
	LeaderID uint64
	// Foreign reports that the body was not the JSON error object that
	// canoe's API always sends ({"error": ...}): the answer most likely
	// comes from another server, or a proxy in front of the node.
	Foreign bool
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("httpconfig: server answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Unwrap returns the sentinel for e.Code, or nil if the code has none.
func (e *StatusError) Unwrap() error { return sentinelFor(e.Code) }

// Is reports whether target is the sentinel for e.Code.
func (e *StatusError) Is(target error) bool {
	s := sentinelFor(e.Code)
	return s != nil && s == target
}

// sentinelFor returns the sentinel error that an HTTP status code stands for.
func sentinelFor(code int) error {
	switch code {
	case http.StatusBadRequest:
		return ErrInvalid
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusNotFound:
		return ErrPeerNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusGone:
		return ErrRemoved
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusMisdirectedRequest:
		return ErrNotLeader
	case http.StatusServiceUnavailable:
		return ErrNoLeader
	case http.StatusGatewayTimeout:
		return context.DeadlineExceeded
	}
	return nil
}

// statusFor returns the HTTP status code the server answers err with.
func statusFor(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrPeerNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrRemoved):
		return http.StatusGone
	case errors.Is(err, ErrTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNotLeader):
		return http.StatusMisdirectedRequest
	case errors.Is(err, ErrNoLeader):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}
