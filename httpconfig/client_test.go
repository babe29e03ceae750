package httpconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
)

// startAPI serves f's API with httptest (TLS if useTLS) and returns the
// base URL and a client with clientSecret.
func startAPI(t *testing.T, cfg Config, useTLS bool, clientSecret []byte) (string, *Client) {
	t.Helper()
	ts := httptest.NewUnstartedServer(NewHandler(cfg))
	var tlsConfig *tls.Config
	if useTLS {
		ts.StartTLS()
		pool := x509.NewCertPool()
		pool.AddCert(ts.Certificate())
		tlsConfig = &tls.Config{RootCAs: pool}
	} else {
		ts.Start()
	}
	c := NewClient(tlsConfig, clientSecret, cfg.ClusterID)
	t.Cleanup(func() {
		c.Close()
		ts.Close()
	})
	return ts.URL, c
}

func TestClientRoundTrip(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			f := newFakeNode()
			cfg := f.config()
			secret := []byte{1, 2, 3, 250, 0, 10, 13, 32, 255, 254, 9, 8, 7, 6, 5, 4} // binary
			cfg.Secret, cfg.ClusterID = secret, 1<<63
			base, c := startAPI(t, cfg, useTLS, secret)
			if useTLS != strings.HasPrefix(base, "https://") {
				t.Fatalf("base URL %s, want TLS %v", base, useTLS)
			}
			ctx := context.Background()

			pr, err := c.Peers(ctx, base)
			if err != nil {
				t.Fatalf("Peers: %v", err)
			}
			if pr.Self() != f.self || len(pr.RemotePeers) != 2 || pr.RemotePeers[0].ID != 2 || pr.RemotePeers[1].ID != 3 {
				t.Errorf("Peers = %+v, want self %+v and remote peers 2, 3", pr, f.self)
			}

			newPeer := Peer{ID: 9, Host: "10.0.0.9", RaftPort: 7009, ConfigPort: 8009, GossipPort: 9009, Suffrage: Voter, ClusterID: 0x100}
			pr, err = c.AddPeer(ctx, base, newPeer)
			if err != nil {
				t.Fatalf("AddPeer: %v", err)
			}
			if got := pr.RemotePeers[len(pr.RemotePeers)-1]; got.ID != 9 || got.Host != "10.0.0.9" || got.GossipPort != 9009 {
				t.Errorf("AddPeer answer's last remote peer = %+v, want peer 9", got)
			}
			f.mu.Lock()
			added := f.added
			f.mu.Unlock()
			newPeer.Suffrage = "" // not sent
			if len(added) != 1 || added[0] != newPeer {
				t.Errorf("node got AddPeer(%+v), want %+v", added, newPeer)
			}

			replica := Peer{ID: 10, Host: "10.0.0.10", RaftPort: 7010, ConfigPort: 8010, NonVoter: true}
			if _, err := c.AddPeer(ctx, base, replica); err != nil {
				t.Fatalf("AddPeer(read replica): %v", err)
			}
			f.mu.Lock()
			added = f.added
			f.mu.Unlock()
			if len(added) != 2 || added[1] != replica {
				t.Errorf("node got AddPeer(%+v), want the second to be %+v", added, replica)
			}
			if err := c.Promote(ctx, base, 10); err != nil {
				t.Fatalf("Promote: %v", err)
			}
			if err := c.Promote(ctx, base, 99); !errors.Is(err, ErrPeerNotFound) {
				t.Errorf("Promote(unknown): got %v, want ErrPeerNotFound", err)
			}

			for _, id := range []uint64{9, 10} {
				if err := c.RemovePeer(ctx, base, id); err != nil {
					t.Fatalf("RemovePeer(%d): %v", id, err)
				}
			}

			st, err := c.Status(ctx, base)
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			if st.ID != 1 || st.State != "Leader" || st.Term != 3 || st.CommitIndex != 40 || len(st.Members) != 3 {
				t.Errorf("Status = %+v", st)
			}
		})
	}
}

