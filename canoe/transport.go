package canoe

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's TCP stream layer with an advertised address that may
// differ from the bound one, and optional TLS. It tracks its connections and
// closes them all on Close: raft's NetworkTransport closes only its listener,
// which would leave the goroutines serving inbound connections running.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	tls       *tls.Config // nil: plain TCP

	ctx    context.Context // cancelled by Close: ends dials in progress
	cancel context.CancelFunc

	mu     sync.Mutex // guards conns, closed
	conns  map[*trackedConn]struct{}
	closed bool
}

func newStreamLayer(ln net.Listener, advertise net.Addr, tlsConfig *tls.Config) *streamLayer {
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &streamLayer{ln: ln, advertise: advertise, tls: tlsConfig, ctx: ctx, cancel: cancel, conns: make(map[*trackedConn]struct{})}
}

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	var c net.Conn
	var err error
	if s.tls == nil {
		c, err = d.DialContext(s.ctx, "tcp", string(address))
	} else {
		c, err = (&tls.Dialer{NetDialer: &d, Config: s.tls}).DialContext(s.ctx, "tcp", string(address))
	}
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *streamLayer) Close() error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		c.closing.Store(true)
		c.Conn.Close()
	}
	return err
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

// trackedConn forgets itself in its stream layer when closed.
type trackedConn struct {
	net.Conn
	s       *streamLayer
	closing atomic.Bool // closed by the stream layer's Close
}

// Read reports a connection closed by Stop as an orderly end (io.EOF), so
// raft does not log every connection it loses at shutdown as an error.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.closing.Load() {
		err = io.EOF
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// progressTransport wraps a raft transport and remembers, per follower, the
// last log index it reported in AppendEntries answers (heartbeats included,
// so the figure is at most a heartbeat old). Raft does not expose its
// followers' progress; canoe needs it to promote non-voters once caught up.
type progressTransport struct {
	raft.Transport

	mu      sync.Mutex // guards lastLog, lastAck
	lastLog map[raft.ServerID]uint64
	lastAck map[raft.ServerID]time.Time
}

func newProgressTransport(t raft.Transport) *progressTransport {
	return &progressTransport{Transport: t, lastLog: make(map[raft.ServerID]uint64), lastAck: make(map[raft.ServerID]time.Time)}
}

func (t *progressTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.Transport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.mu.Lock()
		t.lastLog[id] = resp.LastLog
		t.lastAck[id] = time.Now()
		t.mu.Unlock()
	}
	return err
}

// answeredWithin reports whether follower id answered an AppendEntries
// (heartbeats included) within d.
func (t *progressTransport) answeredWithin(id raft.ServerID, d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.lastAck[id]
	return ok && time.Since(at) < d
}

// AppendEntriesPipeline turns raft's pipelined replication off. Its
// netPipeline can deadlock at shutdown (hashicorp/raft#612: with the
// default MaxRPCsInFlight the send loop and the decoder wait on each other
// forever, and Shutdown waits for both). canoe batches proposals itself, so
// one AppendEntries in flight per follower loses little.
func (t *progressTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// progress returns the last log index follower id reported, and whether it
// reported one.
func (t *progressTransport) progress(id raft.ServerID) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.lastLog[id]
	return n, ok
}

// RequestPreVote forwards pre-vote requests; raft enables pre-vote only on
// transports that implement it.
func (t *progressTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	pv, ok := t.Transport.(raft.WithPreVote)
	if !ok {
		return errors.New("canoe: transport does not support pre-vote")
	}
	return pv.RequestPreVote(id, target, args, resp)
}

// Close closes the wrapped transport.
func (t *progressTransport) Close() error {
	if c, ok := t.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	if c, ok := t.Transport.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

var (
	_ raft.WithPreVote = (*progressTransport)(nil)
	_ raft.WithClose   = (*progressTransport)(nil)
)
