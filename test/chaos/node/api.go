package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/canoe-raft/canoe/canoe"
)

// opTimeout bounds one append or linearizable read.
const opTimeout = 3 * time.Second

// statusJSON is what GET /status answers.
type statusJSON struct {
	ID           uint64 `json:"id"`
	State        string `json:"state"`
	LeaderID     uint64 `json:"leader_id"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	Members      int    `json:"members"`
	Voters       int    `json:"voters"`
	// LeaderTerm is the term this node leads in, 0 if it is not the
	// leader. Two Status calls must agree (state read after the first
	// term read, same term both times), so a leader stepping down between
	// reading its state and its term is never reported as leading the
	// new term.
	LeaderTerm    uint64 `json:"leader_term"`
	Commands      uint64 `json:"commands"`
	Keys          int    `json:"keys"`
	Hash          string `json:"hash"`
	SnapsTaken    int    `json:"snapshots_taken"`
	SnapsRestored int    `json:"snapshots_restored"`
}

func newAPI(node *canoe.Node, fsm *kvFSM, ev *events) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /append", func(w http.ResponseWriter, r *http.Request) {
		key, val := r.URL.Query().Get("key"), r.URL.Query().Get("val")
		if key == "" || len(key) > maxKeyLen || len(val) > maxValLen {
			writeErr(w, http.StatusBadRequest, "bad_request", errors.New("key must be 1-256 bytes, val at most 1024"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		if err := node.ProposeContext(ctx, encodeAppend(key, val)); err != nil {
			writeCanoeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		if key == "" {
			writeErr(w, http.StatusBadRequest, "bad_request", errors.New("missing key"))
			return
		}
		if r.URL.Query().Get("linearizable") == "1" {
			ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
			defer cancel()
			if err := node.ReadBarrier(ctx); err != nil {
				writeCanoeErr(w, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"values": fsm.get(key)})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		first := node.Status()
		st := node.Status()
		var leaderTerm uint64
		if first.State == canoe.Leader && st.State == canoe.Leader && first.Term == st.Term {
			leaderTerm = st.Term
		}
		voters := 0
		for _, m := range st.Members {
			if m.Voter {
				voters++
			}
		}
		cmds, keys, hash := fsm.digest()
		taken, restored := ev.snapshotCounts()
		writeJSON(w, http.StatusOK, statusJSON{
			ID: st.ID, State: st.State.String(), LeaderID: st.LeaderID, Term: st.Term,
			CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, LastIndex: st.LastIndex,
			Members: len(st.Members), Voters: voters, LeaderTerm: leaderTerm, Commands: cmds, Keys: keys, Hash: hash,
			SnapsTaken: taken, SnapsRestored: restored,
		})
	})
	return mux
}

// errorKind names a canoe error for the client: no_leader, apply_error,
// not_running and removed mean the proposal certainly had no effect (per
// canoe's contract); timeout, unknown_outcome and error mean it may have.
func errorKind(err error) string {
	var ae *canoe.ApplyError
	switch {
	case errors.Is(err, canoe.ErrUnknownOutcome):
		return "unknown_outcome"
	case errors.Is(err, canoe.ErrNoLeader): // before timeout: it wraps ctx.Err()
		return "no_leader"
	case errors.Is(err, canoe.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &ae):
		return "apply_error"
	case errors.Is(err, canoe.ErrNotRunning):
		return "not_running"
	case errors.Is(err, canoe.ErrorRemovedFromCluster):
		return "removed"
	}
	return "error"
}

func writeCanoeErr(w http.ResponseWriter, err error) {
	writeErr(w, http.StatusServiceUnavailable, errorKind(err), err)
}

func writeErr(w http.ResponseWriter, code int, kind string, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error(), "kind": kind})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
