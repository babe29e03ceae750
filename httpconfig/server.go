package httpconfig

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Timeouts of the Server's http.Server.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 2 * time.Minute // a request and its body; /snapshot sets its own deadlines
	idleTimeout       = 2 * time.Minute
	writeSlack        = 30 * time.Second // added to RequestTimeout for WriteTimeout
	maxHeaderBytes    = 64 << 10
)

// Server serves the HTTP API (NewHandler) on a listener it owns.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	tls    bool
	log    hclog.Logger
	cancel context.CancelFunc // cancels every request's context
	done   chan struct{}      // closed when Serve returns

	mu      sync.Mutex        // guards serving, closed, busy, idle
	serving bool              // Serve was called
	closed  bool              // Shutdown was called
	busy    map[net.Conn]bool // connections with a request in progress (reading it, or in its handler)
	idle    chan struct{}     // closed when busy becomes empty
}

// NewServer returns a Server for cfg on ln, which it takes over (Shutdown
// closes it). With tlsConfig != nil it serves TLS; tlsConfig must then hold
// a certificate (Certificates, GetCertificate or GetConfigForClient). It
// does not start serving: call Serve.
func NewServer(cfg Config, ln net.Listener, tlsConfig *tls.Config) *Server {
	cfg = cfg.withDefaults()
	base, cancel := context.WithCancel(context.Background())
	s := &Server{
		ln:     ln,
		tls:    tlsConfig != nil,
		log:    cfg.Logger,
		cancel: cancel,
		done:   make(chan struct{}),
		busy:   make(map[net.Conn]bool),
		idle:   make(chan struct{}),
	}
	close(s.idle)
	api := NewHandler(cfg)
	var writeTimeout time.Duration
	if cfg.RequestTimeout > 0 {
		writeTimeout = cfg.RequestTimeout + writeSlack
	}
	s.srv = &http.Server{
		Handler:           api,
		TLSConfig:         tlsConfig.Clone(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          cfg.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnState:         s.connState,
	}
	return s
}

// connState tracks the connections that carry a request: from its first
// byte until its handler has returned and the answer is written.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case st == http.StateActive && !s.busy[c]:
		if len(s.busy) == 0 {
			s.idle = make(chan struct{})
		}
		s.busy[c] = true
	case st != http.StateActive && s.busy[c]:
		delete(s.busy, c)
		if len(s.busy) == 0 {
			close(s.idle)
		}
	}
}

// idleCh returns a channel closed once no connection carries a request.
func (s *Server) idleCh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idle
}

// Addr returns the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves requests until Shutdown, then returns nil; it returns another
// error if the listener fails. It blocks; call it at most once.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("httpconfig: Serve called twice")
	}
	s.serving = true
	closed := s.closed
	s.mu.Unlock()
	defer close(s.done)
	if closed {
		return nil
	}
	var err error
	if s.tls {
		err = s.srv.ServeTLS(s.ln, "", "")
	} else {
		err = s.srv.Serve(s.ln)
	}
	s.mu.Lock()
	closed = s.closed
	s.mu.Unlock()
	if errors.Is(err, http.ErrServerClosed) || closed && errors.Is(err, net.ErrClosed) {
		return nil // Shutdown closed the listener
	}
	return err
}

// Shutdown stops accepting connections, waits for the requests in progress
// (those a connection has begun to send, and their handlers) to finish,
// closes every connection, and returns once Serve has returned. If ctx ends
// first it cancels the running requests' contexts, still waits for their
// handlers (which must return once their context ends), and returns ctx's
// error. It may be called more than once and before Serve.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	serving := s.serving
	s.mu.Unlock()
	// Connections that have not begun a request are not waited for (net/
	// http's own Shutdown would treat a new one as busy for 5 s).
	s.srv.SetKeepAlivesEnabled(false)
	_ = s.ln.Close()
	var err error
	select {
	case <-s.idleCh():
	case <-ctx.Done():
		err = ctx.Err()
		s.cancel()
		<-s.idleCh()
	}
	_ = s.srv.Close()
	if serving {
		<-s.done
	}
	s.cancel()
	return err
}
