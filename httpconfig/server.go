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
	readTimeout       = 2 * time.Minute // a 64 MiB proposal batch on a slow link
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

	mu      sync.Mutex        // guards serving, closed, active, reading
	idle    sync.Cond         // signaled (L: &mu) when active drops to 0
	serving bool              // Serve was called
	closed  bool              // Shutdown was called
	active  int               // request handlers running
	reading map[net.Conn]bool // connections with a request in progress
}

// NewServer returns a Server for cfg on ln, which it takes over (Shutdown
// closes it). With tlsConfig != nil it serves TLS; tlsConfig must then hold
// a certificate (Certificates, GetCertificate or GetConfigForClient). It
// does not start serving: call Serve.
func NewServer(cfg Config, ln net.Listener, tlsConfig *tls.Config) *Server {
	cfg = cfg.withDefaults()
	base, cancel := context.WithCancel(context.Background())
	s := &Server{
		ln:      ln,
		tls:     tlsConfig != nil,
		log:     cfg.Logger,
		cancel:  cancel,
		done:    make(chan struct{}),
		reading: make(map[net.Conn]bool),
	}
	s.idle.L = &s.mu
	api := NewHandler(cfg)
	var writeTimeout time.Duration
	if cfg.RequestTimeout > 0 {
		writeTimeout = cfg.RequestTimeout + writeSlack
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.enter()
			defer s.leave()
			api.ServeHTTP(w, r)
		}),
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

// connState tracks the connections that carry a request (from its first
// byte until the answer is written).
func (s *Server) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == http.StateActive {
		s.reading[c] = true
	} else {
		delete(s.reading, c)
	}
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
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, waits for running requests to
// finish, and returns once Serve has returned and every request handler has
// ended. If ctx ends first it cancels the running requests' contexts,
// closes their connections, still waits for the handlers (which must return
// once their context ends), and returns ctx's error. It may be called more
// than once and before Serve.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	serving := s.serving
	s.mu.Unlock()

	// net/http's Shutdown treats a connection that has not sent a request
	// yet as busy for its first 5 s, so a peer's spare keep-alive dial would
	// hold Shutdown up. Once no connection carries a request, only such
	// connections are left: close them.
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-errc:
			break wait
		case <-tick.C:
			if s.requestsInProgress() == 0 {
				_ = s.srv.Close()
			}
		}
	}
	if err != nil {
		s.cancel()
		_ = s.srv.Close()
	}
	_ = s.ln.Close() // in case Serve never ran; closing twice is harmless
	if serving {
		<-s.done
	}
	s.mu.Lock()
	for s.active > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
	s.cancel()
	return err
}

func (s *Server) requestsInProgress() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reading) + s.active
}

func (s *Server) enter() {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
}

func (s *Server) leave() {
	s.mu.Lock()
	s.active--
	if s.active == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}
