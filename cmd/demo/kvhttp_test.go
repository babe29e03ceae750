package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// testLogger writes to the test log, at WARN unless -v style debugging is
// wanted.
func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// singleNode starts a one-node canoe cluster and a demo server for it.
func singleNode(t *testing.T) (*canoe.Node, *kvStore, string) {
	t.Helper()
	node, kv, _, url := singleNodeServer(t)
	return node, kv, url
}

// singleNodeServer is singleNode that also returns the demo server.
func singleNodeServer(t *testing.T) (*canoe.Node, *kvStore, *server, string) {
	t.Helper()
	kv := newKVStore()
	node, err := canoe.NewNode(&canoe.NodeConfig{
		FSM:           kv,
		BootstrapNode: true,
		DataDir:       t.TempDir(),
		BindAddr:      "127.0.0.1",
		Timing:        canoe.LocalProfile(),
		Logger:        testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	testutil.WaitFor(t, 10*time.Second, "the node to lead", node.IsLeader)
	s := &server{
		backend: func() (*canoe.Node, *kvStore) { return node, kv },
		monitor: newMonitor(&remoteCluster{node: node, kv: kv}, newEventLog(testLogger(t))),
		logger:  testLogger(t),
	}
	ts := httptest.NewServer(s.handler())
	t.Cleanup(ts.Close)
	return node, kv, s, ts.URL
}

func errorOf(t *testing.T, body string) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not a JSON error", body)
	}
	return e.Error
}

func TestKVHandlers(t *testing.T) {
	_, kv, url := singleNode(t)

	type step struct {
		method, path, body string
		code               int
		want               string // body for 2xx, a substring of the error otherwise
	}
	for _, s := range []step{
		{"GET", "/kv/hello", "", 404, "not found"},
		{"PUT", "/kv/hello", "world", 204, ""},
		{"GET", "/kv/hello", "", 200, "world"},
		{"GET", "/kv/hello?consistent=true", "", 200, "world"},
		{"HEAD", "/kv/hello", "", 200, ""},
		{"GET", "/kv/hello?consistent=false", "", 200, "world"},
		{"GET", "/kv/hello?consistent=maybe", "", 400, "consistent"},
		{"PUT", "/kv/dir/with/slashes", "nested", 204, ""},
		{"GET", "/kv/dir/with/slashes", "", 200, "nested"},
		{"PUT", "/kv/empty", "", 204, ""},
		{"GET", "/kv/empty", "", 200, ""},
		{"PUT", "/kv/", "x", 400, "empty key"},
		{"GET", "/kv/", "", 400, "empty key"},
		{"DELETE", "/kv/", "", 400, "empty key"},
		{"PUT", "/kv/" + strings.Repeat("k", maxKeyLen+1), "x", 400, "key longer"},
		{"PUT", "/kv/big", strings.Repeat("x", maxValueBytes+1), 413, "larger than"},
		{"PUT", "/kv/just-fits", strings.Repeat("x", maxValueBytes), 204, ""},
		{"PATCH", "/kv/hello", "x", 405, "not allowed"},
		{"POST", "/kv/hello", "x", 400, "needs ?cas=OLD"},
		{"PATCH", "/kv", "", 405, "not allowed"},
		{"POST", "/api/cluster", "", 405, "not allowed"},
		{"GET", "/api/nodes/1/stop", "", 405, "not allowed"},
		{"POST", "/api/nodes/1/stop", "", 404, "one-process mode"},
		{"GET", "/nowhere", "", 404, "no such endpoint"},
		{"DELETE", "/kv/hello", "", 204, ""},
		{"GET", "/kv/hello", "", 404, "not found"},
		{"DELETE", "/kv/hello", "", 204, ""}, // deleting is idempotent
	} {
		t.Run(s.method+" "+s.path[:min(len(s.path), 40)], func(t *testing.T) {
			checkAnswer(t, url, s.method, s.path, s.body, s.code, s.want)
		})
	}
	if _, ok := kv.Get("big"); ok {
		t.Fatal("the oversized value was stored")
	}

	code, body := do(t, "GET", url+"/kv?consistent=true", "")
	if code != 200 {
		t.Fatalf("GET /kv: %d %s", code, body)
	}
	var list kvList
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, it := range list.Items {
		keys = append(keys, it.Key)
	}
	if got, want := strings.Join(keys, ","), "dir/with/slashes,empty,just-fits"; got != want || list.Count != 3 {
		t.Fatalf("GET /kv keys %q (count %d), want %q", got, list.Count, want)
	}

	if err := kv.Apply(encodePut("bin", []byte{0xff, 0xfe})); err != nil {
		t.Fatal(err)
	}
	_, body = do(t, "GET", url+"/kv", "")
	if !strings.Contains(body, `"value_base64": "//4="`) {
		t.Fatalf("binary value not base64 in %s", body)
	}
}

