package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/canoe-raft/canoe/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func key(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// handshakePair runs both sides of the handshake over a pipe.
func handshakePair(t *testing.T, clientID, serverID uint64, clientKey, serverKey []byte) (cs, ss session, cerr, serr error) {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		var hb [helloSize]byte
		if _, err := io.ReadFull(s, hb[:]); err != nil {
			serr = err
			return
		}
		ss, serr = serverHandshake(s, hb[:], serverID, serverKey)
		if serr != nil {
			s.Close()
		}
	})
	cs, cerr = clientHandshake(c, "server:1", clientID, clientKey)
	if cerr != nil {
		c.Close()
	}
	wg.Wait()
	return cs, ss, cerr, serr
}

func TestHandshake(t *testing.T) {
	k, other := key(t), key(t)
	tests := []struct {
		name               string
		clientID, serverID uint64
		clientKey, servKey []byte
		clientErr, servErr string // "" = success
	}{
		{"same key", 7, 7, k, k, "", ""},
		{"no keys", 7, 7, nil, nil, "", ""},
		{"wrong key", 7, 7, other, k, "different ClusterSecret", "no proof"},
		{"other cluster", 7, 8, k, k, "belongs to cluster 8", "cluster 7"},
		{"client without key", 7, 7, nil, k, "requires the cluster's ClusterSecret", "requires one"},
		{"server without key", 7, 7, k, nil, "has no ClusterSecret", "this node has none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, ss, cerr, serr := handshakePair(t, tt.clientID, tt.serverID, tt.clientKey, tt.servKey)
			check := func(side string, err error, want string) {
				t.Helper()
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: %v, want success", side, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: %v, want an error saying %q", side, err, want)
				}
			}
			check("client", cerr, tt.clientErr)
			check("server", serr, tt.servErr)
			if cerr == nil && serr == nil && tt.clientKey != nil {
				if !bytes.Equal(cs.send, ss.recv) || !bytes.Equal(cs.recv, ss.send) || bytes.Equal(cs.send, cs.recv) {
					t.Errorf("session keys do not pair up: client %x/%x server %x/%x", cs.send, cs.recv, ss.send, ss.recv)
				}
				if bytes.Equal(cs.send, k) || bytes.Equal(cs.recv, k) {
					t.Error("a session key equals the raft key")
				}
			}
		})
	}
}

// TestHandshakeFreshSessions: two handshakes under the same key never give
// the same session keys.
func TestHandshakeFreshSessions(t *testing.T) {
	k := key(t)
	a, _, err1, _ := handshakePair(t, 1, 1, k, k)
	b, _, err2, _ := handshakePair(t, 1, 1, k, k)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if bytes.Equal(a.send, b.send) {
		t.Fatal("two connections got the same session key")
	}
}

// TestServerProofIsNotAClientProof: what a server answers cannot be sent
// back to it as a client's proof (the labels differ).
func TestServerProofIsNotAClientProof(t *testing.T) {
	k := key(t)
	c, s := net.Pipe()
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		defer s.Close()
		var hb [helloSize]byte
		if _, err := io.ReadFull(s, hb[:]); err != nil {
			done <- err
			return
		}
		_, err := serverHandshake(s, hb[:], 1, k)
		done <- err
	}()
	h := hello{flags: flagKey, clusterID: 1, nonce: randomNonce()}
	c.Write(h.encode())
	var rb [replySize]byte
	if _, err := io.ReadFull(c, rb[:]); err != nil {
		t.Fatal(err)
	}
	r, err := decodeReply(rb[:])
	if err != nil {
		t.Fatal(err)
	}
	c.Write(r.mac[:]) // the server's own proof, reflected
	if err := <-done; err == nil || !strings.Contains(err.Error(), "proof") {
		t.Fatalf("reflected server proof: %v, want a refusal", err)
	}
}

