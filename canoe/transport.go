package canoe

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's TCP stream layer with an advertised address that may
// differ from the bound one, and optional TLS.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	tls       *tls.Config // nil: plain TCP
}

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if s.tls == nil {
		return d.Dial("tcp", string(address))
	}
	return (&tls.Dialer{NetDialer: &d, Config: s.tls}).Dial("tcp", string(address))
}

func (s *streamLayer) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s *streamLayer) Close() error              { return s.ln.Close() }
func (s *streamLayer) Addr() net.Addr            { return s.advertise }

// progressTransport wraps a raft transport and remembers, per follower, the
// last log index it reported in AppendEntries answers (heartbeats included,
// so the figure is at most a heartbeat old). Raft does not expose its
// followers' progress; canoe needs it to promote non-voters once caught up.
type progressTransport struct {
	raft.Transport

	mu      sync.Mutex // guards lastLog
	lastLog map[raft.ServerID]uint64
}

func newProgressTransport(t raft.Transport) *progressTransport {
	return &progressTransport{Transport: t, lastLog: make(map[raft.ServerID]uint64)}
}

func (t *progressTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.Transport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.mu.Lock()
		t.lastLog[id] = resp.LastLog
		t.mu.Unlock()
	}
	return err
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