// TestClientAddPeerSendsNonVoterOnlyWhenSet: servers that predate
// "nonvoter" refuse unknown fields, so a plain join must not send it.
func TestClientAddPeerSendsNonVoterOnlyWhenSet(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":1,"raft_port":1,"config_port":2,"remote_peers":[]}`)
	}))
	defer ts.Close()
	c := NewClient(nil, nil, 0)
	defer c.Close()
	for _, nv := range []bool{false, true} {
		if _, err := c.AddPeer(context.Background(), ts.URL, Peer{ID: 4, RaftPort: 1, ConfigPort: 2, NonVoter: nv}); err != nil {
			t.Fatalf("AddPeer(NonVoter %v): %v", nv, err)
		}
	}
	want := []string{`{"id":4,"raft_port":1,"config_port":2}`, `{"id":4,"raft_port":1,"config_port":2,"nonvoter":true}`}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Fatalf("bodies %q, want %q", bodies, want)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name         string
		setup        func(*fakeNode, *Config)
		clientSecret string
		call         func(c *Client, base string) error
		wantCode     int
		want         error // sentinel; nil: none matches
		wantLeader   uint64
	}{
		{
			name:     "remove unknown peer",
			call:     func(c *Client, base string) error { return c.RemovePeer(ctx, base, 77) },
			wantCode: 404, want: ErrPeerNotFound,
		},
		{
			name: "add invalid peer",
			call: func(c *Client, base string) error {
				_, err := c.AddPeer(ctx, base, Peer{ID: 5, RaftPort: 0, ConfigPort: 1})
				return err
			},
			wantCode: 400, want: ErrInvalid,
		},
		{
			name:  "add conflict",
			setup: failWith(ErrConflict),
			call: func(c *Client, base string) error {
				_, err := c.AddPeer(ctx, base, Peer{ID: 5, RaftPort: 1, ConfigPort: 1})
				return err
			},
			wantCode: 409, want: ErrConflict,
		},
		{
			name:     "removed",
			setup:    failWith(ErrRemoved),
			call:     func(c *Client, base string) error { return c.Promote(ctx, base, 3) },
			wantCode: 410, want: ErrRemoved,
		},
		{
			name:  "body too large",
			setup: func(_ *fakeNode, c *Config) { c.MaxBodyBytes = 10 },
			call: func(c *Client, base string) error {
				_, err := c.AddPeer(ctx, base, Peer{ID: 5, RaftPort: 1, ConfigPort: 1})
				return err
			},
			wantCode: 413, want: ErrTooLarge,
		},
		{
			name:     "promote not leader",
			setup:    failWith(&NotLeaderError{LeaderID: 3}),
			call:     func(c *Client, base string) error { return c.Promote(ctx, base, 3) },
			wantCode: 421, want: ErrNotLeader, wantLeader: 3,
		},
		{
			name:     "promote no leader",
			setup:    failWith(ErrNoLeader),
			call:     func(c *Client, base string) error { return c.Promote(ctx, base, 3) },
			wantCode: 503, want: ErrNoLeader,
		},
		{
			name:     "node timeout",
			setup:    failWith(context.DeadlineExceeded),
			call:     func(c *Client, base string) error { return c.RemovePeer(ctx, base, 2) },
			wantCode: 504, want: context.DeadlineExceeded,
		},
		{
			name:     "internal error",
			setup:    failWith(errors.New("disk on fire")),
			call:     func(c *Client, base string) error { return c.RemovePeer(ctx, base, 2) },
			wantCode: 500,
		},
		{
			name:         "wrong secret",
			setup:        withSecret,
			clientSecret: "fedcba9876543210fedcba9876543210",
			call:         func(c *Client, base string) error { _, err := c.Status(ctx, base); return err },
			wantCode:     401, want: ErrUnauthorized,
		},
		{
			name:     "no secret",
			setup:    withSecret,
			call:     func(c *Client, base string) error { _, err := c.Peers(ctx, base); return err },
			wantCode: 401, want: ErrUnauthorized,
		},
	}
	sentinels := []error{ErrInvalid, ErrUnauthorized, ErrPeerNotFound, ErrConflict, ErrRemoved,
		ErrTooLarge, ErrNotLeader, ErrNoLeader, context.DeadlineExceeded}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNode()
			cfg := f.config()
			if tt.setup != nil {
				tt.setup(f, &cfg)
			}
			var secret []byte
			if tt.clientSecret != "" {
				secret = []byte(tt.clientSecret)
			}
			base, c := startAPI(t, cfg, false, secret)
			err := tt.call(c, base)
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("error = %v (%T), want a *StatusError", err, err)
			}
			if se.Code != tt.wantCode || se.Message == "" || se.LeaderID != tt.wantLeader {
				t.Errorf("StatusError = %+v, want code %d, a message, leader %d", se, tt.wantCode, tt.wantLeader)
			}
			for _, s := range sentinels {
				if got, want := errors.Is(err, s), s == tt.want; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
				}
			}
		})
	}
}