func TestSealedConn(t *testing.T) {
	k1, k2 := key(t), key(t)
	a, b := net.Pipe()
	ca := newSealedConn(a, session{send: k1, recv: k2})
	cb := newSealedConn(b, session{send: k2, recv: k1})
	defer ca.Close()
	defer cb.Close()
	msg := bytes.Repeat([]byte("raft "), 50000) // several frames
	go func() {
		ca.Write(msg)
		ca.Write([]byte("end"))
	}()
	got := make([]byte, len(msg)+3)
	if _, err := io.ReadFull(cb, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(msg)], msg) || string(got[len(msg):]) != "end" {
		t.Fatal("sealed stream changed the bytes")
	}
}

// TestSealedConnRejectsTampering: a flipped bit, a dropped frame, a
// replayed frame or a frame under another key fails the reader.
func TestSealedConnRejectsTampering(t *testing.T) {
	k := key(t)
	var stream bytes.Buffer
	w := &sealedConn{Conn: &writeOnlyConn{w: &stream}, send: newAEAD(k)}
	w.Write([]byte("first frame"))
	w.Write([]byte("second frame"))
	whole := stream.Bytes()
	if got, err := openFrames(k, whole); err != nil || string(got) != "first framesecond frame" {
		t.Fatalf("intact stream: %q, %v", got, err)
	}
	first := 4 + len("first frame") + tagSize
	flipped := bytes.Clone(whole)
	flipped[10] ^= 1
	for name, s := range map[string][]byte{
		"flipped bit":   flipped,
		"dropped frame": whole[first:],
		"replayed":      append(bytes.Clone(whole[:first]), whole[:first]...),
		"truncated":     whole[:len(whole)-3],
		"reordered":     append(bytes.Clone(whole[first:]), whole[:first]...),
		"cut header":    whole[:first+2],
	} {
		if _, err := openFrames(k, s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, s := range map[string][]byte{
		"shorter than a tag": append([]byte{0, 0, 0, tagSize - 1}, make([]byte, tagSize-1)...),
		"over the cap":       {0, 1, 0, tagSize + 1},
		"empty frame forged": append([]byte{0, 0, 0, tagSize}, make([]byte, tagSize)...),
	} {
		if _, err := openFrames(k, s); !errors.Is(err, ErrSealedFrame) {
			t.Errorf("%s: %v, want ErrSealedFrame", name, err)
		}
	}
	if _, err := openFrames(key(t), whole); !errors.Is(err, ErrSealedFrame) {
		t.Errorf("other key: %v, want ErrSealedFrame", err)
	}
}

type writeOnlyConn struct {
	net.Conn
	w io.Writer
}

func (c *writeOnlyConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// openFrames decodes a stream of sealed frames under key.
func openFrames(key []byte, stream []byte) ([]byte, error) {
	c := &sealedConn{r: bufio.NewReader(bytes.NewReader(stream)), recv: newAEAD(key)}
	return io.ReadAll(c)
}

func FuzzDecodeHello(f *testing.F) {
	f.Add(hello{flags: flagKey, clusterID: 256}.encode())
	f.Add(reply{status: StatusWrongCluster, clusterID: 3}.encode())
	f.Add([]byte("CNR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHello(b); err == nil && !bytes.Equal(h.encode(), b) {
			t.Fatalf("hello %x decodes but re-encodes as %x", b, h.encode())
		}
		if r, err := decodeReply(b); err == nil && !bytes.Equal(r.encode(), b) {
			t.Fatalf("reply %x decodes but re-encodes as %x", b, r.encode())
		}
	})
}

func FuzzOpenFrames(f *testing.F) {
	k := bytes.Repeat([]byte{7}, 32)
	var stream bytes.Buffer
	w := &sealedConn{Conn: &writeOnlyConn{w: &stream}, send: newAEAD(k)}
	w.Write([]byte("hello"))
	f.Add(stream.Bytes())
	f.Add([]byte{0, 0, 0, 16})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = openFrames(k, b) // must not panic or allocate without bound
	})
}

// newLayer starts a Layer on 127.0.0.1:0.
func newLayer(t *testing.T, cfg Config) *Layer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	cfg.Advertise = ln.Addr()
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	l := New(cfg)
	t.Cleanup(func() { l.Close() })
	return l
}

