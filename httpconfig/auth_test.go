package httpconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/internal/keys"
)

// clock is a settable clock for the server.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// signedHandler returns a handler for f with the test secret and a clock
// at a fixed time.
func signedHandler(f *fakeNode, replayCap int) (http.Handler, *clock) {
	clk := &clock{t: time.UnixMilli(1_700_000_000_000)}
	cfg := f.config()
	withSecret(f, &cfg)
	cfg.now = clk.now
	cfg.replayCap = replayCap
	return NewHandler(cfg), clk
}

// send serves one request with the given Authorization header.
func send(h http.Handler, method, uri string, body []byte, auth string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, uri, bytes.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// TestSignedRequests checks what a signature binds: key, cluster, time,
// method, URI and body; tampering with any of them gets 401 and changes
// nothing.
func TestSignedRequests(t *testing.T) {
	promote := []byte(`{"id":3}`)
	type req struct {
		method, uri string
		body        []byte
	}
	tests := []struct {
		name     string
		signed   req           // what the signature covers
		sent     *req          // what is sent; nil: signed
		signer   *Signer       // nil: testSigner
		at       time.Duration // signing time minus the server's clock
		edit     func(string) string
		wantCode int
		wantMsg  string
		wantMut  int
	}{
		{name: "get", signed: req{"GET", "/peers", nil}, wantCode: 200},
		{name: "add", signed: req{"POST", "/peers", []byte(validAdd)}, wantCode: 200, wantMut: 1},
		{name: "remove", signed: req{"DELETE", "/peers", []byte(`{"id":2}`)}, wantCode: 200, wantMut: 1},
		{name: "promote", signed: req{"POST", "/peers/promote", promote}, wantCode: 200, wantMut: 1},
		{name: "query", signed: req{"GET", "/status?x=1&y=%20", nil}, wantCode: 200},
		{name: "window edge behind", signed: req{"GET", "/status", nil}, at: -SignatureWindow, wantCode: 200},
		{name: "window edge ahead", signed: req{"GET", "/status", nil}, at: SignatureWindow, wantCode: 200},
		{name: "lower-case scheme", signed: req{"GET", "/status", nil}, edit: func(h string) string { return strings.ToLower(AuthScheme) + h[len(AuthScheme):] }, wantCode: 200},
		{name: "reordered parameters with spaces", signed: req{"GET", "/status", nil}, edit: reorder, wantCode: 200},

		{name: "expired", signed: req{"POST", "/peers", []byte(validAdd)}, at: -SignatureWindow - time.Millisecond, wantCode: 401,
			wantMsg: "expired or clock skew: the request's timestamp is 1m0.001s behind this node's clock, outside the ±1m0s window"},
		{name: "hours old", signed: req{"GET", "/peers", nil}, at: -3 * time.Hour, wantCode: 401, wantMsg: "3h0m0s behind"},
		{name: "from the future", signed: req{"DELETE", "/peers", []byte(`{"id":2}`)}, at: 61 * time.Second, wantCode: 401, wantMsg: "1m1s ahead of this node's clock"},
		{name: "other secret", signed: req{"DELETE", "/peers", []byte(`{"id":2}`)}, signer: otherSigner, wantCode: 401, wantMsg: "bad signature: the request was not signed with this cluster's key (wrong ClusterSecret or ClusterID?)"},
		{name: "other cluster", signed: req{"POST", "/peers/promote", promote}, signer: mustSigner(testSecret, testClusterID+1), wantCode: 401, wantMsg: "bad signature"},
		{name: "other method", signed: req{"GET", "/peers", nil}, sent: &req{"DELETE", "/peers", nil}, wantCode: 401, wantMsg: "bad signature"},
		{name: "other path", signed: req{"GET", "/status", nil}, sent: &req{"GET", "/peers", nil}, wantCode: 401, wantMsg: "bad signature"},
		{name: "other query", signed: req{"GET", "/status?x=1", nil}, sent: &req{"GET", "/status?x=2", nil}, wantCode: 401, wantMsg: "bad signature"},
		{name: "query dropped", signed: req{"GET", "/status?x=1", nil}, sent: &req{"GET", "/status", nil}, wantCode: 401, wantMsg: "bad signature"},
		{name: "path case", signed: req{"POST", "/peers", []byte(validAdd)}, sent: &req{"POST", "/PEERS", []byte(validAdd)}, wantCode: 401, wantMsg: "bad signature"},
		{name: "other add body", signed: req{"POST", "/peers", []byte(validAdd)}, sent: &req{"POST", "/peers", []byte(`{"id":5,"raft_port":7005,"config_port":8005}`)},
			wantCode: 401, wantMsg: "request body does not match the SHA-256 it was signed with"},
		{name: "truncated body", signed: req{"POST", "/peers", []byte(validAdd)}, sent: &req{"POST", "/peers", []byte(validAdd[:10])}, wantCode: 401, wantMsg: "does not match"},
		{name: "extended body", signed: req{"POST", "/peers", []byte(validAdd)}, sent: &req{"POST", "/peers", []byte(validAdd + " ")}, wantCode: 401, wantMsg: "does not match"},
		{name: "other remove body", signed: req{"DELETE", "/peers", []byte(`{"id":2}`)}, sent: &req{"DELETE", "/peers", []byte(`{"id":3}`)}, wantCode: 401, wantMsg: "does not match"},
		{name: "other promote body", signed: req{"POST", "/peers/promote", promote}, sent: &req{"POST", "/peers/promote", []byte(`{"id":2}`)}, wantCode: 401, wantMsg: "does not match"},
		{name: "body sent with get", signed: req{"GET", "/status", nil}, sent: &req{"GET", "/status", []byte("x")}, wantCode: 401, wantMsg: "does not match"},
		{name: "signed get body not sent", signed: req{"GET", "/metrics", []byte("x")}, sent: &req{"GET", "/metrics", nil}, wantCode: 401, wantMsg: "does not match"},
		{name: "signed delete body not sent", signed: req{"DELETE", "/peers", []byte(`{"id":2}`)}, sent: &req{"DELETE", "/peers", nil}, wantCode: 401, wantMsg: "does not match"},
		{name: "body added to get", signed: req{"GET", "/status", nil}, sent: &req{"POST", "/peers/promote", promote}, wantCode: 401, wantMsg: "bad signature"},
		{name: "tampered timestamp", signed: req{"GET", "/status", nil}, edit: func(h string) string { return setParam(h, "t", "1700000000001") }, wantCode: 401, wantMsg: "bad signature"},
		{name: "tampered nonce", signed: req{"GET", "/status", nil}, edit: func(h string) string { return setParam(h, "n", "AAAAAAAAAAAAAAAAAAAAAA") }, wantCode: 401, wantMsg: "bad signature"},
		{
			name:   "body and its hash replaced",
			signed: req{"POST", "/peers", []byte(validAdd)}, sent: &req{"POST", "/peers", []byte(`{"id":6,"raft_port":1,"config_port":1}`)},
			edit: func(h string) string {
				sum := sha256.Sum256([]byte(`{"id":6,"raft_port":1,"config_port":1}`))
				return setParam(h, "b", b64.EncodeToString(sum[:]))
			},
			wantCode: 401, wantMsg: "bad signature",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNode()
			h, clk := signedHandler(f, 0)
			signer := tt.signer
			if signer == nil {
				signer = testSigner
			}
			auth := signer.Authorization(tt.signed.method, tt.signed.uri, sha256.Sum256(tt.signed.body), clk.now().Add(tt.at))
			if tt.edit != nil {
				auth = tt.edit(auth)
			}
			sent := tt.signed
			if tt.sent != nil {
				sent = *tt.sent
			}
			rec := send(h, sent.method, sent.uri, sent.body, auth)
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode == 401 {
				if msg := errorMessage(t, rec).Error; !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("error = %q, want it to contain %q", msg, tt.wantMsg)
				}
				if got := rec.Header().Get("WWW-Authenticate"); got != AuthScheme {
					t.Errorf("WWW-Authenticate = %q, want %q", got, AuthScheme)
				}
			}
			if got := f.mutations(); got != tt.wantMut {
				t.Errorf("node got %d changing calls, want %d", got, tt.wantMut)
			}
		})
	}
}

