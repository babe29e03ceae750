package transport

import (
	"bufio"
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Channel is what an authenticated connection carries, named by the byte
// the client sends after the handshake.
type Channel byte

const (
	// Raft carries hashicorp/raft's NetworkTransport protocol.
	Raft Channel = 'R'
)

// Defaults of the zero fields of Config.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxPending       = 128
	DefaultMaxConns         = 256
)

// Config configures a Layer.
type Config struct {
	// Listener is the bound TCP listener; the Layer owns it from New on.
	Listener net.Listener
	// Advertise is the address other nodes dial to reach this one.
	Advertise net.Addr
	// TLS, when set, wraps every connection in TLS; the listener then
	// requires and verifies a client certificate (ClientCAs, or RootCAs
	// when ClientCAs is nil).
	TLS *tls.Config
	// Key is the raft handshake key derived from the cluster secret. With
	// it, every connection must complete the handshake (handshake.go);
	// without it, raft connections speak raft from the first byte.
	Key []byte
	// ClusterID is checked by the handshake.
	ClusterID uint64
	// Logger receives refusals (rate-limited) and accept errors.
	Logger hclog.Logger
	// HandshakeTimeout bounds the time from accepting a connection to
	// knowing what it carries: TLS, the handshake, and the first byte. A
	// connection that sends nothing is closed after it. 0: 5 s.
	HandshakeTimeout time.Duration
	// MaxPending bounds the connections in their handshake; a new one
	// evicts the oldest. 0: 128.
	MaxPending int
	// MaxConns bounds the admitted inbound connections; more are refused.
	// 0: 256.
	MaxConns int
}

// Layer is a raft.StreamLayer over TCP with the handshake, optional TLS,
// and bounded cost for connections that never authenticate: a deadline for
// the handshake, a cap on connections in it (the oldest is evicted) and a
// cap on admitted connections. It tracks every connection and closes them
// all on Close (raft's NetworkTransport closes only its listener).
type Layer struct {
	cfg       Config
	serverTLS *tls.Config
	log       hclog.Logger
	ctx       context.Context // cancelled by Close: ends dials and handshakes
	cancel    context.CancelFunc
	raft      chan net.Conn // admitted raft connections, for Accept
	forward   chan net.Conn // admitted forward connections, for AcceptForward
	wg        sync.WaitGroup
	refusals  refusalLog

	mu       sync.Mutex // guards conns, pending, admitted, closed and every pendingConn's removed
	conns    map[*trackedConn]struct{}
	pending  *list.List // of *pendingConn, oldest first
	admitted int        // inbound connections handed out
	closed   bool
}

// pendingConn is an accepted connection in its handshake.
type pendingConn struct {
	conn    net.Conn
	removed bool // evicted, or its handshake ended
}

// New starts accepting on cfg.Listener.
func New(cfg Config) *Layer {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Layer{
		cfg:     cfg,
		log:     cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
		raft:    make(chan net.Conn),
		forward: make(chan net.Conn),
		conns:   make(map[*trackedConn]struct{}),
		pending: list.New(),
	}
	if cfg.TLS != nil {
		l.serverTLS = cfg.TLS.Clone()
		l.serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
		if l.serverTLS.ClientCAs == nil {
			l.serverTLS.ClientCAs = l.serverTLS.RootCAs
		}
	}
	l.wg.Go(l.acceptLoop)
	return l
}

// Addr returns the advertised address.
func (l *Layer) Addr() net.Addr { return l.cfg.Advertise }

// Accept returns the next admitted raft connection.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.raft:
		return c, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// AcceptForward returns the next admitted forward connection (Forward).
func (l *Layer) AcceptForward() (net.Conn, error) {
	select {
	case c := <-l.forward:
		return c, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Dial connects to address for raft.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	return l.DialChannel(ctx, string(address), Raft)
}

// DialChannel connects to address, authenticates, and opens channel ch. It
// gives up when ctx ends or the Layer closes.
func (l *Layer) DialChannel(ctx context.Context, address string, ch Channel) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	c, err := l.clientSide(ctx, raw, address, ch)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return l.track(c, false)
}