// echo accepts raft connections on l and echoes what they send.
func echo(t *testing.T, l *Layer) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
}

func TestLayerRoundTrip(t *testing.T) {
	k := key(t)
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"secret", k}, {"open", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newLayer(t, Config{Key: tc.key, ClusterID: 9})
			echo(t, srv)
			cli := newLayer(t, Config{Key: tc.key, ClusterID: 9})
			c, err := cli.Dial(raft.ServerAddress(srv.Addr().String()), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := []byte{1, 2, 3, 'x'} // starts like a raft RPC
			c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo: %q, %v", got, err)
			}
		})
	}
}

// TestLayerRefusesStrangers: with a key, a raft client without the
// handshake (hashicorp/raft's own NetworkTransport) gets canoe's reason as
// its RPC error, and a client with the wrong key or cluster gets nothing.
func TestLayerRefusesStrangers(t *testing.T) {
	k := key(t)
	srv := newLayer(t, Config{Key: k, ClusterID: 9})
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := srv.Accept(); err == nil {
			accepted <- c
		}
	}()
	addr := raft.ServerAddress(srv.Addr().String())

	nt, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	var resp raft.AppendEntriesResponse
	err = nt.AppendEntries("victim", addr, &raft.AppendEntriesRequest{Term: 1 << 62, Entries: []*raft.Log{{Index: 1, Term: 1 << 62}}}, &resp)
	if err == nil || !strings.Contains(err.Error(), "requires the cluster's secret handshake") {
		t.Fatalf("raw raft AppendEntries: %v, want canoe's refusal", err)
	}

	for name, cfg := range map[string]Config{
		"wrong key":     {Key: key(t), ClusterID: 9},
		"other cluster": {Key: k, ClusterID: 10},
		"no key":        {ClusterID: 9},
	} {
		cli := newLayer(t, cfg)
		c, err := cli.Dial(addr, time.Second)
		if err == nil {
			// A client without a key speaks raft at once; the refusal
			// arrives as the answer.
			c.Write([]byte{0})
			b, _ := io.ReadAll(c)
			c.Close()
			if !bytes.Contains(b, []byte("requires the cluster's secret handshake")) {
				t.Errorf("%s: dial succeeded and the server answered %q", name, b)
			}
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a stranger's connection reached Accept")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestLayerClosesIdleConnections: 1,000 connections that never send a byte
// cost a bounded number of goroutines and are all closed within the
// handshake timeout, with and without a key.
func TestLayerClosesIdleConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"secret", key(t)}, {"open", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			const timeout = 3 * time.Second
			srv := newLayer(t, Config{Key: tc.key, ClusterID: 1, HandshakeTimeout: timeout, MaxPending: 64})
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for range 1000 {
				c, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			// Evicted handshakes end at once; what is left is bounded by
			// the pending cap, long before the handshake timeout.
			settle := time.Now().Add(time.Second)
			for runtime.NumGoroutine()-base > 64+10 && time.Now().Before(settle) {
				time.Sleep(10 * time.Millisecond)
			}
			if g := runtime.NumGoroutine() - base; g > 64+10 {
				t.Errorf("%d goroutines for 1000 idle connections, want at most the pending cap (64) and a few", g)
			}
			start := time.Now()
			for i, c := range conns {
				c.SetReadDeadline(start.Add(timeout + 2*time.Second))
				if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
					t.Fatalf("connection %d: %v after %v, want closed by the server", i, err, time.Since(start))
				}
			}
			if d := time.Since(start); d > timeout+time.Second {
				t.Errorf("closing 1000 idle connections took %v, want about the handshake timeout (%v)", d, timeout)
			}
		})
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestLayerConnectionCap: admitted connections beyond MaxConns are refused
// until one closes.
func TestLayerConnectionCap(t *testing.T) {
	srv := newLayer(t, Config{ClusterID: 1, MaxConns: 3})
	var held []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer func() {
		srv.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	})
	cli := newLayer(t, Config{ClusterID: 1})
	addr := raft.ServerAddress(srv.Addr().String())
	var dialed []net.Conn
	defer func() {
		for _, c := range dialed {
			c.Close()
		}
	}()
	for range 3 {
		c, err := cli.Dial(addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0})
		dialed = append(dialed, c)
	}
	testutil.WaitFor(t, 5*time.Second, "3 connections admitted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(held) == 3
	})
	extra, err := cli.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("fourth connection: %v, want it closed at once", err)
	}
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
}