// failingControl is a nodeControl whose every call fails; calls counts
// them.
type failingControl struct{ calls atomic.Int32 }

func (c *failingControl) StopNode(context.Context, uint64) error {
	c.calls.Add(1)
	return errors.New("disk on fire")
}

func (c *failingControl) StartNode(context.Context, uint64) error {
	c.calls.Add(1)
	return errors.New("disk on fire")
}

// TestNodeActionBadInput: in one-process mode, POST /api/nodes/{id}/{action}
// with an ID that is not a node ID, or an action other than stop and start,
// is refused without a call to the nodes; a stop that fails is a 500 that
// gives the error.
func TestNodeActionBadInput(t *testing.T) {
	ctl := &failingControl{}
	h := (&server{control: ctl, logger: testLogger(t)}).handler()
	for _, s := range []struct {
		path string
		code int
		want string
	}{
		{"/api/nodes/abc/stop", 400, `bad node id "abc"`},
		{"/api/nodes/-1/start", 400, `bad node id "-1"`},
		{"/api/nodes/18446744073709551616/stop", 400, "bad node id"},
		{"/api/nodes/1/reboot", 404, `unknown action "reboot": use stop or start`},
		{"/api/nodes/1/stop", 500, "disk on fire"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", s.path, nil))
		if w.Code != s.code || !strings.Contains(errorOf(t, w.Body.String()), s.want) {
			t.Errorf("POST %s: %d %s, want %d mentioning %q", s.path, w.Code, w.Body, s.code, s.want)
		}
	}
	if n := ctl.calls.Load(); n != 1 {
		t.Errorf("%d calls to the nodes, want 1 (the failing stop)", n)
	}
}

func TestClusterEndpoint(t *testing.T) {
	node, _, url := singleNode(t)
	code, body := do(t, "GET", url+"/api/cluster", "")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var v clusterView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint(node.UniqueID())
	if v.LeaderID != id || v.Self != id || len(v.Nodes) != 1 || v.Nodes[0].State != "leader" || !v.Nodes[0].Voter {
		t.Fatalf("got %+v, want node %s as the only voter and leader", v, id)
	}
	if v.Controls {
		t.Fatal("node mode offers stop/start controls")
	}
	code, body = do(t, "GET", url+"/", "")
	if code != 200 || !strings.Contains(body, `src="/static/dashboard.js"`) {
		t.Fatalf("dashboard: %d %.100s", code, body)
	}
	code, body = do(t, "GET", url+"/static/dashboard.js", "")
	if code != 200 || !strings.Contains(body, "/api/dashboard?") {
		t.Fatalf("dashboard script: %d %.100s", code, body)
	}
}

func TestKVStoppedNode(t *testing.T) {
	node, _, url := singleNode(t)
	if err := node.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		if code, body := do(t, m, url+"/kv/k", "v"); code != 503 {
			t.Fatalf("%s on a stopped node: %d %s, want 503", m, code, body)
		}
	}
}

