package httpconfig

import (
	"bytes"
	"context"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// PathLeaderTransfer is the route that hands leadership over.
const PathLeaderTransfer = "/leader/transfer"

// LeaderTransfer serves POST /leader/transfer.
type LeaderTransfer interface {
	// TransferLeadership hands leadership to voter to (0: any other voter
	// the node picks) and returns the new leader's id once the old leader
	// has stepped down (0 if no new leader is known yet when ctx ends).
	// Only the leader serves it: others return a *NotLeaderError. Errors
	// should match this package's sentinels: ErrPeerNotFound for a to that
	// is not a member, ErrInvalid for a non-voter or when there is no other
	// voter. It is called once per valid request and must return once ctx
	// ends.
	TransferLeadership(ctx context.Context, to uint64) (leader uint64, err error)
}

// transferRequest is the optional body of POST /leader/transfer.
type transferRequest struct {
	ID uint64 `json:"id"`
}

// TransferResponse answers POST /leader/transfer.
type TransferResponse struct {
	// LeaderID is the new leader, 0 if not known yet.
	LeaderID uint64 `json:"leader_id"`
}

// decodeTransfer reads a POST /leader/transfer body: empty (any voter) or
// {"id": N} (0 also means any voter). Errors are as for decodeAddPeer.
func decodeTransfer(body []byte) (uint64, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, nil
	}
	var req transferRequest
	if err := decodeJSON(bytes.NewReader(body), &req); err != nil {
		return 0, err
	}
	return req.ID, nil
}

func (h *handler) transferLeader(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	b, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	to, err := decodeTransfer(b)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := h.context(r)
	defer cancel()
	leader, err := h.cfg.Leadership.TransferLeadership(ctx, to)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, TransferResponse{LeaderID: leader})
}

// TransferLeadership calls POST /leader/transfer on the leader: it hands
// leadership to voter to (0: any other voter) and returns the new leader's
// id (0 if not known yet). A follower answers ErrNotLeader with the
// leader's id in the *StatusError.
func (c *Client) TransferLeadership(ctx context.Context, base string, to uint64) (uint64, error) {
	var in any
	if to != 0 {
		in = transferRequest{ID: to}
	}
	var out TransferResponse
	err := c.doJSON(ctx, http.MethodPost, base, PathLeaderTransfer, in, &out)
	return out.LeaderID, err
}
