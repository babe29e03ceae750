package httpconfig

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/julienschmidt/httprouter"

	"github.com/canoe-raft/canoe/internal/keys"
)

// Paths of the API.
const (
	PathPeers   = "/peers"
	PathPromote = "/peers/promote"
	PathStatus  = "/status"
	PathHealthz = "/healthz"
	PathMetrics = "/metrics"
)

const contentTypeJSON = "application/json"

// NewHandler returns the HTTP API handler for cfg; see the package
// documentation for its routes and statuses. It never panics on a request:
// a panic in the node's code is recovered, logged and answered with 500.
func NewHandler(cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	h := &handler{
		cfg: cfg,
		log: cfg.Logger,
	}
	if cfg.Secret != nil {
		k, err := keys.Derive(cfg.Secret, cfg.ClusterID)
		if err != nil {
			// Fail closed: a misconfigured secret admits nothing.
			h.authErr = fmt.Errorf("httpconfig: authentication misconfigured: %w", err)
			h.log.Error("HTTP API refuses every request", "error", h.authErr)
		} else {
			h.auth = newAuthenticator(k, cfg.now, cfg.replayCap)
		}
	}
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = true
	r.GlobalOPTIONS = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; allowed: %s",
			req.Method, truncate(req.URL.Path, 128), w.Header().Get("Allow")), 0)
	})
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", req.Method, truncate(req.URL.Path, 128)), 0)
	})
	r.PanicHandler = h.recovered

	if cfg.Membership != nil {
		r.GET(PathPeers, h.getPeers)
		r.POST(PathPeers, h.addPeer)
		r.DELETE(PathPeers, h.removePeer)
	}
	if cfg.Promoter != nil {
		r.POST(PathPromote, h.promote)
	}
	if cfg.Status != nil {
		r.GET(PathStatus, h.status)
		r.GET(PathHealthz, h.healthz)
	}
	if cfg.Metrics != nil {
		r.Handler(http.MethodGet, PathMetrics, cfg.Metrics)
	}
	if cfg.Snapshots != nil {
		r.GET(PathSnapshot, h.getSnapshot)
		r.POST(PathSnapshot, h.postSnapshot)
	}
	if cfg.Leadership != nil {
		r.POST(PathLeaderTransfer, h.transferLeader)
	}
	h.router = r
	return h
}

// handler is the API: authentication in front of the router.
type handler struct {
	cfg     Config // defaulted
	log     hclog.Logger
	auth    *authenticator // nil: no authentication
	authErr error          // Secret is set but unusable: every request gets 500
	router  *httprouter.Router
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case h.authErr != nil:
		writeError(w, http.StatusInternalServerError, h.authErr.Error(), 0)
		return
	case h.auth != nil:
		body, err := h.auth.check(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if body != nil {
			r.Body = body
			// No route of these methods reads a body: check it here, so
			// that a body the signature does not cover is refused too.
			if !takesBody(r.Method) {
				if _, err := readBody(w, r, h.cfg.MaxBodyBytes); err != nil {
					h.fail(w, r, err)
					return
				}
			}
		}
	}
	h.router.ServeHTTP(w, r)
}

// takesBody reports whether requests of method may carry a body that a
// route reads (and checks against the signature itself).
func takesBody(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// recovered is httprouter's PanicHandler.
func (h *handler) recovered(w http.ResponseWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler {
		panic(v) // net/http aborts the response without logging
	}
	h.log.Error("panic serving HTTP request", "method", r.Method, "path", r.URL.Path,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	writeError(w, http.StatusInternalServerError, "internal server error", 0)
}

// context returns the context for calling the node on behalf of r.
func (h *handler) context(r *http.Request) (context.Context, context.CancelFunc) {
	if h.cfg.RequestTimeout < 0 {
		return context.WithCancel(r.Context())
	}
	return context.WithTimeout(r.Context(), h.cfg.RequestTimeout)
}

// fail answers r with err's status and logs it.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusFor(err)
	if code == http.StatusInternalServerError && errors.Is(err, context.Canceled) {
		code = http.StatusServiceUnavailable // caller gone or server shutting down
	}
	var leader uint64
	var nle *NotLeaderError
	if errors.As(err, &nle) {
		leader = nle.LeaderID
	}
	switch {
	case code >= 500:
		h.log.Warn("HTTP request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
	default:
		h.log.Debug("HTTP request rejected", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", AuthScheme)
		if readOnlyRoute(r) {
			w.Header().Add("WWW-Authenticate", "Bearer")
		}
	}
	writeError(w, code, err.Error(), leader)
}

// readBody reads r's whole body, at most limit bytes. Every error matches
// ErrTooLarge (over the limit), ErrUnauthorized (a signed request whose
// body does not match its signature) or ErrInvalid. It returns a body only
// once the body is verified (bodyVerified), so callers may act on it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, fmt.Errorf("%w: body over the limit of %d bytes", ErrTooLarge, limit)
		case errors.Is(err, ErrUnauthorized):
			return nil, err
		}
		return nil, fmt.Errorf("%w: reading body: %v", ErrInvalid, err)
	}
	if !bodyVerified(r) {
		// ReadFrom ended at io.EOF, which a signedBody returns only after a
		// match; checked again so that the invariant cannot break silently.
		return nil, errBodyMismatch
	}
	return buf.Bytes(), nil
}