func TestCanoeErrorStatus(t *testing.T) {
	s := &server{logger: hclog.NewNullLogger()}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w: %w", canoe.ErrNoLeader, context.DeadlineExceeded), 503},
		{canoe.ErrNotRunning, 503},
		{canoe.ErrorRemovedFromCluster, 503},
		{fmt.Errorf("%w: in flight", canoe.ErrTimeout), 504},
		{fmt.Errorf("%w: leader lost", canoe.ErrUnknownOutcome), 504},
		{&canoe.ApplyError{Index: 3, Err: errMalformed}, 400},
		{fmt.Errorf("%w: entry 9", canoe.ErrResultUnavailable), 500},
		{errors.New("something else"), 500},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			w := httptest.NewRecorder()
			s.canoeError(w, "write", tc.err)
			if w.Code != tc.code {
				t.Fatalf("got %d, want %d", w.Code, tc.code)
			}
			errorOf(t, w.Body.String())
		})
	}
	// The store's refusal is answered with the store's message, and a lost
	// result says that the write took effect.
	w := httptest.NewRecorder()
	s.canoeError(w, "incr", &canoe.ApplyError{Index: 3, Err: fmt.Errorf("incr %q: its value %q is %w", "k", "x", errNotInteger)})
	if msg := errorOf(t, w.Body.String()); msg != `incr: incr "k": its value "x" is not an integer` {
		t.Errorf("ApplyError answered %q", msg)
	}
	w = httptest.NewRecorder()
	s.canoeError(w, "incr", fmt.Errorf("%w: entry 9", canoe.ErrResultUnavailable))
	if msg := errorOf(t, w.Body.String()); !strings.Contains(msg, "took effect") {
		t.Errorf("ErrResultUnavailable answered %q", msg)
	}
}

func TestKVNoLeader(t *testing.T) {
	// A node that never bootstraps or joins has no leader: writes end in 503.
	kv := newKVStore()
	node, err := canoe.NewNode(&canoe.NodeConfig{FSM: kv, DataDir: t.TempDir(), BindAddr: "127.0.0.1", Timing: canoe.LocalProfile(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	s := &server{backend: func() (*canoe.Node, *kvStore) { return node, kv }, logger: testLogger(t)}
	w := httptest.NewRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, "PUT", "/kv/k", strings.NewReader("v"))
	s.handler().ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("PUT without a leader: %d %s, want 503", w.Code, w.Body)
	}
}

// TestKVKeysNotCleaned: a key is the rest of the path after /kv/, taken as
// sent. Keys with empty or dot segments used to get a 307 redirect to a
// cleaned path, and nothing was stored under the key asked for.
func TestKVKeysNotCleaned(t *testing.T) {
	_, kv, url := singleNode(t)
	noRedirect := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	send := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, key string
	}{
		{"/kv/a//b", "a//b"},
		{"/kv/a%2F%2Fb%2F", "a//b/"},
		{"/kv/./x", "./x"},
		{"/kv/x/../y", "x/../y"},
		{"/kv/%2E%2E", ".."},
		{"/kv/..%2Fetc", "../etc"},
		{"/kv/sp%20ace", "sp ace"},
		{"/kv//lead", "/lead"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if code, body := send("PUT", tc.path, "v:"+tc.key); code != 204 {
				t.Fatalf("PUT %s: %d %s, want 204", tc.path, code, body)
			}
			if v, ok := kv.Get(tc.key); !ok || string(v) != "v:"+tc.key {
				t.Fatalf("PUT %s stored %q (found %v) under %q, want %q", tc.path, v, ok, tc.key, "v:"+tc.key)
			}
			if code, body := send("GET", tc.path, ""); code != 200 || body != "v:"+tc.key {
				t.Fatalf("GET %s: %d %q", tc.path, code, body)
			}
			if code, body := send("DELETE", tc.path, ""); code != 204 {
				t.Fatalf("DELETE %s: %d %s", tc.path, code, body)
			}
			if _, ok := kv.Get(tc.key); ok {
				t.Fatalf("DELETE %s left %q", tc.path, tc.key)
			}
		})
	}
}

