package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
)

const (
	maxValueBytes = 1 << 20         // PUT body limit
	writeTimeout  = 5 * time.Second // bound on a write or consistent read
)

// backend is the node a KV server talks to and its store. In one-process
// mode a restarted node is a new *canoe.Node with a new store, so the server
// asks for them on every request.
type backend func() (*canoe.Node, *kvStore)

// server is one node's demo HTTP server: the KV API, the dashboard and its
// JSON endpoints.
type server struct {
	backend backend
	monitor *monitor
	control nodeControl // nil: no stop/start buttons (node mode)
	logger  hclog.Logger
}

// nodeControl stops and starts nodes (one-process mode only).
type nodeControl interface {
	StopNode(ctx context.Context, id uint64) error
	StartNode(ctx context.Context, id uint64) error
}

// errUnknownNode and errConflict are nodeControl's errors.
var (
	errUnknownNode = errors.New("no such node in this process")
	errConflict    = errors.New("conflict")
)

// handler routes the demo's HTTP API. Paths under /kv/ are routed here
// rather than by http.ServeMux, which would redirect keys with empty or dot
// segments (a//b, ./x, ../x) to a cleaned path: the key is the rest of the
// path, percent-decoded and otherwise taken as sent.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kv", s.list)
	mux.HandleFunc("/kv", methodNotAllowed("GET"))
	mux.HandleFunc("GET /api/cluster", s.clusterInfo)
	mux.HandleFunc("/api/cluster", methodNotAllowed("GET"))
	mux.HandleFunc("GET /api/dashboard", s.dashboard)
	mux.HandleFunc("/api/dashboard", methodNotAllowed("GET"))
	mux.HandleFunc("GET /static/{name}", serveAsset)
	mux.HandleFunc("POST /api/nodes/{id}/{action}", s.nodeAction)
	mux.HandleFunc("/api/nodes/{id}/{action}", methodNotAllowed("POST"))
	mux.HandleFunc("GET /{$}", serveDashboard)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path+" (try / , /kv/{key} or /api/cluster)")
	})
	kvRoutes := map[string]func(http.ResponseWriter, *http.Request, string){
		http.MethodGet:    s.get,
		http.MethodPut:    s.put,
		http.MethodDelete: s.del,
	}
	const kvAllow = "GET, PUT, DELETE"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, isKV := strings.CutPrefix(r.URL.Path, "/kv/")
		if !isKV {
			mux.ServeHTTP(w, r)
			return
		}
		route := kvRoutes[r.Method]
		if r.Method == http.MethodHead {
			route = s.get
		}
		if route == nil {
			methodNotAllowed(kvAllow)(w, r)
			return
		}
		if !checkKey(w, key) {
			return
		}
		route(w, r, key)
	})
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
	}
}

// running returns the node and store, or answers 503 if the node is stopped.
func (s *server) running(w http.ResponseWriter) (*canoe.Node, *kvStore, bool) {
	node, kv := s.backend()
	if node == nil || !node.IsRunning() {
		writeError(w, http.StatusServiceUnavailable, "this node is stopped")
		return nil, nil, false
	}
	w.Header().Set("X-Canoe-Node", strconv.FormatUint(node.UniqueID(), 10))
	return node, kv, true
}

// barrier runs a ReadBarrier when the request asks for ?consistent=true.
func (s *server) barrier(w http.ResponseWriter, r *http.Request, node *canoe.Node) bool {
	q := r.URL.Query().Get("consistent")
	if q == "" {
		return true
	}
	consistent, err := strconv.ParseBool(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, "consistent must be true or false, not "+strconv.Quote(q))
		return false
	}
	if !consistent {
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := node.ReadBarrier(ctx); err != nil {
		s.canoeError(w, "read barrier", err)
		return false
	}
	return true
}

// checkKey answers 400 for a key the store does not take.
func checkKey(w http.ResponseWriter, key string) bool {
	switch {
	case key == "":
		writeError(w, http.StatusBadRequest, "empty key: use /kv/{key}")
		return false
	case len(key) > maxKeyLen:
		writeError(w, http.StatusBadRequest, "key longer than "+strconv.Itoa(maxKeyLen)+" bytes")
		return false
	}
	return true
}