// bodyVerified reports whether r's body may be acted on: true when the
// request is not signed (no authentication, or the metrics token, whose
// routes take no body), and for a signed request once its body was read to
// io.EOF and matched the signed SHA-256. A handler that streams a large
// body reads it to io.EOF (an error matching ErrUnauthorized instead means
// a mismatch) and checks bodyVerified before it commits anything.
func bodyVerified(r *http.Request) bool {
	sb, signed := r.Body.(*signedBody)
	return !signed || sb.verified()
}

func (h *handler) getPeers(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, peersResponse(h.cfg.Membership))
}

func (h *handler) addPeer(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	b, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := decodeAddPeer(bytes.NewReader(b))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.Host == "" {
		// The original canoe took the joining node's address from the
		// connection; keep doing so when the request names no host.
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			p.Host = host
		}
	}
	ctx, cancel := h.context(r)
	defer cancel()
	if err := h.cfg.Membership.AddPeer(ctx, p); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, peersResponse(h.cfg.Membership))
}

func (h *handler) removePeer(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	b, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := decodeIDRequest(bytes.NewReader(b))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !slices.ContainsFunc(h.cfg.Membership.Peers(), func(p Peer) bool { return p.ID == id }) {
		h.fail(w, r, fmt.Errorf("%w: id %d is not a member", ErrPeerNotFound, id))
		return
	}
	ctx, cancel := h.context(r)
	defer cancel()
	if err := h.cfg.Membership.RemovePeer(ctx, id); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Removed uint64 `json:"removed"`
	}{id})
}

func (h *handler) promote(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	b, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := decodeIDRequest(bytes.NewReader(b))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if m := h.cfg.Membership; m != nil && !slices.ContainsFunc(m.Peers(), func(p Peer) bool { return p.ID == id }) {
		h.fail(w, r, fmt.Errorf("%w: id %d is not a member", ErrPeerNotFound, id))
		return
	}
	ctx, cancel := h.context(r)
	defer cancel()
	if err := h.cfg.Promoter.Promote(ctx, id); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, promoteResponse{Promoted: id})
}

// promoteResponse answers POST /peers/promote.
type promoteResponse struct {
	Promoted uint64 `json:"promoted"`
}

func (h *handler) status(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	st := h.cfg.Status.Status()
	if st.Members == nil {
		st.Members = []Peer{}
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if err := h.cfg.Status.Healthy(); err != nil {
		h.log.Debug("unhealthy", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, err.Error(), 0)
		return
	}
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
}

type healthResponse struct {
	Status string `json:"status"`
}

// errorBody is every error answer's body.
type errorBody struct {
	Error    string `json:"error"`
	LeaderID uint64 `json:"leader_id,omitempty"`
}

// peersResponse builds the GET /peers answer; RemotePeers is sorted by id.
func peersResponse(m Membership) PeersResponse {
	self := m.Self()
	all := m.Peers()
	remote := make([]Peer, 0, len(all))
	for _, p := range all {
		if p.ID != self.ID {
			remote = append(remote, p)
		}
	}
	slices.SortStableFunc(remote, func(a, b Peer) int { return cmp.Compare(a.ID, b.ID) })
	return PeersResponse{
		ID:          self.ID,
		Host:        self.Host,
		RaftPort:    self.RaftPort,
		ConfigPort:  self.ConfigPort,
		GossipPort:  self.GossipPort,
		Suffrage:    self.Suffrage,
		NonVoter:    self.NonVoter,
		RemotePeers: remote,
	}
}

func writeError(w http.ResponseWriter, code int, msg string, leader uint64) {
	writeJSON(w, code, errorBody{Error: msg, LeaderID: leader})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"internal server error: encoding the answer failed"}`)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentTypeJSON)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Del("Content-Length")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