func TestClientContextDeadline(t *testing.T) {
	f := newFakeNode()
	f.block = true
	f.entered = make(chan struct{}, 1)
	base, c := startAPI(t, f.config(), false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Promote(ctx, base, 3)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Promote error = %v, want context.DeadlineExceeded", err)
	}
	var se *StatusError
	if errors.As(err, &se) {
		t.Errorf("error %v is a StatusError, want a local deadline", err)
	}
	<-f.entered
}

// rawServer serves h with httptest and returns its base URL and a client.
func rawServer(t *testing.T, h http.HandlerFunc) (string, *Client, *int) {
	t.Helper()
	var (
		mu    sync.Mutex
		conns int
	)
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	ts.Start()
	c := NewClient(nil, nil, 0)
	t.Cleanup(func() {
		c.Close()
		ts.Close()
	})
	return ts.URL, c, &conns
}

func TestClientOddAnswers(t *testing.T) {
	long := strings.Repeat("z", 10000)
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		call     func(c *Client, base string) error
		wantCode int    // 0: not a StatusError
		wantMsg  string // substring of the error text
		want     error
	}{
		{
			name: "plain text error",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "bad gateway thing", http.StatusBadGateway)
			},
			call:     func(c *Client, base string) error { _, err := c.Peers(context.Background(), base); return err },
			wantCode: 502, wantMsg: "bad gateway thing",
		},
		{
			name:     "long text error",
			handler:  func(w http.ResponseWriter, _ *http.Request) { http.Error(w, long, http.StatusBadRequest) },
			call:     func(c *Client, base string) error { _, err := c.Peers(context.Background(), base); return err },
			wantCode: 400, wantMsg: strings.Repeat("z", 512) + "...", want: ErrInvalid,
		},
		{
			name:     "empty error",
			handler:  func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
			call:     func(c *Client, base string) error { _, err := c.Status(context.Background(), base); return err },
			wantCode: 503, wantMsg: "Service Unavailable", want: ErrNoLeader,
		},
		{
			name: "redirect not followed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://127.0.0.1:1/peers", http.StatusTemporaryRedirect)
			},
			call:     func(c *Client, base string) error { _, err := c.Peers(context.Background(), base); return err },
			wantCode: 307,
		},
		{
			name:    "bad JSON answer",
			handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{nope") },
			call:    func(c *Client, base string) error { _, err := c.Status(context.Background(), base); return err },
			wantMsg: "decoding answer",
		},
		{
			name:    "bad base URL",
			handler: func(http.ResponseWriter, *http.Request) { t.Error("request sent") },
			call: func(c *Client, _ string) error {
				_, err := c.Peers(context.Background(), "ftp://127.0.0.1:1")
				return err
			},
			wantMsg: "scheme must be http or https",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, c, _ := rawServer(t, tt.handler)
			err := tt.call(c, base)
			if err == nil {
				t.Fatal("no error")
			}
			var se *StatusError
			if isSE := errors.As(err, &se); isSE != (tt.wantCode != 0) {
				t.Fatalf("error %v: StatusError %v, want %v", err, isSE, tt.wantCode != 0)
			}
			if se != nil && se.Code != tt.wantCode {
				t.Errorf("Code = %d, want %d", se.Code, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", truncate(err.Error(), 700), tt.wantMsg)
			}
			if se != nil && len(se.Message) > 600 {
				t.Errorf("Message is %d bytes long, want it truncated", len(se.Message))
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.want)
			}
			if tt.want == nil && errors.Is(err, ErrInvalid) {
				t.Errorf("error %v matches ErrInvalid", err)
			}
		})
	}
}

// TestClientReusesConnections checks that answers, errors included, are
// drained so that one connection serves every call.
func TestClientReusesConnections(t *testing.T) {
	f := newFakeNode()
	h := NewHandler(f.config())
	base, c, conns := rawServer(t, h.ServeHTTP)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := c.Peers(ctx, base); err != nil {
			t.Fatalf("Peers: %v", err)
		}
		if err := c.RemovePeer(ctx, base, 1000); !errors.Is(err, ErrPeerNotFound) {
			t.Fatalf("RemovePeer = %v, want ErrPeerNotFound", err)
		}
		if err := c.Promote(ctx, base, 3); err != nil {
			t.Fatalf("Promote: %v", err)
		}
		if _, err := c.AddPeer(ctx, base, Peer{ID: 1}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("AddPeer = %v, want ErrInvalid", err)
		}
	}
	c.Close()
	if *conns != 1 {
		t.Errorf("client opened %d connections, want 1", *conns)
	}
}

func TestParseBaseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    string // "" means an error
		wantErr string
	}{
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{in: "http://127.0.0.1:8080/", want: "http://127.0.0.1:8080"},
		{in: "https://node-1.example:443", want: "https://node-1.example:443"},
		{in: "HTTP://h:1", want: "http://h:1"},
		{in: "http://[::1]:65535", want: "http://[::1]:65535"},
		{in: "127.0.0.1:8080", wantErr: "bad API base URL"},
		{in: "ftp://h:21", wantErr: "scheme"},
		{in: "http://h", wantErr: "missing port"},
		{in: "http://h:", wantErr: "port"},
		{in: "http://h:0", wantErr: "port"},
		{in: "http://h:65536", wantErr: "port"},
		{in: "http://:80", wantErr: "missing host"},
		{in: "http://h:80/peers", wantErr: "path"},
		{in: "http://h:80?x=1", wantErr: "query"},
		{in: "http://h:80/?", wantErr: "query"},
		{in: "http://h:80#f", wantErr: "fragment"},
		{in: "http://u:p@h:80", wantErr: "user info"},
		{in: "http:h:80", wantErr: "scheme://host:port"},
		{in: "http://h :80", wantErr: "bad API base URL"},
		{in: "", wantErr: "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseBaseURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseBaseURL(%q) = %v, %v; want an error containing %q", tt.in, u, err, tt.wantErr)
				}
				return
			}
			if err != nil || u.String() != tt.want {
				t.Errorf("ParseBaseURL(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
			}
		})
	}
}

func TestStatusErrorIs(t *testing.T) {
	tests := []struct {
		code int
		want error
	}{
		{400, ErrInvalid}, {401, ErrUnauthorized}, {404, ErrPeerNotFound}, {409, ErrConflict},
		{410, ErrRemoved}, {413, ErrTooLarge}, {421, ErrNotLeader}, {503, ErrNoLeader},
		{504, context.DeadlineExceeded}, {500, nil}, {405, nil}, {502, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			err := fmt.Errorf("calling: %w", &StatusError{Code: tt.code, Message: "m"})
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("errors.Is(%d, %v) = false, want true", tt.code, tt.want)
			}
			if tt.want != ErrInvalid && errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%d, ErrInvalid) = true, want false", tt.code)
			}
			if got := statusFor(sentinelOr(tt.want)); tt.want != nil && got != tt.code {
				t.Errorf("statusFor(%v) = %d, want %d", tt.want, got, tt.code)
			}
		})
	}
}

func sentinelOr(err error) error {
	if err == nil {
		return errors.New("other")
	}
	return fmt.Errorf("wrapped: %w", err)
}

// TestClientTellsForeignAnswers: answers that canoe's API never gives are
// marked, so that a caller can tell a server that is not canoe.
func TestClientTellsForeignAnswers(t *testing.T) {
	page := "<!DOCTYPE html><html>" + strings.Repeat("<p>lorem ipsum</p>", 100) + "</html>"
	for _, tt := range []struct {
		name       string
		handler    http.HandlerFunc
		foreign    bool // a *StatusError with Foreign set
		unexpected bool // an error matching ErrUnexpectedAnswer
	}{
		{"canoe error", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "no leader", 0)
		}, false, false},
		{"HTML 404", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, page)
		}, true, false},
		{"JSON without error", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"message":"nope"}`)
		}, true, false},
		{"HTML 200", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, page)
		}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base, c, _ := rawServer(t, tt.handler)
			_, err := c.AddPeer(context.Background(), base, Peer{ID: 1, RaftPort: 1, ConfigPort: 2})
			if err == nil {
				t.Fatal("no error")
			}
			var se *StatusError
			if got := errors.As(err, &se) && se.Foreign; got != tt.foreign {
				t.Errorf("%v: Foreign = %v, want %v", err, got, tt.foreign)
			}
			if got := errors.Is(err, ErrUnexpectedAnswer); got != tt.unexpected {
				t.Errorf("%v: matches ErrUnexpectedAnswer = %v, want %v", err, got, tt.unexpected)
			}
			if tt.unexpected {
				if msg := err.Error(); !strings.Contains(msg, "text/html") || !strings.Contains(msg, "<!DOCTYPE html>") || len(msg) > 500 {
					t.Errorf("error %q should name the Content-Type and quote at most 200 bytes of the body", msg)
				}
			}
		})
	}
}

func TestParseBaseURLErrorType(t *testing.T) {
	_, err := ParseBaseURL("http://h:1#frag")
	var be *BaseURLError
	if !errors.As(err, &be) || be.URL != "http://h:1#frag" || be.Reason != "fragment not allowed" {
		t.Fatalf("got %#v, want a *BaseURLError for the fragment", err)
	}
}