// reorder rewrites a signed header with its parameters reversed and spaces
// around the commas.
func reorder(h string) string {
	scheme, params, _ := strings.Cut(h, " ")
	parts := strings.Split(params, ",")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return scheme + "  " + strings.Join(parts, " , \t")
}

// setParam replaces one parameter's value in a signed header.
func setParam(h, key, val string) string {
	scheme, params, _ := strings.Cut(h, " ")
	parts := strings.Split(params, ",")
	for i, p := range parts {
		if strings.HasPrefix(p, key+"=") {
			parts[i] = key + "=" + val
		}
	}
	return scheme + " " + strings.Join(parts, ",")
}

// TestReplay checks that a header is accepted once, that its replay gets a
// 401 that says so until the timestamp leaves the window, and that the
// cache forgets it then.
func TestReplay(t *testing.T) {
	f := newFakeNode()
	h, clk := signedHandler(f, 0)
	body := []byte(`{"id":2}`)
	auth := testSigner.Authorization("DELETE", "/peers", sha256.Sum256(body), clk.now())
	if rec := send(h, "DELETE", "/peers", body, auth); rec.Code != 200 {
		t.Fatalf("first use: status %d, want 200; body %s", rec.Code, rec.Body)
	}
	for _, d := range []time.Duration{0, time.Second, SignatureWindow} {
		clk.add(d)
		rec := send(h, "DELETE", "/peers", body, auth)
		if rec.Code != 401 {
			t.Fatalf("replay %v later: status %d, want 401", d, rec.Code)
		}
		if msg := errorMessage(t, rec).Error; !strings.Contains(msg, "replayed request") {
			t.Errorf("replay %v later: error %q, want it to say replayed", d, msg)
		}
	}
	clk.add(time.Millisecond)
	rec := send(h, "DELETE", "/peers", body, auth)
	if msg := errorMessage(t, rec).Error; rec.Code != 401 || !strings.Contains(msg, "expired or clock skew") {
		t.Errorf("replay past the window: %d %q, want 401 expired", rec.Code, msg)
	}
	if got := f.mutations(); got != 1 {
		t.Errorf("node got %d RemovePeer calls, want 1", got)
	}
	// A fresh request prunes the forgotten nonce.
	send(h, "GET", "/peers", nil, testSigner.Authorization("GET", "/peers", sha256.Sum256(nil), clk.now()))
	if n := h.(*handler).auth.replay.len(); n != 1 {
		t.Errorf("replay cache holds %d nonces, want 1 (the expired one pruned)", n)
	}
}

