package httpconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
)

// addPeerRequest is the body of POST /peers. Suffrage is not part of it:
// new members always join as non-voters, and the node promotes them unless
// NonVoter asks for a read replica. Servers that predate "nonvoter" refuse
// a request with it (unknown field), so clients send it only when true.
type addPeerRequest struct {
	ID         uint64 `json:"id"`
	Host       string `json:"host,omitempty"`
	RaftPort   int    `json:"raft_port"`
	ConfigPort int    `json:"config_port"`
	GossipPort int    `json:"gossip_port,omitempty"`
	ClusterID  uint64 `json:"cluster_id,omitempty"`
	NonVoter   bool   `json:"nonvoter,omitempty"`
}

// idRequest is the body of DELETE /peers and POST /peers/promote.
type idRequest struct {
	ID uint64 `json:"id"`
}

// decodeAddPeer reads and validates a POST /peers body. Every error matches
// ErrInvalid, or ErrTooLarge when body is an http.MaxBytesReader past its
// limit. An accepted request has a nonzero id, raft and config ports in
// 1..65535, a gossip port of 0 or in 1..65535, and an empty or valid host.
func decodeAddPeer(body io.Reader) (Peer, error) {
	var req addPeerRequest
	if err := decodeJSON(body, &req); err != nil {
		return Peer{}, err
	}
	var problems []string
	if req.ID == 0 {
		problems = append(problems, `"id" is required and must be nonzero`)
	}
	problems = checkPort(problems, "raft_port", req.RaftPort, true)
	problems = checkPort(problems, "config_port", req.ConfigPort, true)
	problems = checkPort(problems, "gossip_port", req.GossipPort, false)
	if req.Host != "" && !validHost(req.Host) {
		problems = append(problems, fmt.Sprintf(`"host" %q is not a host name or IP address`, truncate(req.Host, 64)))
	}
	if len(problems) > 0 {
		return Peer{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return Peer{
		ID:         req.ID,
		Host:       req.Host,
		RaftPort:   req.RaftPort,
		ConfigPort: req.ConfigPort,
		GossipPort: req.GossipPort,
		ClusterID:  req.ClusterID,
		NonVoter:   req.NonVoter,
	}, nil
}

// decodeIDRequest reads and validates a DELETE /peers or POST
// /peers/promote body; the returned id is nonzero. Errors are as for
// decodeAddPeer.
func decodeIDRequest(body io.Reader) (uint64, error) {
	var req idRequest
	if err := decodeJSON(body, &req); err != nil {
		return 0, err
	}
	if req.ID == 0 {
		return 0, fmt.Errorf(`%w: "id" is required and must be nonzero`, ErrInvalid)
	}
	return req.ID, nil
}

// decodeJSON decodes exactly one JSON value from body into v: unknown
// fields and anything but white space after the value are errors.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
		return nil
	case err == nil:
		return fmt.Errorf("%w: unexpected data after the JSON object", ErrInvalid)
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err)
		}
		return fmt.Errorf("%w: unexpected data after the JSON object", ErrInvalid)
	}
}

// jsonError turns an encoding/json error into one matching ErrInvalid (or
// ErrTooLarge) with a message for humans.
func jsonError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("%w: body over the limit of %d bytes", ErrTooLarge, mbe.Limit)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: empty body, want a JSON object", ErrInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated JSON", ErrInvalid)
	case errors.As(err, &se):
		return fmt.Errorf("%w: malformed JSON at byte %d: %v", ErrInvalid, se.Offset, se)
	case errors.As(err, &ute):
		if ute.Field != "" {
			return fmt.Errorf("%w: field %q must be %s, not %s", ErrInvalid, ute.Field, ute.Type, ute.Value)
		}
		return fmt.Errorf("%w: want a JSON object, not %s", ErrInvalid, ute.Value)
	}
	// Unknown fields and the rest: encoding/json's text is clear enough.
	return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
}

// checkPort appends a problem if port is outside 1..65535 (or, when not
// required, is neither 0 nor in 1..65535).
func checkPort(problems []string, name string, port int, required bool) []string {
	switch {
	case port == 0 && required:
		return append(problems, fmt.Sprintf("%q is required", name))
	case port == 0:
		return problems
	case port < 1 || port > 65535:
		return append(problems, fmt.Sprintf("%q %d is outside 1..65535", name, port))
	}
	return problems
}

// validHost reports whether h is an IP address (without brackets) or a DNS
// name made of letters, digits, '-' and '_' labels separated by dots.
func validHost(h string) bool {
	if len(h) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
