package httpconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// request is one request to a handler under test.
type request struct {
	method, path string
	body         string
	auth         string  // Authorization header, if not ""
	sign         *Signer // if not nil: sign the request now (auth is ignored)
}

func serve(h http.Handler, req request) *httptest.ResponseRecorder {
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(req.method, req.path, body)
	switch {
	case req.sign != nil:
		r.Header.Set("Authorization", req.sign.Authorization(req.method, req.path, sha256.Sum256([]byte(req.body)), time.Now()))
	case req.auth != "":
		r.Header.Set("Authorization", req.auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// errorMessage checks that rec is a JSON error answer and returns its message.
func errorMessage(t *testing.T, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var eb errorBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body is not {\"error\": ...}: %v", err)
	}
	if eb.Error == "" {
		t.Errorf("error body has an empty message")
	}
	return eb
}

const validAdd = `{"id":4,"raft_port":7004,"config_port":8004}`

// TestHandlerErrors covers every error answer: status, JSON body, headers,
// and that the node was not asked to change anything.
func TestHandlerErrors(t *testing.T) {
	huge := `{"id":4,"raft_port":7004,"config_port":8004,"host":"` + strings.Repeat("a", 2<<20) + `"}`
	tests := []struct {
		name      string
		setup     func(*fakeNode, *Config)
		req       request
		wantCode  int
		wantMsg   string // substring of the error message
		wantMut   int    // node calls that change something
		wantAllow string
	}{
		// 400: POST /peers validation.
		{name: "add malformed json", req: request{method: "POST", path: "/peers", body: `{"id":4,`}, wantCode: 400, wantMsg: "truncated"},
		{name: "add not json", req: request{method: "POST", path: "/peers", body: `hello`}, wantCode: 400, wantMsg: "malformed JSON"},
		{name: "add empty body", req: request{method: "POST", path: "/peers"}, wantCode: 400, wantMsg: "empty body"},
		{name: "add null", req: request{method: "POST", path: "/peers", body: `null`}, wantCode: 400, wantMsg: `"id" is required`},
		{name: "add array", req: request{method: "POST", path: "/peers", body: `[1,2]`}, wantCode: 400, wantMsg: "want a JSON object"},
		{name: "add unknown field", req: request{method: "POST", path: "/peers", body: `{"id":4,"raft_port":7004,"config_port":8004,"port":1}`}, wantCode: 400, wantMsg: `unknown field "port"`},
		{name: "add suffrage not accepted", req: request{method: "POST", path: "/peers", body: `{"id":4,"raft_port":7004,"config_port":8004,"suffrage":"voter"}`}, wantCode: 400, wantMsg: "unknown field"},
		{name: "add trailing object", req: request{method: "POST", path: "/peers", body: validAdd + validAdd}, wantCode: 400, wantMsg: "after the JSON object"},
		{name: "add trailing garbage", req: request{method: "POST", path: "/peers", body: validAdd + " x"}, wantCode: 400, wantMsg: "after the JSON object"},
		{name: "add trailing brace", req: request{method: "POST", path: "/peers", body: validAdd + "}"}, wantCode: 400, wantMsg: "after the JSON object"},
		{name: "add missing id", req: request{method: "POST", path: "/peers", body: `{"raft_port":7004,"config_port":8004}`}, wantCode: 400, wantMsg: `"id" is required`},
		{name: "add zero id", req: request{method: "POST", path: "/peers", body: `{"id":0,"raft_port":7004,"config_port":8004}`}, wantCode: 400, wantMsg: `"id" is required`},
		{name: "add negative id", req: request{method: "POST", path: "/peers", body: `{"id":-4,"raft_port":7004,"config_port":8004}`}, wantCode: 400, wantMsg: `field "id"`},
		{name: "add string id", req: request{method: "POST", path: "/peers", body: `{"id":"4","raft_port":7004,"config_port":8004}`}, wantCode: 400, wantMsg: `field "id"`},
		{name: "add missing raft port", req: request{method: "POST", path: "/peers", body: `{"id":4,"config_port":8004}`}, wantCode: 400, wantMsg: `"raft_port" is required`},
		{name: "add missing config port", req: request{method: "POST", path: "/peers", body: `{"id":4,"raft_port":7004}`}, wantCode: 400, wantMsg: `"config_port" is required`},
		{name: "add raft port too big", req: request{method: "POST", path: "/peers", body: `{"id":4,"raft_port":65536,"config_port":8004}`}, wantCode: 400, wantMsg: "outside 1..65535"},
		{name: "add negative config port", req: request{method: "POST", path: "/peers", body: `{"id":4,"raft_port":7004,"config_port":-1}`}, wantCode: 400, wantMsg: "outside 1..65535"},
		{name: "add bad gossip port", req: request{method: "POST", path: "/peers", body: `{"id":4,"raft_port":7004,"config_port":8004,"gossip_port":70000}`}, wantCode: 400, wantMsg: `"gossip_port" 70000`},
		{name: "add bad host", req: request{method: "POST", path: "/peers", body: `{"id":4,"host":"a b/c","raft_port":7004,"config_port":8004}`}, wantCode: 400, wantMsg: `"host"`},
		{name: "add every problem at once", req: request{method: "POST", path: "/peers", body: `{"raft_port":0,"config_port":99999}`}, wantCode: 400, wantMsg: `"id" is required and must be nonzero; "raft_port" is required; "config_port" 99999`},
		// 413.
		{name: "add oversized", req: request{method: "POST", path: "/peers", body: huge}, wantCode: 413, wantMsg: "over the limit"},
		{name: "add oversized trailing space", req: request{method: "POST", path: "/peers", body: validAdd + strings.Repeat(" ", 2<<20)}, wantCode: 413, wantMsg: "over the limit"},
		{name: "add over configured limit", setup: func(_ *fakeNode, c *Config) { c.MaxBodyBytes = 16 }, req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 413, wantMsg: "16 bytes"},
		// 400 and 404: DELETE /peers.
		{name: "remove malformed", req: request{method: "DELETE", path: "/peers", body: `{"id":`}, wantCode: 400, wantMsg: "truncated"},
		{name: "remove unknown field", req: request{method: "DELETE", path: "/peers", body: `{"id":2,"force":true}`}, wantCode: 400, wantMsg: `unknown field "force"`},
		{name: "remove missing id", req: request{method: "DELETE", path: "/peers", body: `{}`}, wantCode: 400, wantMsg: `"id" is required`},
		{name: "remove oversized", req: request{method: "DELETE", path: "/peers", body: `{"id":2}` + strings.Repeat(" ", 2<<20)}, wantCode: 413},
		{name: "remove unknown id", req: request{method: "DELETE", path: "/peers", body: `{"id":99}`}, wantCode: 404, wantMsg: "99 is not a member"},
		{name: "add nonvoter not a bool", req: request{method: "POST", path: "/peers", body: `{"id":4,"raft_port":7004,"config_port":8004,"nonvoter":"yes"}`}, wantCode: 400, wantMsg: `field "nonvoter"`},
		// 400 and 404: POST /peers/promote.
		{name: "promote malformed", req: request{method: "POST", path: "/peers/promote", body: `{"id":`}, wantCode: 400, wantMsg: "truncated"},
		{name: "promote unknown field", req: request{method: "POST", path: "/peers/promote", body: `{"id":3,"voter":true}`}, wantCode: 400, wantMsg: `unknown field "voter"`},
		{name: "promote missing id", req: request{method: "POST", path: "/peers/promote", body: `{}`}, wantCode: 400, wantMsg: `"id" is required`},
		{name: "promote empty body", req: request{method: "POST", path: "/peers/promote"}, wantCode: 400, wantMsg: "empty body"},
		{name: "promote oversized", req: request{method: "POST", path: "/peers/promote", body: `{"id":3}` + strings.Repeat(" ", 2<<20)}, wantCode: 413},
		{name: "promote unknown id", req: request{method: "POST", path: "/peers/promote", body: `{"id":99}`}, wantCode: 404, wantMsg: "99 is not a member"},
		{name: "promote node says not found", setup: failWith(ErrPeerNotFound), req: request{method: "POST", path: "/peers/promote", body: `{"id":3}`}, wantCode: 404, wantMut: 1},
		{name: "promote not configured", setup: func(_ *fakeNode, c *Config) { c.Promoter = nil }, req: request{method: "POST", path: "/peers/promote", body: `{"id":3}`}, wantCode: 404, wantMsg: "no route"},
		{name: "get promote", req: request{method: "GET", path: "/peers/promote"}, wantCode: 405, wantAllow: "OPTIONS, POST"},
		// Errors from the node.
		{name: "promote not leader", setup: failWith(&NotLeaderError{LeaderID: 2}), req: request{method: "POST", path: "/peers/promote", body: `{"id":3}`}, wantCode: 421, wantMsg: "leader is 2", wantMut: 1},
		{name: "promote timeout", setup: func(f *fakeNode, c *Config) { f.block = true; c.RequestTimeout = 10 * time.Millisecond }, req: request{method: "POST", path: "/peers/promote", body: `{"id":3}`}, wantCode: 504, wantMut: 1},
		{name: "add not leader", setup: failWith(&NotLeaderError{LeaderID: 3}), req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 421, wantMsg: "leader is 3", wantMut: 1},
		{name: "add no leader", setup: failWith(fmt.Errorf("adding: %w", ErrNoLeader)), req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 503, wantMsg: "no leader", wantMut: 1},
		{name: "add conflict", setup: failWith(ErrConflict), req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 409, wantMut: 1},
		{name: "add removed", setup: failWith(ErrRemoved), req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 410, wantMut: 1},
		{name: "add timeout", setup: failWith(context.DeadlineExceeded), req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 504, wantMut: 1},
		{name: "add canceled", setup: failWith(context.Canceled), req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 503, wantMut: 1},
		{name: "add other error", setup: failWith(errors.New("disk on fire")), req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 500, wantMsg: "disk on fire", wantMut: 1},
		{name: "add request timeout", setup: func(f *fakeNode, c *Config) { f.block = true; c.RequestTimeout = 10 * time.Millisecond }, req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 504, wantMut: 1},
		{name: "remove node says not found", setup: failWith(ErrPeerNotFound), req: request{method: "DELETE", path: "/peers", body: `{"id":2}`}, wantCode: 404, wantMut: 1},
		{name: "remove not leader", setup: failWith(&NotLeaderError{}), req: request{method: "DELETE", path: "/peers", body: `{"id":2}`}, wantCode: 421, wantMsg: "not the leader", wantMut: 1},
		{name: "healthz unhealthy", setup: func(f *fakeNode, _ *Config) { f.unhealthy = errors.New("no known leader") }, req: request{method: "GET", path: "/healthz"}, wantCode: 503, wantMsg: "no known leader"},
		// Panics.
		{name: "panic in status", setup: panicWith("boom"), req: request{method: "GET", path: "/status"}, wantCode: 500, wantMsg: "internal server error"},
		{name: "panic in add", setup: panicWith("boom"), req: request{method: "POST", path: "/peers", body: validAdd}, wantCode: 500},
		// 405 and 404 from the router.
		{name: "put peers", req: request{method: "PUT", path: "/peers", body: validAdd}, wantCode: 405, wantMsg: "PUT not allowed", wantAllow: "DELETE, GET, OPTIONS, POST"},
		{name: "get promote", req: request{method: "GET", path: "/peers/promote"}, wantCode: 405, wantAllow: "OPTIONS, POST"},
		{name: "post status", req: request{method: "POST", path: "/status"}, wantCode: 405, wantAllow: "GET, OPTIONS"},
		{name: "delete healthz", req: request{method: "DELETE", path: "/healthz"}, wantCode: 405, wantAllow: "GET, OPTIONS"},
		{name: "unknown path", req: request{method: "GET", path: "/nope"}, wantCode: 404, wantMsg: "no route for GET /nope"},
		{name: "trailing slash", req: request{method: "GET", path: "/peers/"}, wantCode: 404},
		{name: "wrong case", req: request{method: "POST", path: "/PEERS", body: validAdd}, wantCode: 404},
		{name: "metrics not configured", req: request{method: "GET", path: "/metrics"}, wantCode: 404},
		// 401.
		{name: "no authorization", setup: withSecret, req: request{method: "GET", path: "/peers"}, wantCode: 401, wantMsg: "missing Authorization header"},
		{name: "no authorization healthz", setup: withSecret, req: request{method: "GET", path: "/healthz"}, wantCode: 401, wantMsg: "missing Authorization header"},
		{name: "no authorization unknown path", setup: withSecret, req: request{method: "GET", path: "/nope"}, wantCode: 401},
		{name: "secret as bearer", setup: withSecret, req: request{method: "GET", path: "/status", auth: "Bearer " + string(testSecret)}, wantCode: 401, wantMsg: "bearer tokens are accepted only on GET /metrics and GET /healthz"},
		{name: "secret as bearer on healthz", setup: withSecret, req: request{method: "GET", path: "/healthz", auth: "Bearer " + string(testSecret)}, wantCode: 401, wantMsg: "wrong bearer token"},
		{name: "metrics token on status", setup: withSecret, req: request{method: "GET", path: "/status", auth: "Bearer " + testMetricsToken()}, wantCode: 401, wantMsg: "the metrics token grants only GET /metrics and GET /healthz"},
		{name: "metrics token on add", setup: withSecret, req: request{method: "POST", path: "/peers", body: validAdd, auth: "Bearer " + testMetricsToken()}, wantCode: 401, wantMsg: "grants only"},
		{name: "metrics token on promote", setup: withSecret, req: request{method: "POST", path: "/peers/promote", body: `{"id":3}`, auth: "Bearer " + testMetricsToken()}, wantCode: 401, wantMsg: "grants only"},
		{name: "unsigned promote", setup: withSecret, req: request{method: "POST", path: "/peers/promote", body: `{"id":3}`}, wantCode: 401, wantMsg: "missing Authorization header"},
		{name: "metrics token on remove", setup: withSecret, req: request{method: "DELETE", path: "/peers", body: `{"id":2}`, auth: "Bearer " + testMetricsToken()}, wantCode: 401, wantMsg: "grants only"},
		{name: "metrics token on promote", setup: withSecret, req: request{method: "POST", path: "/peers/promote", body: `{"id":3}`, auth: "Bearer " + testMetricsToken()}, wantCode: 401},
		{name: "metrics token HEAD healthz", setup: withSecret, req: request{method: "HEAD", path: "/healthz", auth: "Bearer " + testMetricsToken()}, wantCode: 401},
		{name: "basic auth", setup: withSecret, req: request{method: "GET", path: "/status", auth: "Basic czNjcmV0"}, wantCode: 401, wantMsg: `unsupported Authorization scheme "Basic"`},
		{name: "no scheme", setup: withSecret, req: request{method: "GET", path: "/status", auth: "s3cret"}, wantCode: 401, wantMsg: "unsupported Authorization scheme"},
		{name: "malformed signature", setup: withSecret, req: request{method: "GET", path: "/status", auth: AuthScheme + " t=1,n=abc"}, wantCode: 401, wantMsg: "malformed Canoe-HMAC-SHA256 Authorization header: n must be"},
		{name: "oversized header", setup: withSecret, req: request{method: "GET", path: "/status", auth: AuthScheme + " " + strings.Repeat("t", 600)}, wantCode: 401, wantMsg: "over 512 bytes"},
		{name: "wrong secret", setup: withSecret, req: request{method: "DELETE", path: "/peers", body: `{"id":2}`, sign: otherSigner}, wantCode: 401, wantMsg: "bad signature"},
		{name: "signed unknown path", setup: withSecret, req: request{method: "GET", path: "/nope", sign: testSigner}, wantCode: 404},
		{name: "short secret", setup: func(_ *fakeNode, c *Config) { c.Secret = []byte("s3cret") }, req: request{method: "GET", path: "/healthz", sign: testSigner}, wantCode: 500, wantMsg: "authentication misconfigured: keys: cluster secret too short: 6 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNode()
			cfg := f.config()
			if tt.setup != nil {
				tt.setup(f, &cfg)
			}
			before := len(f.peers)
			rec := serve(NewHandler(cfg), tt.req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantCode, truncate(rec.Body.String(), 300))
			}
			eb := errorMessage(t, rec)
			if !strings.Contains(eb.Error, tt.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", eb.Error, tt.wantMsg)
			}
			if got := f.mutations(); got != tt.wantMut {
				t.Errorf("node got %d changing calls, want %d", got, tt.wantMut)
			}
			if len(f.peers) != before {
				t.Errorf("membership changed from %d to %d members", before, len(f.peers))
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			var wantAuth []string
			if rec.Code == 401 {
				wantAuth = []string{AuthScheme}
				if tt.req.method == "GET" && (tt.req.path == "/metrics" || tt.req.path == "/healthz") {
					wantAuth = append(wantAuth, "Bearer")
				}
			}
			if got := rec.Header().Values("WWW-Authenticate"); fmt.Sprint(got) != fmt.Sprint(wantAuth) {
				t.Errorf("WWW-Authenticate = %q, want %q", got, wantAuth)
			}
			var nle *NotLeaderError
			if f.err != nil && errors.As(f.err, &nle) && eb.LeaderID != nle.LeaderID {
				t.Errorf("leader_id = %d, want %d", eb.LeaderID, nle.LeaderID)
			}
		})
	}
}

func failWith(err error) func(*fakeNode, *Config) {
	return func(f *fakeNode, _ *Config) { f.err = err }
}

func panicWith(msg string) func(*fakeNode, *Config) {
	return func(f *fakeNode, _ *Config) { f.panicMsg = msg }
}

// The cluster of the authentication tests.
var (
	testSecret           = []byte("0123456789abcdef0123456789abcdef")
	testClusterID uint64 = 7
)

func withSecret(_ *fakeNode, c *Config) { c.Secret, c.ClusterID = testSecret, testClusterID }

// testSigner signs for the test cluster, otherSigner with another secret.
var (
	testSigner  = mustSigner(testSecret, testClusterID)
	otherSigner = mustSigner([]byte("fedcba9876543210fedcba9876543210"), testClusterID)
)

func mustSigner(secret []byte, clusterID uint64) *Signer {
	s, err := NewSigner(secret, clusterID)
	if err != nil {
		panic(err)
	}
	return s
}

func testMetricsToken() string {
	tok, err := MetricsToken(testSecret, testClusterID)
	if err != nil {
		panic(err)
	}
	return tok
}

// TestHandlerOK covers every successful answer.
func TestHandlerOK(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "canoe_up 1\n")
	})
	tests := []struct {
		name     string
		setup    func(*fakeNode, *Config)
		req      request
		wantCode int
		wantBody string // exact JSON (compact) or text
		check    func(t *testing.T, f *fakeNode)
	}{
		{
			name:     "get peers",
			req:      request{method: "GET", path: "/peers"},
			wantBody: `{"id":1,"host":"10.0.0.1","raft_port":7001,"config_port":8001,"gossip_port":9001,"suffrage":"voter","remote_peers":[{"id":2,"host":"10.0.0.2","raft_port":7002,"config_port":8002,"suffrage":"voter"},{"id":3,"host":"10.0.0.3","raft_port":7003,"config_port":8003,"suffrage":"nonvoter"}]}`,
		},
		{
			name:     "get peers alone",
			setup:    func(f *fakeNode, _ *Config) { f.peers = []Peer{f.self} },
			req:      request{method: "GET", path: "/peers"},
			wantBody: `{"id":1,"host":"10.0.0.1","raft_port":7001,"config_port":8001,"gossip_port":9001,"suffrage":"voter","remote_peers":[]}`,
		},
		{
			name:     "add peer host from connection",
			setup:    func(f *fakeNode, _ *Config) { f.peers = []Peer{f.self} },
			req:      request{method: "POST", path: "/peers", body: validAdd},
			wantBody: `{"id":1,"host":"10.0.0.1","raft_port":7001,"config_port":8001,"gossip_port":9001,"suffrage":"voter","remote_peers":[{"id":4,"host":"192.0.2.1","raft_port":7004,"config_port":8004,"suffrage":"nonvoter"}]}`,
			check: func(t *testing.T, f *fakeNode) {
				want := Peer{ID: 4, Host: "192.0.2.1", RaftPort: 7004, ConfigPort: 8004}
				if len(f.added) != 1 || f.added[0] != want {
					t.Errorf("AddPeer calls = %+v, want [%+v]", f.added, want)
				}
			},
		},
		{
			name:  "add peer all fields",
			setup: func(f *fakeNode, _ *Config) { f.peers = []Peer{f.self} },
			req: request{method: "POST", path: "/peers",
				body: " {\"id\":18446744073709551615,\"host\":\"node-4.example\",\"raft_port\":1,\"config_port\":65535,\"gossip_port\":7946}\n\t "},
			check: func(t *testing.T, f *fakeNode) {
				want := Peer{ID: 1<<64 - 1, Host: "node-4.example", RaftPort: 1, ConfigPort: 65535, GossipPort: 7946}
				if len(f.added) != 1 || f.added[0] != want {
					t.Errorf("AddPeer calls = %+v, want [%+v]", f.added, want)
				}
			},
		},
		{
			name: "add peer ipv6 host",
			req:  request{method: "POST", path: "/peers", body: `{"id":5,"host":"fe80::1%eth0","raft_port":1,"config_port":2}`},
			check: func(t *testing.T, f *fakeNode) {
				if len(f.added) != 1 || f.added[0].Host != "fe80::1%eth0" {
					t.Errorf("AddPeer calls = %+v, want host fe80::1%%eth0", f.added)
				}
			},
		},
		{
			name:     "add read replica",
			setup:    func(f *fakeNode, _ *Config) { f.peers = []Peer{f.self} },
			req:      request{method: "POST", path: "/peers", body: `{"id":4,"host":"10.0.0.4","raft_port":7004,"config_port":8004,"nonvoter":true}`},
			wantBody: `{"id":1,"host":"10.0.0.1","raft_port":7001,"config_port":8001,"gossip_port":9001,"suffrage":"voter","remote_peers":[{"id":4,"host":"10.0.0.4","raft_port":7004,"config_port":8004,"suffrage":"nonvoter","nonvoter":true}]}`,
			check: func(t *testing.T, f *fakeNode) {
				want := Peer{ID: 4, Host: "10.0.0.4", RaftPort: 7004, ConfigPort: 8004, NonVoter: true}
				if len(f.added) != 1 || f.added[0] != want {
					t.Errorf("AddPeer calls = %+v, want [%+v]", f.added, want)
				}
			},
		},
		{
			name: "get peers from a read replica",
			setup: func(f *fakeNode, _ *Config) {
				f.self.Suffrage, f.self.NonVoter = Nonvoter, true
				f.peers = []Peer{f.self}
			},
			req:      request{method: "GET", path: "/peers"},
			wantBody: `{"id":1,"host":"10.0.0.1","raft_port":7001,"config_port":8001,"gossip_port":9001,"suffrage":"nonvoter","nonvoter":true,"remote_peers":[]}`,
		},
		{
			name: "promote",
			setup: func(f *fakeNode, _ *Config) {
				f.peers[0].NonVoter = true
			},
			req:      request{method: "POST", path: "/peers/promote", body: `{"id":3}`},
			wantBody: `{"promoted":3}`,
			check: func(t *testing.T, f *fakeNode) {
				if len(f.promoted) != 1 || f.promoted[0] != 3 {
					t.Errorf("Promote calls = %v, want [3]", f.promoted)
				}
			},
		},
		{
			name:     "signed promote",
			setup:    withSecret,
			req:      request{method: "POST", path: "/peers/promote", body: `{"id":3}`, sign: testSigner},
			wantBody: `{"promoted":3}`,
		},
		{
			name:     "remove peer",
			req:      request{method: "DELETE", path: "/peers", body: `{"id":2}`},
			wantBody: `{"removed":2}`,
			check: func(t *testing.T, f *fakeNode) {
				if len(f.removed) != 1 || f.removed[0] != 2 {
					t.Errorf("RemovePeer calls = %v, want [2]", f.removed)
				}
			},
		},
		{
			name:     "status",
			setup:    func(f *fakeNode, _ *Config) { f.peers = []Peer{f.self} },
			req:      request{method: "GET", path: "/status"},
			wantBody: `{"id":1,"state":"Leader","leader_id":1,"term":3,"commit_index":40,"applied_index":39,"last_index":41,"members":[{"id":1,"host":"10.0.0.1","raft_port":7001,"config_port":8001,"gossip_port":9001,"suffrage":"voter"}]}`,
		},
		{
			name:     "status no members",
			setup:    func(f *fakeNode, _ *Config) { f.peers = nil },
			req:      request{method: "GET", path: "/status"},
			wantBody: `{"id":1,"state":"Leader","leader_id":1,"term":3,"commit_index":40,"applied_index":39,"last_index":41,"members":[]}`,
		},
		{name: "healthz", req: request{method: "GET", path: "/healthz"}, wantBody: `{"status":"ok"}`},
		{
			name:     "metrics",
			setup:    func(_ *fakeNode, c *Config) { c.Metrics = metrics },
			req:      request{method: "GET", path: "/metrics"},
			wantBody: "canoe_up 1\n",
		},
		{name: "options", req: request{method: "OPTIONS", path: "/peers"}, wantCode: 204},
		{name: "metrics token healthz", setup: withSecret, req: request{method: "GET", path: "/healthz", auth: "Bearer " + testMetricsToken()}, wantBody: `{"status":"ok"}`},
		{name: "metrics token lower-case scheme", setup: withSecret, req: request{method: "GET", path: "/healthz", auth: "bearer  " + testMetricsToken() + " "}, wantBody: `{"status":"ok"}`},
		{
			name:     "metrics token metrics",
			setup:    func(f *fakeNode, c *Config) { withSecret(f, c); c.Metrics = metrics },
			req:      request{method: "GET", path: "/metrics", auth: "Bearer " + testMetricsToken()},
			wantBody: "canoe_up 1\n",
		},
		{
			name:     "signed metrics",
			setup:    func(f *fakeNode, c *Config) { withSecret(f, c); c.Metrics = metrics },
			req:      request{method: "GET", path: "/metrics", sign: testSigner},
			wantBody: "canoe_up 1\n",
		},
		{name: "signed status", setup: func(f *fakeNode, c *Config) { withSecret(f, c); f.peers = []Peer{f.self} }, req: request{method: "GET", path: "/status", sign: testSigner},
			wantBody: `{"id":1,"state":"Leader","leader_id":1,"term":3,"commit_index":40,"applied_index":39,"last_index":41,"members":[{"id":1,"host":"10.0.0.1","raft_port":7001,"config_port":8001,"gossip_port":9001,"suffrage":"voter"}]}`},
		{
			name:     "signed remove",
			setup:    withSecret,
			req:      request{method: "DELETE", path: "/peers", body: `{"id":2}`, sign: testSigner},
			wantBody: `{"removed":2}`,
		},
		{name: "signed options", setup: withSecret, req: request{method: "OPTIONS", path: "/peers", sign: testSigner}, wantCode: 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNode()
			cfg := f.config()
			if tt.setup != nil {
				tt.setup(f, &cfg)
			}
			rec := serve(NewHandler(cfg), tt.req)
			wantCode := tt.wantCode
			if wantCode == 0 {
				wantCode = 200
			}
			if rec.Code != wantCode {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, wantCode, rec.Body.String())
			}
			if tt.wantBody != "" {
				if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != strings.TrimSuffix(tt.wantBody, "\n") {
					t.Errorf("body = %s\nwant   %s", got, tt.wantBody)
				}
				if strings.HasPrefix(tt.wantBody, "{") {
					if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type = %q, want application/json", ct)
					}
				}
			}
			if tt.check != nil {
				f.mu.Lock()
				defer f.mu.Unlock()
				tt.check(t, f)
			}
		})
	}
}

