package httpconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// startServer runs a Server for cfg on 127.0.0.1:0 and returns it, its base
// URL, a client, and a channel that receives Serve's result.
func startServer(t *testing.T, cfg Config, useTLS bool) (*Server, string, *Client, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var serverTLS, clientTLS *tls.Config
	scheme := "http"
	if useTLS {
		// Borrow httptest's certificate for 127.0.0.1.
		ts := httptest.NewTLSServer(http.NotFoundHandler())
		serverTLS = &tls.Config{Certificates: ts.TLS.Certificates}
		pool := x509.NewCertPool()
		pool.AddCert(ts.Certificate())
		clientTLS = &tls.Config{RootCAs: pool}
		ts.Close()
		scheme = "https"
	}
	s := NewServer(cfg, ln, serverTLS)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve() }()
	c := NewClient(clientTLS, cfg.Secret, cfg.ClusterID)
	t.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, fmt.Sprintf("%s://%s", scheme, s.Addr()), c, errc
}

func TestServerServeShutdown(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			f := newFakeNode()
			cfg := f.config()
			withSecret(f, &cfg)
			s, base, c, errc := startServer(t, cfg, useTLS)
			if !strings.HasPrefix(s.Addr().String(), "127.0.0.1:") {
				t.Errorf("Addr = %v, want 127.0.0.1:port", s.Addr())
			}
			ctx := context.Background()
			st, err := c.Status(ctx, base)
			if err != nil || st.ID != 1 {
				t.Fatalf("Status = %+v, %v; want node 1", st, err)
			}
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown = %v, want nil", err)
			}
			if err := <-errc; err != nil {
				t.Errorf("Serve = %v, want nil after Shutdown", err)
			}
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("second Shutdown = %v, want nil", err)
			}
			c.Close()
			if _, err := c.Status(ctx, base); err == nil {
				t.Errorf("Status after Shutdown succeeded")
			}
		})
	}
}

// TestServerShutdownGraceful checks that Shutdown lets a running request
// finish.
func TestServerShutdownGraceful(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	f := newFakeNode()
	cfg := f.config()
	cfg.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = w.Write([]byte("done"))
	})
	s, base, _, errc := startServer(t, cfg, false)

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		got <- b.String()
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a request was running", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	if b := <-got; b != "done" {
		t.Errorf("running request got %q, want \"done\"", b)
	}
	if err := <-errc; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestServerShutdownForced checks that when Shutdown's ctx ends it cancels
// running requests and still waits for their handlers.
func TestServerShutdownForced(t *testing.T) {
	f := newFakeNode()
	f.block = true
	f.entered = make(chan struct{}, 1)
	cfg := f.config()
	cfg.RequestTimeout = -1
	s, base, c, errc := startServer(t, cfg, false)

	callErr := make(chan error, 1)
	go func() {
		_, err := c.AddPeer(context.Background(), base, Peer{ID: 5, RaftPort: 1, ConfigPort: 2})
		callErr <- err
	}()
	<-f.entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if err := <-callErr; err == nil {
		t.Errorf("AddPeer during forced shutdown succeeded")
	}
	if n := f.mutations(); n != 1 {
		t.Errorf("node got %d calls, want 1", n)
	}
}

func TestServerShutdownBeforeServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{}, ln, nil)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
	if err := s.Serve(); err == nil {
		t.Errorf("second Serve = nil, want an error")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("listener still accepts after Shutdown")
	}
}

// TestServerErrorLog checks that the http.Server's own errors reach hclog.
func TestServerErrorLog(t *testing.T) {
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	cfg := Config{Logger: hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{mu: &mu, w: &buf}})}
	s, _, _, _ := startServer(t, cfg, true)
	// A TLS handshake with garbage makes net/http log through ErrorLog.
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("\x16\x03\x01\x00\x05hello"))
	_, _ = conn.Read(make([]byte, 64))
	conn.Close()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "TLS handshake error") {
		t.Errorf("log = %q, want the TLS handshake error", buf.String())
	}
}