func (s *server) get(w http.ResponseWriter, r *http.Request, key string) {
	node, kv, ok := s.running(w)
	if !ok || !s.barrier(w, r, node) {
		return
	}
	v, found := kv.Get(key)
	if !found {
		writeError(w, http.StatusNotFound, "key "+strconv.Quote(key)+" not found")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(v)))
	_, _ = w.Write(v)
}

// kvItem is one pair of GET /kv. Values that are not UTF-8 text come as
// value_base64.
type kvItem struct {
	Key         string `json:"key"`
	Value       string `json:"value,omitempty"`
	ValueBase64 string `json:"value_base64,omitempty"`
}

type kvList struct {
	Node  string   `json:"node"`
	Count int      `json:"count"`
	Items []kvItem `json:"items"`
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	node, kv, ok := s.running(w)
	if !ok || !s.barrier(w, r, node) {
		return
	}
	all := kv.All()
	out := kvList{Node: strconv.FormatUint(node.UniqueID(), 10), Items: make([]kvItem, 0, len(all))}
	for k, v := range all {
		it := kvItem{Key: k}
		if utf8.Valid(v) && utf8.ValidString(k) {
			it.Value = string(v)
		} else {
			it.ValueBase64 = base64.StdEncoding.EncodeToString(v)
		}
		out.Items = append(out.Items, it)
	}
	slices.SortFunc(out.Items, func(a, b kvItem) int { return compareStrings(a.Key, b.Key) })
	out.Count = len(out.Items)
	writeJSON(w, http.StatusOK, out)
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *server) put(w http.ResponseWriter, r *http.Request, key string) {
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "value larger than "+strconv.Itoa(maxValueBytes)+" bytes")
			return
		}
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	s.propose(w, r, encodePut(key, value))
}

func (s *server) del(w http.ResponseWriter, r *http.Request, key string) {
	s.propose(w, r, encodeDelete(key))
}

// propose replicates cmd through canoe (a follower forwards it to the
// leader) and answers 204 once this node has applied it.
func (s *server) propose(w http.ResponseWriter, r *http.Request, cmd []byte) {
	node, _, ok := s.running(w)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := node.ProposeContext(ctx, cmd); err != nil {
		s.canoeError(w, "write", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// canoeError answers an error from canoe with the matching status.
func (s *server) canoeError(w http.ResponseWriter, what string, err error) {
	code := http.StatusInternalServerError
	var applyErr *canoe.ApplyError
	switch {
	case errors.Is(err, canoe.ErrNoLeader):
		code = http.StatusServiceUnavailable
	case errors.Is(err, canoe.ErrNotRunning), errors.Is(err, canoe.ErrorRemovedFromCluster):
		code = http.StatusServiceUnavailable
	case errors.Is(err, canoe.ErrTimeout), errors.Is(err, canoe.ErrUnknownOutcome),
		errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.As(err, &applyErr):
		code = http.StatusBadRequest
	}
	if code == http.StatusInternalServerError {
		s.logger.Warn(what+" failed", "error", err)
	} else {
		s.logger.Debug(what+" failed", "error", err)
	}
	writeError(w, code, what+": "+err.Error())
}

func (s *server) clusterInfo(w http.ResponseWriter, r *http.Request) {
	v := s.view(r)
	v.Events = s.monitor.events.recent()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, v)
}

// view is the monitor's latest view of the cluster, as this server shows it.
func (s *server) view(r *http.Request) clusterView {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	v := s.monitor.current(ctx)
	v.Controls = s.control != nil
	if node, _ := s.backend(); node != nil {
		v.Self = strconv.FormatUint(node.UniqueID(), 10)
	}
	return v
}

func (s *server) nodeAction(w http.ResponseWriter, r *http.Request) {
	if s.control == nil {
		writeError(w, http.StatusNotFound, "stopping and starting nodes is only possible in one-process mode")
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad node id "+strconv.Quote(r.PathValue("id")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	switch action := r.PathValue("action"); action {
	case "stop":
		err = s.control.StopNode(ctx, id)
	case "start":
		err = s.control.StartNode(ctx, id)
	default:
		writeError(w, http.StatusNotFound, "unknown action "+strconv.Quote(action)+": use stop or start")
		return
	}
	switch {
	case errors.Is(err, errUnknownNode):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, errConflict):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		s.monitor.kick()
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