// TestHandlerPanicLogged checks that a recovered panic is logged with its
// stack and that the handler keeps serving.
func TestHandlerPanicLogged(t *testing.T) {
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	logger := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{mu: &mu, w: &buf}, Level: hclog.Debug})
	f := newFakeNode()
	cfg := f.config()
	cfg.Logger = logger
	h := NewHandler(cfg)
	f.panicMsg = "boom"
	if rec := serve(h, request{method: "GET", path: "/peers"}); rec.Code != 500 {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	f.mu.Lock()
	f.panicMsg = ""
	f.mu.Unlock()
	if rec := serve(h, request{method: "GET", path: "/peers"}); rec.Code != 200 {
		t.Fatalf("after the panic: status = %d, want 200", rec.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	if s := buf.String(); !strings.Contains(s, "panic") || !strings.Contains(s, "boom") || !strings.Contains(s, "goroutine") {
		t.Errorf("log = %q, want the panic and its stack", s)
	}
}

// TestHandlerAbortPanic checks that http.ErrAbortHandler still aborts.
func TestHandlerAbortPanic(t *testing.T) {
	f := newFakeNode()
	cfg := f.config()
	cfg.Metrics = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	serve(NewHandler(cfg), request{method: "GET", path: "/metrics"})
	t.Errorf("ErrAbortHandler was swallowed")
}

// TestConfigNotShared checks that NewHandler copies the secret.
func TestConfigNotShared(t *testing.T) {
	f := newFakeNode()
	cfg := f.config()
	cfg.Secret, cfg.ClusterID = bytes.Clone(testSecret), testClusterID
	h := NewHandler(cfg)
	cfg.Secret[0] = 'X'
	if rec := serve(h, request{method: "GET", path: "/healthz", sign: testSigner}); rec.Code != 200 {
		t.Errorf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