// TestLayerRefusesStrangerBytes: a keyed Layer answers what a stranger
// without the secret sends (another protocol, a truncated or malformed
// hello, a valid hello and a made-up proof) by closing the connection,
// with a StatusMalformed reply to a malformed hello, and nothing reaches
// Accept or AcceptForward.
func TestLayerRefusesStrangerBytes(t *testing.T) {
	srv := newLayer(t, Config{Key: key(t), ClusterID: 9, HandshakeTimeout: time.Second})
	reached := make(chan string, 2)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	for name, accept := range map[string]func() (net.Conn, error){"Accept": srv.Accept, "AcceptForward": srv.AcceptForward} {
		wg.Go(func() {
			if c, err := accept(); err == nil {
				c.Close()
				reached <- name
			}
		})
	}
	badFlags := hello{clusterID: 9, nonce: randomNonce()}.encode()
	badFlags[4] = 0x80
	withProof := append(hello{flags: flagKey, clusterID: 9, nonce: randomNonce()}.encode(), make([]byte, macSize)...)
	for _, tc := range []struct {
		name  string
		send  []byte
		reply bool // the server answers with a reply before closing
		want  Status
	}{
		{"HTTP", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, 0},
		{"magic only", magic[:], false, 0},
		{"truncated hello", badFlags[:helloSize-1], false, 0},
		{"unknown flags", badFlags, true, StatusMalformed},
		{"made-up proof", withProof, true, StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tc.send)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil && !isReset(err) {
				t.Fatalf("read: %v, want the connection closed", err)
			}
			if !tc.reply {
				if len(got) != 0 {
					t.Fatalf("server answered %q, want nothing", got)
				}
				return
			}
			if len(got) != replySize {
				t.Fatalf("server answered %d bytes, want a %d-byte reply", len(got), replySize)
			}
			r, err := decodeReply(got)
			if err != nil || r.status != tc.want {
				t.Fatalf("reply %+v, %v; want status %d", r, err, tc.want)
			}
		})
	}
	select {
	case name := <-reached:
		t.Fatalf("a stranger's connection reached %s", name)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestDialRefusesStrangerServers: a Layer dialing something that is not a
// canoe node with the same secret (silent, another protocol, a truncated
// reply, a reply with a made-up proof) fails with ErrHandshake.
func TestDialRefusesStrangerServers(t *testing.T) {
	junkReply := reply{clusterID: 9, nonce: randomNonce()}.encode() // status OK, zero proof
	for _, tc := range []struct {
		name   string
		answer []byte
		want   string
	}{
		{"closes", nil, "closed the connection"},
		{"HTTP", []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" + strings.Repeat(" ", replySize)), "does not speak canoe's handshake"},
		{"truncated reply", junkReply[:replySize-1], "closed the connection"},
		{"made-up proof", junkReply, "could not prove"},
		{"malformed status", reply{status: StatusMalformed, clusterID: 9}.encode(), "could not read this node's hello"},
		{"unknown status", reply{status: 99, clusterID: 9}.encode(), "unknown status 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.ReadFull(c, make([]byte, helloSize))
				c.Write(tc.answer)
			}()
			cli := newLayer(t, Config{Key: key(t), ClusterID: 9, HandshakeTimeout: 2 * time.Second})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := cli.DialChannel(ctx, ln.Addr().String(), Forward)
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded")
			}
			if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dial: %v, want ErrHandshake saying %q", err, tc.want)
			}
			<-done
		})
	}
}
