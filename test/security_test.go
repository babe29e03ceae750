package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
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
// URL carries it), checks that the API refuses requests without it, and
// that a node with another secret cannot join.
func TestClusterSecret(t *testing.T) {
	secret := randomSecret(t)
	c := newCluster(t, 3, clusterOpts{secret: secret})
	hc := httpClient(t, nil)
	good := http.Header{"Authorization": {"Bearer " + httpconfig.BearerToken(secret)}}
	wrong := http.Header{"Authorization": {"Bearer " + httpconfig.BearerToken(randomSecret(t))}}
	for _, m := range c.running() {
		for _, path := range []string{"/peers", "/status"} {
			if code, _, body := apiCall(t, hc, http.MethodGet, m.url+path, nil, nil); code != http.StatusUnauthorized {
				t.Errorf("GET %s on %v without Authorization: %d %.200q, want 401", path, m, code, body)
			}
			if code, _, body := apiCall(t, hc, http.MethodGet, m.url+path, wrong, nil); code != http.StatusUnauthorized {
				t.Errorf("GET %s on %v with a wrong token: %d %.200q, want 401", path, m, code, body)
			}
			if code, _, body := apiCall(t, hc, http.MethodGet, m.url+path, good, nil); code != http.StatusOK {
				t.Errorf("GET %s on %v with the secret: %d %.200q, want 200", path, m, code, body)
			}
		}
		// A DELETE without the secret changes nothing.
		if code, _, body := apiCall(t, hc, http.MethodDelete, m.url+"/peers", nil, []byte(`{"id":1}`)); code != http.StatusUnauthorized {
			t.Errorf("DELETE /peers on %v without Authorization: %d %.200q, want 401", m, code, body)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := httpconfig.NewClient(nil, secret)
	t.Cleanup(client.Close)
	leader := c.leader()
	peers, err := client.Peers(ctx, leader.url)
	if err != nil || peers.ID != leader.id || len(peers.RemotePeers) != 2 {
		t.Errorf("httpconfig client with the secret: GET /peers = %+v, %v; want the leader and 2 remote peers", peers, err)
	}
	anon := httpconfig.NewClient(nil, nil)
	t.Cleanup(anon.Close)
	if _, err := anon.Peers(ctx, leader.url); !errors.Is(err, httpconfig.ErrUnauthorized) {
		t.Errorf("httpconfig client without the secret: got %v, want ErrUnauthorized", err)
	}

	// Forwarded proposals carry the secret.
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
	waitSameState(t, 10*time.Second, 2, c.running()...)
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
	client := httpconfig.NewClient(tlsConfig, nil)
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