func (l *Layer) clientSide(ctx context.Context, raw net.Conn, address string, ch Channel) (net.Conn, error) {
	deadline := time.Now().Add(l.cfg.HandshakeTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var c net.Conn = raw
	if l.cfg.TLS != nil {
		cfg := l.cfg.TLS.Clone()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(address); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("canoe: TLS handshake with %s: %w", address, err)
		}
		c = tc
	}
	if l.cfg.Key == nil && ch == Raft {
		raw.SetDeadline(time.Time{})
		return c, nil // raft's protocol from the first byte
	}
	s, err := clientHandshake(c, address, l.cfg.ClusterID, l.cfg.Key)
	if err != nil {
		return nil, err
	}
	if s.send != nil && l.cfg.TLS == nil {
		c = newSealedConn(c, s)
	}
	if _, err := c.Write([]byte{byte(ch)}); err != nil {
		return nil, fmt.Errorf("%w: open channel on %s: %v", ErrHandshake, address, err)
	}
	raw.SetDeadline(time.Time{})
	return c, nil
}

// Close stops accepting, ends dials and handshakes in progress, closes
// every connection and waits for the Layer's goroutines.
func (l *Layer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	conns := l.conns
	l.conns = nil
	for e := l.pending.Front(); e != nil; e = e.Next() {
		p := e.Value.(*pendingConn)
		p.removed = true
		p.conn.Close()
	}
	l.pending.Init()
	l.mu.Unlock()
	l.cancel()
	err := l.cfg.Listener.Close()
	for c := range conns {
		c.closing.Store(true)
		c.Conn.Close()
	}
	l.wg.Wait()
	return err
}

func (l *Layer) acceptLoop() {
	var pause time.Duration
	for {
		raw, err := l.cfg.Listener.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.log.Warn("raft listener: accept failed; retrying", "error", err, "pause", pause)
			select {
			case <-time.After(pause):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		pause = 0
		p, ok := l.startPending(raw)
		if !ok {
			continue
		}
		l.wg.Go(func() { l.admit(p) })
	}
}

// startPending records raw as in its handshake, evicting the oldest
// pending connection at the cap, or refuses it when too many connections
// are admitted already.
func (l *Layer) startPending(raw net.Conn) (*list.Element, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		raw.Close()
		return nil, false
	}
	if l.admitted >= l.cfg.MaxConns {
		raw.Close()
		l.refusals.log(l.log, raw.RemoteAddr(), fmt.Sprintf("%d raft connections are open, the limit", l.admitted))
		return nil, false
	}
	if l.pending.Len() >= l.cfg.MaxPending {
		oldest := l.pending.Front()
		p := oldest.Value.(*pendingConn)
		p.removed = true
		p.conn.Close()
		l.pending.Remove(oldest)
	}
	return l.pending.PushBack(&pendingConn{conn: raw}), true
}

// admit runs the server's side of a new connection and hands it to the
// channel it asks for.
func (l *Layer) admit(e *list.Element) {
	raw := e.Value.(*pendingConn).conn
	c, ch, err := l.serverSide(raw)
	l.mu.Lock()
	if p := e.Value.(*pendingConn); !p.removed {
		p.removed = true
		l.pending.Remove(e)
	}
	l.mu.Unlock()
	if err != nil {
		raw.Close()
		if !errors.Is(err, errQuiet) && l.ctx.Err() == nil {
			l.refusals.log(l.log, raw.RemoteAddr(), err.Error())
		}
		return
	}
	tc, err := l.track(c, true)
	if err != nil {
		return
	}
	var queue chan net.Conn
	switch ch {
	case Raft:
		queue = l.raft
	case Forward:
		queue = l.forward
	default:
		tc.Close()
		l.refusals.log(l.log, raw.RemoteAddr(), fmt.Sprintf("unknown channel %q", byte(ch)))
		return
	}
	select {
	case queue <- tc:
	case <-l.ctx.Done():
		tc.Close()
	}
}

// errQuiet marks refusals not worth a log line (a connection closed while
// still silent, at Close or by eviction).
var errQuiet = errors.New("quiet")

// legacyRefusal is what a node without the handshake reads when it sends
// raft traffic to a node that requires the handshake: a raft RPC answer
// (msgpack: the error string, then an empty response map), so raft reports
// the reason instead of a bare connection reset.
var legacyRefusal = func() []byte {
	msg := "canoe: this node requires the cluster's secret handshake: set the same ClusterSecret on every node (the sending node has none, or runs a canoe older than the handshake)"
	b := []byte{0xda, byte(len(msg) >> 8), byte(len(msg))} // str 16
	b = append(b, msg...)
	return append(b, 0x80) // empty map
}()

