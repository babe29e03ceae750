package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/discovery"
	"github.com/canoe-raft/canoe/httpconfig"
	"github.com/canoe-raft/canoe/internal/keys"
)

func randomSecret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClusterSecret forms a 3-node cluster with a ClusterSecret (joining by
// URL signs the request), checks that the API refuses unsigned, forged,
// expired and replayed requests on every route of every node, that the
// metrics token opens only GET /metrics and /healthz, that nothing a client
// sends reveals the secret or a derived key, that none of what an observer
// can see works as the gossip key, and that a node with another secret
// cannot join.
func TestClusterSecret(t *testing.T) {
	secret := randomSecret(t)
	c := newCluster(t, 3, clusterOpts{secret: secret})
	hc := httpClient(t, nil)
	signer, err := httpconfig.NewSigner(secret, canoe.DefaultClusterID)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.leader()
	victim := c.followers()[0]

	t.Run("refused requests", func(t *testing.T) {
		routes := []struct {
			method, path string
			body         []byte
		}{
			{"GET", "/peers", nil},
			{"POST", "/peers", []byte(`{"id":77,"raft_port":1,"config_port":1}`)},
			{"DELETE", "/peers", fmt.Appendf(nil, `{"id":%d}`, victim.id)},
			{"GET", "/status", nil},
			{"GET", "/healthz", nil},
			{"GET", "/metrics", nil},
		}
		other, err := httpconfig.NewSigner(randomSecret(t), canoe.DefaultClusterID)
		if err != nil {
			t.Fatal(err)
		}
		otherCluster, err := httpconfig.NewSigner(secret, canoe.DefaultClusterID+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range c.running() {
			for _, r := range routes {
				otherMethod, otherPath := "GET", "/status"
				if r.method == "GET" {
					otherMethod = "DELETE"
				}
				if r.path == "/status" {
					otherPath = "/peers"
				}
				attacks := []struct {
					name    string
					header  http.Header
					wantMsg string
				}{
					{"no Authorization", nil, "missing Authorization header"},
					{"the secret as a bearer token", http.Header{"Authorization": {"Bearer " + base64.RawURLEncoding.EncodeToString(secret)}}, "401"},
					{"a wrong key", signed(other, r.method, r.path, r.body, time.Now()), "bad signature"},
					{"another cluster ID", signed(otherCluster, r.method, r.path, r.body, time.Now()), "bad signature"},
					{"an expired timestamp", signed(signer, r.method, r.path, r.body, time.Now().Add(-2*time.Minute)), "expired or clock skew"},
					{"a timestamp from the future", signed(signer, r.method, r.path, r.body, time.Now().Add(2*time.Minute)), "ahead of this node's clock"},
					{"another method's signature", signed(signer, otherMethod, r.path, r.body, time.Now()), "bad signature"},
					{"another path's signature", signed(signer, r.method, otherPath, r.body, time.Now()), "bad signature"},
					{"another body's signature", signed(signer, r.method, r.path, append(slices.Clone(r.body), 'x'), time.Now()), "does not match the SHA-256"},
				}
				for _, a := range attacks {
					code, hdr, body := apiCall(t, hc, r.method, m.url+r.path, a.header, r.body)
					if code != http.StatusUnauthorized || (a.wantMsg != "401" && !strings.Contains(string(body), a.wantMsg)) {
						t.Errorf("%s %s on %v with %s: %d %.300s, want 401 saying %q", r.method, r.path, m, a.name, code, body, a.wantMsg)
					}
					if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
						t.Errorf("%s %s on %v with %s: Content-Type %q, want JSON", r.method, r.path, m, a.name, hdr.Get("Content-Type"))
					}
				}
			}
		}
		// Replays: a harmless request of each route is answered once
		// (whatever the node says), then refused.
		replays := []struct {
			method, path string
			body         []byte
		}{
			{"GET", "/peers", nil},
			{"POST", "/peers", []byte(`{"id":0}`)},        // 400 after authentication
			{"DELETE", "/peers", []byte(`{"id":424242}`)}, // 404 after authentication
			{"GET", "/status", nil},
			{"GET", "/healthz", nil},
			{"GET", "/metrics", nil},
		}
		for _, m := range c.running() {
			for _, r := range replays {
				h := signed(signer, r.method, r.path, r.body, time.Now())
				if code, _, body := apiCall(t, hc, r.method, m.url+r.path, h, r.body); code == http.StatusUnauthorized {
					t.Errorf("%s %s on %v, signed: 401 %.300s", r.method, r.path, m, body)
				}
				if code, _, body := apiCall(t, hc, r.method, m.url+r.path, h, r.body); code != http.StatusUnauthorized || !strings.Contains(string(body), "replayed request") {
					t.Errorf("%s %s on %v, replayed: %d %.300s, want 401 replayed", r.method, r.path, m, code, body)
				}
			}
		}
		c.waitVoters(3)
		for _, m := range c.running() {
			if n := len(m.node.Peers()); n != 3 {
				t.Errorf("node %v sees %d members after the refused requests, want 3", m, n)
			}
		}
	})

	t.Run("metrics token", func(t *testing.T) {
		token, err := httpconfig.MetricsToken(secret, canoe.DefaultClusterID)
		if err != nil {
			t.Fatal(err)
		}
		bearer := http.Header{"Authorization": {"Bearer " + token}}
		for _, m := range c.running() {
			for _, path := range []string{"/metrics", "/healthz"} {
				if code, _, body := apiCall(t, hc, "GET", m.url+path, bearer, nil); code != http.StatusOK {
					t.Errorf("GET %s on %v with the metrics token: %d %.200s, want 200", path, m, code, body)
				}
			}
			for _, r := range []struct{ method, path string }{
				{"GET", "/peers"}, {"POST", "/peers"}, {"DELETE", "/peers"},
				{"GET", "/status"}, {"POST", "/metrics"}, {"HEAD", "/healthz"},
			} {
				code, _, body := apiCall(t, hc, r.method, m.url+r.path, bearer, []byte(`{"id":1}`))
				if code != http.StatusUnauthorized {
					t.Errorf("%s %s on %v with the metrics token: %d %.200s, want 401", r.method, r.path, m, code, body)
				}
			}
		}
	})

	t.Run("nothing on the wire reveals a key", func(t *testing.T) {
		proxy := newRecordingProxy(t, strings.TrimPrefix(leader.url, "http://"))
		client := httpconfig.NewClient(nil, secret, canoe.DefaultClusterID)
		t.Cleanup(client.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		base := "http://" + proxy.addr()
		if _, err := client.Peers(ctx, base); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Status(ctx, base); err != nil {
			t.Fatal(err)
		}
		if err := client.RemovePeer(ctx, base, 424243); !errors.Is(err, httpconfig.ErrPeerNotFound) {
			t.Fatalf("RemovePeer of an unknown id: %v, want ErrPeerNotFound", err)
		}
		wire := proxy.bytes()
		if n := strings.Count(string(wire), "Authorization: "+httpconfig.AuthScheme+" "); n != 3 {
			t.Fatalf("the proxy saw %d signed requests, want 3:\n%s", n, wire)
		}
		k, err := keys.Derive(secret, canoe.DefaultClusterID)
		if err != nil {
			t.Fatal(err)
		}
		for name, key := range map[string][]byte{"the secret": secret, "the gossip key": k.Gossip[:],
			"the raft key": k.Raft[:], "the API key": k.API[:], "the metrics token": k.Metrics[:]} {
			for enc, b := range map[string]string{
				"raw": string(key), "hex": hex.EncodeToString(key), "HEX": strings.ToUpper(hex.EncodeToString(key)),
				"base64": base64.StdEncoding.EncodeToString(key), "unpadded base64": base64.RawStdEncoding.EncodeToString(key),
				"base64url": base64.URLEncoding.EncodeToString(key), "unpadded base64url": base64.RawURLEncoding.EncodeToString(key),
			} {
				if strings.Contains(string(wire), b) {
					t.Errorf("a client request carries %s (%s)", name, enc)
				}
			}
		}
	})

	t.Run("gossip needs the derived key", func(t *testing.T) {
		token, err := httpconfig.MetricsToken(secret, canoe.DefaultClusterID)
		if err != nil {
			t.Fatal(err)
		}
		tokenKey, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			t.Fatal(err)
		}
		h := signer.Authorization("GET", "/status", sha256.Sum256(nil), time.Now())
		sig, err := base64.RawURLEncoding.DecodeString(h[strings.Index(h, ",s=")+3:])
		if err != nil || len(sig) != 32 {
			t.Fatalf("signature of %q: %x, %v", h, sig, err)
		}
		k, err := keys.Derive(secret, canoe.DefaultClusterID)
		if err != nil {
			t.Fatal(err)
		}
		seed := gossipAddr(leader)
		for _, tt := range []struct {
			name string
			key  []byte
		}{
			{"the cluster secret", secret},
			{"the metrics token", tokenKey},
			{"a request signature", sig},
			{"the API key", k.API[:]},
			{"the raft key", k.Raft[:]},
		} {
			joined, err := joinGossip(t, seed, tt.key)
			if err == nil || joined != 0 {
				t.Errorf("a gossip node keyed with %s joined the pool (%d, %v)", tt.name, joined, err)
			} else {
				t.Logf("gossip node keyed with %s refused: %v", tt.name, err)
			}
		}
		// The same harness with the derived gossip key joins: the refusals
		// above are about the key.
		if joined, err := joinGossip(t, seed, k.Gossip[:]); err != nil || joined != 1 {
			t.Errorf("a gossip node with the derived gossip key: joined %d, %v; want 1, nil", joined, err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := httpconfig.NewClient(nil, secret, canoe.DefaultClusterID)
	t.Cleanup(client.Close)
	peers, err := client.Peers(ctx, leader.url)
	if err != nil || peers.ID != leader.id || len(peers.RemotePeers) != 2 {
		t.Errorf("httpconfig client with the secret: GET /peers = %+v, %v; want the leader and 2 remote peers", peers, err)
	}
	anon := httpconfig.NewClient(nil, nil, 0)
	t.Cleanup(anon.Close)
	if _, err := anon.Peers(ctx, leader.url); !errors.Is(err, httpconfig.ErrUnauthorized) {
		t.Errorf("httpconfig client without the secret: got %v, want ErrUnauthorized", err)
	}

	// Proposals on followers reach the leader over the forward channel of
	// the raft port, behind the secret handshake.
	for _, m := range c.followers() {
		mustPropose(t, m, "secret-from-"+m.String())
	}

	// A node with another secret cannot join.
	cfg := c.config(false, leader.url)
	cfg.ClusterSecret = randomSecret(t)
	cfg.InitBackoff = &canoe.InitializationBackoffArgs{
		InitialInterval: 50 * time.Millisecond,
		Multiplier:      2,
		MaxInterval:     200 * time.Millisecond,
		MaxElapsedTime:  time.Second,
	}
	start := time.Now()
	if m, err := c.start(cfg); err == nil {
		t.Errorf("node %v with a wrong secret joined the cluster", m)
	} else {
		t.Logf("node with a wrong secret refused after %v: %v", time.Since(start), err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Start with a wrong secret took %v, want about InitBackoff.MaxElapsedTime (1s)", d)
	}
	c.waitVoters(3)
	for _, m := range c.running() {
		if n := len(m.node.Peers()); n != 3 {
			t.Errorf("node %v sees %d members after the refused join, want 3", m, n)
		}
	}
	// The two forwarded proposals.
	waitSameState(t, 10*time.Second, 2, c.running()...)
}

// signed returns an Authorization header signed by s for one request.
func signed(s *httpconfig.Signer, method, path string, body []byte, at time.Time) http.Header {
	return http.Header{"Authorization": {s.Authorization(method, path, sha256.Sum256(body), at)}}
}

// joinGossip starts a memberlist node of the default cluster with key as
// its gossip key and tries to join seed. It flags itself as leaving, so a
// node that gets in is never added to raft. It shuts the node down before
// returning.
func joinGossip(t *testing.T, seed string, key []byte) (int, error) {
	t.Helper()
	d, err := discovery.New(discovery.Config{
		BindAddr:  "127.0.0.1",
		ClusterID: canoe.DefaultClusterID,
		SecretKey: key,
		Profile:   discovery.Local,
		Meta:      discovery.Meta{ID: canoe.Uint64UUID(), RaftAddr: "127.0.0.1:1", Leaving: true},
		Logger:    newLogger(t).Named("intruder"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Shutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.Join(ctx, []string{seed})
}

// recordingProxy forwards TCP connections to a target and keeps every byte
// the clients send.
type recordingProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex // guards buf, conns
	buf    bytes.Buffer
	conns  []net.Conn
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *recordingProxy) addr() string { return p.ln.Addr().String() }

func (p *recordingProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(out, io.TeeReader(in, p))
			out.Close()
		}()
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(in, out)
			in.Close()
		}()
	}
}

// Write records client bytes (the TeeReader's sink).
func (p *recordingProxy) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *recordingProxy) bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.buf.Bytes())
}

func (p *recordingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// newTLSConfig makes a CA and a node certificate for 127.0.0.1 and returns
// a mutual-TLS 1.3 configuration that serves as server and client config.
func newTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "canoe test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nodeTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "canoe test node"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{nodeDER}, PrivateKey: nodeKey}},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// TestTLSCluster forms a 3-node cluster over mutual TLS (raft and HTTP API),
// joining by https URL, proposes from a follower, reads /status with an
// httpconfig client, and checks that plain HTTP and TLS without a client
// certificate get nothing.
func TestTLSCluster(t *testing.T) {
	tlsConfig := newTLSConfig(t)
	c := newCluster(t, 3, clusterOpts{tls: tlsConfig})
	leader := c.leader()
	for _, m := range c.running() {
		if !strings.HasPrefix(m.url, "https://") {
			t.Fatalf("node %v API URL %q, want https", m, m.url)
		}
	}
	f := c.followers()[0]
	mustPropose(t, f, "over-tls")
	waitSameState(t, 10*time.Second, 1, c.running()...)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := httpconfig.NewClient(tlsConfig, nil, 0)
	t.Cleanup(client.Close)
	for _, m := range c.running() {
		st, err := client.Status(ctx, m.url)
		if err != nil {
			t.Fatalf("GET /status over TLS on %v: %v", m, err)
		}
		if st.ID != m.id || st.LeaderID != leader.id || len(st.Members) != 3 {
			t.Errorf("GET /status on %v: id %x, leader %x, %d members; want %x, %x, 3", m, st.ID, st.LeaderID, len(st.Members), m.id, leader.id)
		}
	}

	plainURL := "http://" + strings.TrimPrefix(f.url, "https://") + "/status"
	resp, err := httpClient(t, nil).Get(plainURL)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP GET %s: %d, want a failure", plainURL, resp.StatusCode)
		}
	}
	noCert := &tls.Config{RootCAs: tlsConfig.RootCAs, MinVersion: tls.VersionTLS13}
	resp, err = httpClient(t, noCert).Get(f.url + "/status")
	if err == nil {
		resp.Body.Close()
		t.Errorf("GET %s/status without a client certificate: %d, want a TLS failure", f.url, resp.StatusCode)
	}
}