// TestKVCasIncr: the answers and errors of POST /kv/{key}?cas=OLD and
// POST /kv/{key}/incr on one node.
func TestKVCasIncr(t *testing.T) {
	_, kv, url := singleNode(t)
	for _, s := range []struct {
		method, path, body string
		code               int
		want               string // the body for 2xx, a substring of the error otherwise
	}{
		{"POST", "/kv/n/incr", "", 200, "1"},
		{"POST", "/kv/n/incr", "", 200, "2"},
		{"POST", "/kv/n/incr?by=40", "", 200, "42"},
		{"POST", "/kv/n/incr?by=-50", "", 200, "-8"},
		{"GET", "/kv/n", "", 200, "-8"},
		{"POST", "/kv/n/incr?by=x", "", 400, "by must be one decimal int64"},
		{"POST", "/kv/n/incr?by=1&by=2", "", 400, "by must be one decimal int64"},
		{"POST", "/kv/n/incr?step=2", "", 400, `unknown parameter "step"`},
		{"POST", "/kv/n/incr", "5", 400, "incr takes no body"},
		{"POST", "/kv//incr", "", 400, "empty key"},
		{"PUT", "/kv/text", "hello", 204, ""},
		{"POST", "/kv/text/incr", "", 400, `incr: incr "text": its value "hello" is not an integer`},
		{"GET", "/kv/text", "", 200, "hello"},
		{"PUT", "/kv/max", "9223372036854775807", 204, ""},
		{"POST", "/kv/max/incr", "", 400, "outside int64"},
		{"POST", "/kv/text?cas=nope", "new", 200, `{"swapped":false,"found":true,"value":"hello"}`},
		{"GET", "/kv/text", "", 200, "hello"},
		{"POST", "/kv/text?cas=hello", "new", 200, `{"swapped":true,"found":true,"value":"hello"}`},
		{"GET", "/kv/text", "", 200, "new"},
		{"POST", "/kv/absent?cas=", "v", 200, `{"swapped":false,"found":false}`},
		{"GET", "/kv/absent", "", 404, "not found"},
		{"PUT", "/kv/bin", "\xff\xfe", 204, ""},
		{"POST", "/kv/bin?cas=%FF%FE", "text", 200, `{"swapped":true,"found":true,"value_base64":"//4="}`},
		{"POST", "/kv/a%2Fincr?cas=", "x", 200, `{"swapped":false,"found":false}`},
		{"POST", "/kv/a/incr?cas=", "", 400, `unknown parameter "cas"`},
		{"POST", "/kv/text", "x", 400, "needs ?cas=OLD"},
		{"POST", "/kv/text?cas=a&cas=b", "x", 400, "give cas once"},
		{"POST", "/kv/text?cas=new&consistent=true", "x", 400, `unknown parameter "consistent"`},
		{"POST", "/kv/big?cas=", strings.Repeat("x", maxValueBytes+1), 413, "larger than"},
		{"POST", "/kv/" + strings.Repeat("k", maxKeyLen) + "/incr", "", 200, "1"},
		{"POST", "/kv/" + strings.Repeat("k", maxKeyLen+1) + "/incr", "", 400, "key longer"},
	} {
		t.Run(s.method+" "+s.path[:min(len(s.path), 40)], func(t *testing.T) {
			checkAnswer(t, url, s.method, s.path, s.body, s.code, s.want)
		})
	}
	if v, ok := kv.Get("a/incr"); ok {
		t.Errorf("the cas of a missing key created it: %q", v)
	}
	if _, ok := kv.Get("big"); ok {
		t.Error("the oversized cas value was stored")
	}
}

// checkAnswer sends a request to url+path and checks the answer: its
// status, and for an error a message that contains want, for a JSON
// object (want starts with "{") the object want, else exactly the body
// want.
func checkAnswer(t *testing.T, url, method, path, reqBody string, wantCode int, want string) {
	t.Helper()
	code, body := do(t, method, url+path, reqBody)
	if code != wantCode {
		t.Fatalf("status %d, want %d (body %q)", code, wantCode, body)
	}
	switch {
	case code >= 400:
		if msg := errorOf(t, body); !strings.Contains(msg, want) {
			t.Fatalf("error %q, want it to mention %q", msg, want)
		}
	case strings.HasPrefix(want, "{"):
		if compact := compactJSON(t, body); compact != want {
			t.Fatalf("answer %s, want %s", compact, want)
		}
	case body != want:
		t.Fatalf("body %q, want %q", body, want)
	}
}

func compactJSON(t *testing.T, body string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(body)); err != nil {
		t.Fatalf("answer %q is not JSON: %v", body, err)
	}
	return b.String()
}