// TestReplayCacheCap checks the cache at its cap: it forgets the oldest
// nonce and refuses every timestamp not newer than what it forgot, so no
// forgotten nonce can come back.
func TestReplayCacheCap(t *testing.T) {
	c := newReplayCache(3, 1000)
	const now = 10_000
	for i, ts := range []int64{9_500, 9_100, 9_300} {
		if err := c.add(fmt.Sprint("n", i), ts, now); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if err := c.add("n1", 9_100, now); !errors.Is(err, errReplayed) {
		t.Errorf("replay under the cap: %v, want errReplayed", err)
	}
	// Full: the oldest (n1 at 9100) goes, and 9100 becomes the floor.
	if err := c.add("n3", 9_200, now); err != nil {
		t.Fatalf("add at the cap: %v", err)
	}
	if n := c.len(); n != 3 {
		t.Errorf("cache holds %d, want 3", n)
	}
	if err := c.add("n1", 9_100, now); err == nil || !strings.Contains(err.Error(), "older than this node's replay cache still vouches for") {
		t.Errorf("forgotten nonce replayed: %v, want refused by the floor", err)
	}
	if err := c.add("n9", 9_050, now); err == nil || !errors.Is(err, ErrUnauthorized) {
		t.Errorf("timestamp below the floor: %v, want refused", err)
	}
	// A timestamp above the floor but below every kept one evicts the
	// oldest kept (9200), raises the floor past itself, and is refused.
	if err := c.add("n8", 9_150, now); err == nil {
		t.Errorf("timestamp under the new floor accepted")
	}
	if err := c.add("n7", 9_900, now); err != nil {
		t.Errorf("fresh request at the cap: %v", err)
	}
	// Pruning by time frees the cache: at now 10_400, 9_300 is outside the
	// window.
	if err := c.add("n10", 10_400, 10_400); err != nil {
		t.Errorf("add after the window moved: %v", err)
	}
	if n := c.len(); n != 3 {
		t.Errorf("cache holds %d after pruning, want 3 (9500, 9900, 10400)", n)
	}
}

// TestReplayCacheCapHandler checks the 401 the handler gives at the cap.
func TestReplayCacheCapHandler(t *testing.T) {
	f := newFakeNode()
	h, clk := signedHandler(f, 2)
	old := testSigner.Authorization("GET", "/status", sha256.Sum256(nil), clk.now().Add(-time.Second))
	for i := range 3 {
		auth := testSigner.Authorization("GET", "/status", sha256.Sum256(nil), clk.now().Add(time.Duration(i)*time.Millisecond))
		if rec := send(h, "GET", "/status", nil, auth); rec.Code != 200 {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := send(h, "GET", "/status", nil, old)
	if msg := errorMessage(t, rec).Error; rec.Code != 401 || !strings.Contains(msg, "more than 2 signed requests within the window") {
		t.Errorf("delayed request at the cap: %d %q, want 401 naming the cache", rec.Code, msg)
	}
}

func TestParseSigned(t *testing.T) {
	sum := b64.EncodeToString(bytes.Repeat([]byte{0xab}, 32))
	sig := b64.EncodeToString(bytes.Repeat([]byte{0xcd}, 32))
	valid := "t=1700000000000,n=AAAAAAAAAAAAAAAAAAAAAA,b=" + sum + ",s=" + sig
	tests := []struct {
		name, in string
		wantErr  string // "" for success
	}{
		{"valid", valid, ""},
		{"any order, spaces", " s=" + sig + " ,\tb=" + sum + ", n=AAAAAAAAAAAAAAAAAAAAAA ,t=0", ""},
		{"long nonce", "t=1,n=" + strings.Repeat("a", 64) + ",b=" + sum + ",s=" + sig, ""},
		{"empty", "", `want key=value, got ""`},
		{"missing s", "t=1,n=AAAAAAAAAAAAAAAAAAAAAA,b=" + sum, `parameter "s" missing`},
		{"missing t", "n=AAAAAAAAAAAAAAAAAAAAAA,b=" + sum + ",s=" + sig, `parameter "t" missing`},
		{"twice", valid + ",t=1", `parameter "t" given twice`},
		{"unknown", valid + ",x=1", `unknown parameter "x"`},
		{"long key", "tt=1", `unknown parameter "tt"`},
		{"empty key", "=1", `unknown parameter ""`},
		{"trailing comma", valid + ",", "want key=value"},
		{"negative t", strings.Replace(valid, "t=1700000000000", "t=-1", 1), "t must be unix milliseconds"},
		{"t with letters", strings.Replace(valid, "t=1700000000000", "t=1e9", 1), "t must be unix milliseconds"},
		{"t too long", strings.Replace(valid, "t=1700000000000", "t=1234567890123456", 1), "1 to 15 digits"},
		{"empty t", strings.Replace(valid, "t=1700000000000", "t=", 1), "t must be"},
		{"short nonce", strings.Replace(valid, "AAAAAAAAAAAAAAAAAAAAAA", "AAAA", 1), "n must be 16 to 64 base64url characters"},
		{"long nonce", strings.Replace(valid, "AAAAAAAAAAAAAAAAAAAAAA", strings.Repeat("A", 65), 1), "n must be"},
		{"nonce not base64url", strings.Replace(valid, "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA+", 1), "n must be"},
		{"padded hash", strings.Replace(valid, sum, sum+"=", 1), "b must be a SHA-256"},
		{"std base64 hash", strings.Replace(valid, sum, strings.ReplaceAll(sum, "q", "+"), 1), "b must be"},
		{"short sig", strings.Replace(valid, sig, sig[:42], 1), "s must be an HMAC-SHA256"},
		{"non-canonical sig bits", strings.Replace(valid, sig, sig[:42]+"R", 1), "s must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseSigned(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseSigned: %v", err)
				}
				again, err := parseSigned(strings.TrimPrefix(p.String(), AuthScheme+" "))
				if err != nil || again != p {
					t.Errorf("String() = %q does not parse back: %+v, %v", p.String(), again, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseSigned accepted %q: %+v", tt.in, p)
			}
			if !errors.Is(err, errMalformedAuth) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want errMalformedAuth containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMetricsToken(t *testing.T) {
	k, err := keys.Derive(testSecret, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := MetricsToken(testSecret, testClusterID)
	if err != nil || tok != base64.RawURLEncoding.EncodeToString(k.Metrics[:]) || len(tok) != 43 {
		t.Errorf("MetricsToken = %q, %v; want the 43-character base64url metrics key", tok, err)
	}
	if other, _ := MetricsToken(testSecret, testClusterID+1); other == tok {
		t.Errorf("MetricsToken does not depend on the cluster ID")
	}
	if _, err := MetricsToken([]byte("short"), 1); !errors.Is(err, keys.ErrShortSecret) {
		t.Errorf("MetricsToken(short secret) error = %v, want ErrShortSecret", err)
	}
	if _, err := NewSigner(nil, 1); !errors.Is(err, keys.ErrShortSecret) {
		t.Errorf("NewSigner(nil) error = %v, want ErrShortSecret", err)
	}
}

// recordingListener keeps every byte its connections read.
type recordingListener struct {
	net.Listener
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, l: l}, nil
}

func (l *recordingListener) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}

type recordingConn struct {
	net.Conn
	l *recordingListener
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.buf.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

// encodings returns the forms in which b could show up in a request.
func encodings(b []byte) map[string][]byte {
	return map[string][]byte{
		"raw":           b,
		"hex":           []byte(hex.EncodeToString(b)),
		"HEX":           []byte(strings.ToUpper(hex.EncodeToString(b))),
		"base64":        []byte(base64.StdEncoding.EncodeToString(b)),
		"base64 raw":    []byte(base64.RawStdEncoding.EncodeToString(b)),
		"base64url":     []byte(base64.URLEncoding.EncodeToString(b)),
		"base64url raw": []byte(base64.RawURLEncoding.EncodeToString(b)),
	}
}

// TestClientRevealsNoKey captures every byte a Client sends for each call
// and checks that neither the secret nor any key derived from it is among
// them, in any common encoding.
func TestClientRevealsNoKey(t *testing.T) {
	f := newFakeNode()
	cfg := f.config()
	withSecret(f, &cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingListener{Listener: ln}
	ts := httptest.NewUnstartedServer(NewHandler(cfg))
	ts.Listener.Close()
	ts.Listener = rec
	ts.Start()
	t.Cleanup(ts.Close)
	c := NewClient(nil, testSecret, testClusterID)
	t.Cleanup(c.Close)
	ctx := context.Background()
	if _, err := c.Peers(ctx, ts.URL); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddPeer(ctx, ts.URL, Peer{ID: 9, RaftPort: 1, ConfigPort: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemovePeer(ctx, ts.URL, 9); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, ts.URL, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx, ts.URL); err != nil {
		t.Fatal(err)
	}
	wire := rec.bytes()
	if n := bytes.Count(wire, []byte("Authorization: "+AuthScheme+" t=")); n != 5 {
		t.Fatalf("captured %d signed requests, want 5:\n%s", n, wire)
	}
	k, err := keys.Derive(testSecret, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string][]byte{
		"the secret": testSecret, "its first 16 bytes": testSecret[:16],
		"gossip key": k.Gossip[:], "raft key": k.Raft[:], "API key": k.API[:], "metrics token": k.Metrics[:],
	} {
		for enc, b := range encodings(secret) {
			if bytes.Contains(wire, b) {
				t.Errorf("the client sent %s (%s)", name, enc)
			}
		}
	}
}

// TestClientBadSecret checks that a client with an unusable secret fails
// every call locally, saying why, without sending anything.
func TestClientBadSecret(t *testing.T) {
	var calls int
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
	}))
	t.Cleanup(ts.Close)
	c := NewClient(nil, []byte("guess"), 1)
	t.Cleanup(c.Close)
	_, err := c.Status(context.Background(), ts.URL)
	var se *StatusError
	if err == nil || errors.As(err, &se) || !errors.Is(err, keys.ErrShortSecret) || !strings.Contains(err.Error(), "5 bytes") {
		t.Errorf("Status with a 5-byte secret: %v, want a local ErrShortSecret", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 0 {
		t.Errorf("server got %d requests, want 0", calls)
	}
}

// tripwire is every component of a Config; it counts the calls it gets.
type tripwire struct {
	mu    sync.Mutex // guards calls
	calls []string
}

func (w *tripwire) hit(what string) {
	w.mu.Lock()
	w.calls = append(w.calls, what)
	w.mu.Unlock()
}

func (w *tripwire) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

func (w *tripwire) Self() Peer                               { w.hit("Self"); return Peer{ID: 1} }
func (w *tripwire) Peers() []Peer                            { w.hit("Peers"); return nil }
func (w *tripwire) AddPeer(context.Context, Peer) error      { w.hit("AddPeer"); return nil }
func (w *tripwire) RemovePeer(context.Context, uint64) error { w.hit("RemovePeer"); return nil }
func (w *tripwire) Promote(context.Context, uint64) error    { w.hit("Promote"); return nil }
func (w *tripwire) Status() Status                           { w.hit("Status"); return Status{} }
func (w *tripwire) Healthy() error                           { w.hit("Healthy"); return nil }
func (w *tripwire) Backup(context.Context, io.Writer) (uint64, error) {
	w.hit("Backup")
	return 1, nil
}
func (w *tripwire) StageRestore(context.Context, io.Reader) (StagedRestore, error) {
	w.hit("StageRestore")
	return nil, errors.New("tripwire")
}
func (w *tripwire) TransferLeadership(context.Context, uint64) (uint64, error) {
	w.hit("TransferLeadership")
	return 0, nil
}
func (w *tripwire) ServeHTTP(http.ResponseWriter, *http.Request) { w.hit("Metrics") }

// TestEveryRouteRefusesStrangers: with a secret, every route and method
// (and unknown ones) answers 401 to a request without an Authorization
// header, with another cluster's signature, or with a damaged header, and
// never reaches the node.
func TestEveryRouteRefusesStrangers(t *testing.T) {
	w := &tripwire{}
	clk := &clock{t: time.UnixMilli(1_700_000_000_000)}
	h := NewHandler(Config{
		Membership: w, Promoter: w, Status: w, Snapshots: w, Leadership: w, Metrics: w,
		Secret: testSecret, ClusterID: testClusterID, now: clk.now,
	})
	body := []byte(`{"id":2,"raft_port":1,"config_port":1}`)
	routes := []struct{ method, path string }{
		{"GET", PathPeers}, {"POST", PathPeers}, {"DELETE", PathPeers},
		{"POST", PathPromote}, {"GET", PathStatus}, {"GET", PathHealthz}, {"GET", PathMetrics},
		{"GET", PathSnapshot}, {"POST", PathSnapshot}, {"POST", PathLeaderTransfer},
		{"OPTIONS", PathPeers}, {"OPTIONS", "*"}, {"PUT", PathPeers}, {"HEAD", PathHealthz}, {"GET", "/nope"},
	}
	for _, rt := range routes {
		sum := sha256.Sum256(body)
		valid := testSigner.Authorization(rt.method, rt.path, sum, clk.now())
		for name, auth := range map[string]string{
			"unsigned":      "",
			"other secret":  otherSigner.Authorization(rt.method, rt.path, sum, clk.now()),
			"other cluster": mustSigner(testSecret, testClusterID+1).Authorization(rt.method, rt.path, sum, clk.now()),
			"truncated":     valid[:len(valid)-10],
			"flipped bit":   valid[:len(valid)-1] + string(valid[len(valid)-1]^1),
			"scheme only":   AuthScheme,
			"garbage":       "\x00\xff",
		} {
			rec := send(h, rt.method, rt.path, body, auth)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s, %s: status %d, want 401; body %s", rt.method, rt.path, name, rec.Code, rec.Body)
			}
		}
	}
	if calls := w.got(); len(calls) != 0 {
		t.Errorf("strangers reached the node: %v", calls)
	}
	// The control: the same handler serves a properly signed request.
	if rec := send(h, "GET", PathStatus, nil, testSigner.Authorization("GET", PathStatus, sha256.Sum256(nil), clk.now())); rec.Code != http.StatusOK {
		t.Errorf("signed GET %s: status %d, want 200; body %s", PathStatus, rec.Code, rec.Body)
	}
	if calls := w.got(); fmt.Sprint(calls) != "[Status]" {
		t.Errorf("signed GET %s: node calls %v, want [Status]", PathStatus, calls)
	}
}
