package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
		http.MethodPost:   s.cas,
	}
	const kvAllow = "GET, PUT, DELETE, POST"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, isKV := strings.CutPrefix(r.URL.Path, "/kv/")
		if !isKV {
			mux.ServeHTTP(w, r)
			return
		}
		route := kvRoutes[r.Method]
		switch r.Method {
		case http.MethodHead:
			route = s.get
		case http.MethodPost:
			if k, ok := incrKey(r, key); ok {
				key, route = k, s.incr
			}
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
	value, ok := readValue(w, r)
	if !ok {
		return
	}
	s.propose(w, r, encodePut(key, value))
}

func (s *server) del(w http.ResponseWriter, r *http.Request, key string) {
	s.propose(w, r, encodeDelete(key))
}

// incrKey returns the key of a POST /kv/{key}/incr. The suffix must be
// sent as is: POST /kv/a%2Fincr?cas=... is a cas of the key "a/incr".
func incrKey(r *http.Request, key string) (string, bool) {
	k, ok := strings.CutSuffix(key, "/incr")
	return k, ok && strings.HasSuffix(r.URL.EscapedPath(), "/incr")
}

// casAnswer is the answer of POST /kv/{key}?cas=OLD. Value (or
// ValueBase64, for a value that is not UTF-8) is the value found, absent
// when the key did not exist.
type casAnswer struct {
	Swapped     bool    `json:"swapped"`
	Found       bool    `json:"found"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

// cas is POST /kv/{key}?cas=OLD with the new value as body: it sets key
// to the body if its value is OLD, and answers 200 with what it found
// (casAnswer), swapped or not.
func (s *server) cas(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	olds, ok := q["cas"]
	switch {
	case !ok:
		writeError(w, http.StatusBadRequest, "POST /kv/{key} is a compare-and-swap and needs ?cas=OLD (the value expected; the body is the new value); POST /kv/{key}/incr increments")
		return
	case len(olds) != 1:
		writeError(w, http.StatusBadRequest, "give cas once, not "+strconv.Itoa(len(olds))+" times")
		return
	}
	if !onlyParams(w, q, "cas") {
		return
	}
	value, ok := readValue(w, r)
	if !ok {
		return
	}
	res, ok := s.proposeResult(w, r, "cas", encodeCAS(key, []byte(olds[0]), value))
	if !ok {
		return
	}
	cr, err := decodeCASResult(res)
	if err != nil {
		s.canoeError(w, "cas", err)
		return
	}
	out := casAnswer{Swapped: cr.Swapped, Found: cr.Found}
	switch {
	case !cr.Found:
	case utf8.Valid(cr.Value):
		v := string(cr.Value)
		out.Value = &v
	default:
		out.ValueBase64 = base64.StdEncoding.EncodeToString(cr.Value)
	}
	writeJSON(w, http.StatusOK, out)
}

// incr is POST /kv/{key}/incr[?by=N]: it adds N (default 1) to the
// decimal integer value of key, a missing key counting as 0, and answers
// 200 with the new value (decimal text). A value that is not an integer,
// or a sum outside int64, is a 400 and changes nothing.
func (s *server) incr(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	if !onlyParams(w, q, "by") {
		return
	}
	delta := int64(1)
	if by, ok := q["by"]; ok {
		d, err := strconv.ParseInt(q.Get("by"), 10, 64)
		if err != nil || len(by) != 1 {
			writeError(w, http.StatusBadRequest, "by must be one decimal int64, not "+strconv.Quote(strings.Join(by, ",")))
			return
		}
		delta = d
	}
	if b, _ := io.ReadAll(io.LimitReader(r.Body, 1)); len(b) > 0 {
		writeError(w, http.StatusBadRequest, "incr takes no body; give the amount as ?by=N")
		return
	}
	res, ok := s.proposeResult(w, r, "incr", encodeIncr(key, delta))
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(res)))
	_, _ = w.Write(res)
}

// onlyParams answers 400 for a query parameter other than the allowed
// ones.
func onlyParams(w http.ResponseWriter, q url.Values, allowed ...string) bool {
	for k := range q {
		if !slices.Contains(allowed, k) {
			writeError(w, http.StatusBadRequest, "unknown parameter "+strconv.Quote(k)+"; this request takes "+strings.Join(allowed, ", "))
			return false
		}
	}
	return true
}

// readValue reads a value from the request body, answering 413 for one
// over maxValueBytes.
func readValue(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "value larger than "+strconv.Itoa(maxValueBytes)+" bytes")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return nil, false
	}
	return value, true
}

// proposeResult replicates cmd through canoe (a follower forwards it to
// the leader) and returns what this node's store answered for it, once
// this node has applied it (each node answers from its own store, and
// they all answer the same). On an error it answers the request.
func (s *server) proposeResult(w http.ResponseWriter, r *http.Request, what string, cmd []byte) ([]byte, bool) {
	node, _, ok := s.running(w)
	if !ok {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	res, err := node.ProposeResult(ctx, cmd)
	if err != nil {
		s.canoeError(w, what, err)
		return nil, false
	}
	return res, true
}

// propose replicates cmd through canoe (a follower forwards it to the
// leader) and answers 204 once this node has applied it.
func (s *server) propose(w http.ResponseWriter, r *http.Request, cmd []byte) {
	if _, ok := s.proposeResult(w, r, "write", cmd); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

// canoeError answers an error from canoe with the matching status. The
// store's own error (an *canoe.ApplyError: an incr of a value that is not
// an integer) is a 400 that gives the store's message.
func (s *server) canoeError(w http.ResponseWriter, what string, err error) {
	code := http.StatusInternalServerError
	var applyErr *canoe.ApplyError
	if errors.As(err, &applyErr) {
		s.logger.Debug(what+" refused by the store", "error", err)
		writeError(w, http.StatusBadRequest, what+": "+applyErr.Err.Error())
		return
	}
	switch {
	case errors.Is(err, canoe.ErrNoLeader):
		code = http.StatusServiceUnavailable
	case errors.Is(err, canoe.ErrNotRunning), errors.Is(err, canoe.ErrorRemovedFromCluster):
		code = http.StatusServiceUnavailable
	case errors.Is(err, canoe.ErrTimeout), errors.Is(err, canoe.ErrUnknownOutcome),
		errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, canoe.ErrResultUnavailable):
		err = fmt.Errorf("%w (the write took effect; read the key for its value)", err)
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