func (l *Layer) serverSide(raw net.Conn) (net.Conn, Channel, error) {
	raw.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	var c net.Conn = raw
	if l.serverTLS != nil {
		tc := tls.Server(raw, l.serverTLS)
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			return nil, 0, fmt.Errorf("TLS handshake failed: %v", err)
		}
		c = tc
	}
	br := bufio.NewReaderSize(c, 64)
	first, err := br.Peek(1)
	if err != nil {
		if isTimeout(err) {
			return nil, 0, fmt.Errorf("it sent nothing within %v", l.cfg.HandshakeTimeout)
		}
		return nil, 0, errQuiet
	}
	switch {
	case first[0] <= 5: // a raft RPC type: raft's protocol, no handshake
		if l.cfg.Key != nil {
			_, _ = c.Write(legacyRefusal)
			drain(raw, br)
			return nil, 0, errors.New("it sent raft traffic without the handshake (no ClusterSecret, or a canoe older than the handshake)")
		}
		raw.SetDeadline(time.Time{})
		return &prefixConn{Conn: c, r: br}, Raft, nil
	case first[0] != magic[0]:
		return nil, 0, fmt.Errorf("it sent %#x, which opens neither raft traffic nor canoe's handshake", first[0])
	}
	var hb [helloSize]byte
	if _, err := io.ReadFull(br, hb[:]); err != nil {
		return nil, 0, fmt.Errorf("truncated hello: %v", err)
	}
	c = &prefixConn{Conn: c, r: br}
	s, err := serverHandshake(c, hb[:], l.cfg.ClusterID, l.cfg.Key)
	if err != nil {
		return nil, 0, fmt.Errorf("handshake refused: %v", err)
	}
	if s.send != nil && l.serverTLS == nil {
		c = newSealedConn(c, s)
	}
	var chb [1]byte
	if _, err := io.ReadFull(c, chb[:]); err != nil {
		return nil, 0, fmt.Errorf("no channel after the handshake: %v", err)
	}
	raw.SetDeadline(time.Time{})
	return c, Channel(chb[0]), nil
}

// drain reads and discards what the peer sends for a moment, so that
// closing the connection does not reset it before the peer has read the
// refusal written to it (a close with unread data sends a TCP reset).
func drain(raw net.Conn, r io.Reader) {
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	raw.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	_, _ = io.CopyN(io.Discard, r, 1<<20)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (l *Layer) track(c net.Conn, inbound bool) (*trackedConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l, inbound: inbound}
	l.conns[tc] = struct{}{}
	if inbound {
		l.admitted++
	}
	return tc, nil
}

// prefixConn reads through a bufio.Reader that may hold bytes already
// read from Conn.
type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// trackedConn forgets itself in its Layer when closed.
type trackedConn struct {
	net.Conn
	l       *Layer
	inbound bool
	once    sync.Once
	closing atomic.Bool // closed by the Layer's Close
}

// Read reports a connection closed by Close as an orderly end (io.EOF), so
// raft does not log every connection it loses at shutdown as an error.
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.closing.Load() {
		err = io.EOF
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.conns != nil {
			delete(c.l.conns, c)
		}
		if c.inbound {
			c.l.admitted--
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// refusalLog logs refused connections at WARN, at most once a minute per
// remote host, so a flood cannot flood the log.
type refusalLog struct {
	mu   sync.Mutex // guards last
	last map[string]time.Time
}

const refusalLogEvery = time.Minute

func (r *refusalLog) log(log hclog.Logger, addr net.Addr, why string) {
	host := addr.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	r.mu.Lock()
	now := time.Now()
	if r.last == nil || len(r.last) > 1024 {
		r.last = make(map[string]time.Time)
	}
	at, seen := r.last[host]
	quiet := seen && now.Sub(at) < refusalLogEvery
	if !quiet {
		r.last[host] = now
	}
	r.mu.Unlock()
	if quiet {
		log.Debug("refused raft connection", "remote", addr.String(), "reason", why)
		return
	}
	log.Warn("refused raft connection", "remote", addr.String(), "reason", why)
}
