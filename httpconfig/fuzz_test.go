package httpconfig

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/internal/keys"
)

// FuzzPeersRequest feeds arbitrary bodies to the POST and DELETE /peers
// and POST /peers/promote decoders and to the handler: nothing may panic, every accepted request is
// valid, and the node is asked to change membership only for valid input.
func FuzzPeersRequest(f *testing.F) {
	for _, s := range []string{
		validAdd,
		`{"id":4,"host":"10.0.0.4","raft_port":7004,"config_port":8004,"gossip_port":7946}`,
		`{"id":18446744073709551615,"raft_port":65535,"config_port":1}`,
		`{"id":2}`,
		`{"id":0,"raft_port":1,"config_port":1}`,
		`{"id":4,"raft_port":70000,"config_port":1}`,
		`{"id":-1}`,
		`{"id":1.5}`,
		`{"id":1e3,"raft_port":1,"config_port":1}`,
		`{"ID":4,"RAFT_PORT":1,"config_port":1}`,
		`{"id":4,"raft_port":1,"config_port":1,"extra":null}`,
		`{"id":4,"raft_port":1,"config_port":1}{}`,
		`{"id":4,"host":"fe80::1%eth0","raft_port":1,"config_port":1}`,
		`{"id":4,"host":"a..b","raft_port":1,"config_port":1}`,
		`{"id":4,"raft_port":1,"config_port":1,"cluster_id":256}`,
		`{"id":4,"raft_port":1,"config_port":1,"cluster_id":-1}`,
		`{"id":4,"raft_port":1,"config_port":1,"nonvoter":true}`,
		`{"id":4,"raft_port":1,"config_port":1,"nonvoter":1}`,
		`{"id":3}`,
		`null`, `[]`, `"x"`, ``, `{`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeAddPeer(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("decodeAddPeer error %v does not match ErrInvalid", err)
			}
		} else {
			if p.ID == 0 {
				t.Errorf("accepted id 0 from %q", body)
			}
			for _, port := range []int{p.RaftPort, p.ConfigPort} {
				if port < 1 || port > 65535 {
					t.Errorf("accepted port %d from %q", port, body)
				}
			}
			if p.GossipPort < 0 || p.GossipPort > 65535 {
				t.Errorf("accepted gossip port %d from %q", p.GossipPort, body)
			}
			if p.Host != "" && !validHost(p.Host) {
				t.Errorf("accepted host %q", p.Host)
			}
		}
		id, err := decodeIDRequest(bytes.NewReader(body))
		if err == nil && id == 0 {
			t.Errorf("DELETE accepted id 0 from %q", body)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("decodeIDRequest error %v does not match ErrInvalid", err)
		}

		for _, route := range []struct{ method, path string }{{"POST", "/peers"}, {"DELETE", "/peers"}, {"POST", "/peers/promote"}} {
			method, path := route.method, route.path
			fk := newFakeNode()
			rec := httptest.NewRecorder()
			NewHandler(fk.config()).ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
			calls := fk.mutations()
			if rec.Code != 200 && rec.Code != 404 && rec.Code != 400 {
				t.Errorf("%s %s %q: status %d", method, path, body, rec.Code)
			}
			if rec.Code != 200 && calls != 0 {
				t.Errorf("%s %s %q: status %d but the node was called", method, path, body, rec.Code)
			}
			if rec.Code == 200 && calls != 1 {
				t.Errorf("%s %s %q: status 200 but %d node calls", method, path, body, calls)
			}
		}
	})
}

// FuzzAuthorization feeds arbitrary Authorization headers to the parser and
// to the authenticator: nothing may panic, every refusal matches
// ErrUnauthorized, whatever parses formats back to itself, and only the
// seeds' own valid credentials are ever accepted.
func FuzzAuthorization(f *testing.F) {
	k, err := keys.Derive(testSecret, testClusterID)
	if err != nil {
		f.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_000)
	// Fixed nonces: every fuzz worker must build the same seeds.
	empty := sha256.Sum256(nil)
	statusAuth := testSigner.authorization("GET", "/status", empty, at, "c3RhdHVzLW5vbmNlLTAx")
	metricsAuth := testSigner.authorization("GET", "/metrics", empty, at, "bWV0cmljcy1ub25jZS0wMQ")
	token := testMetricsToken()
	for _, s := range []string{
		statusAuth, metricsAuth, "Bearer " + token, "bearer " + token + " ",
		otherSigner.authorization("GET", "/status", empty, at, "b3RoZXItc2lnbmVyLW5vbmNl"),
		testSigner.authorization("GET", "/status", empty, at.Add(-2*SignatureWindow), "b2xkLXNpZ25hdHVyZS1ub25jZQ"),
		reorder(statusAuth), setParam(statusAuth, "t", "1"), setParam(statusAuth, "n", "x"),
		AuthScheme, AuthScheme + " ", AuthScheme + " t=1", AuthScheme + " t=1,t=1", AuthScheme + " ,,,",
		AuthScheme + " t=1,n=AAAAAAAAAAAAAAAAAAAAAA,b=,s=", AuthScheme + " b=" + strings.Repeat("A", 43),
		"Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "", " ", "\x00", "Canoe-HMAC-SHA256\tt=1",
	} {
		f.Add(s)
	}
	parsedSeed := func(h string) authParams {
		p, err := parseSigned(strings.TrimPrefix(h, AuthScheme+" "))
		if err != nil {
			f.Fatal(err)
		}
		return p
	}
	statusParams, metricsParams := parsedSeed(statusAuth), parsedSeed(metricsAuth)
	f.Fuzz(func(t *testing.T, header string) {
		if _, params, ok := strings.Cut(header, " "); ok {
			if p, err := parseSigned(params); err == nil {
				again, err := parseSigned(strings.TrimPrefix(p.String(), AuthScheme+" "))
				if err != nil || again != p {
					t.Errorf("parsed %q to %+v, which formats to %q and parses to %+v, %v", params, p, p.String(), again, err)
				}
				if len(p.nonce) < minNonceLen || len(p.nonce) > maxNonceLen || p.ts == "" || len(p.ts) > maxTimestampLen {
					t.Errorf("accepted out-of-range parameters %+v from %q", p, params)
				}
			} else if !errors.Is(err, errMalformedAuth) {
				t.Errorf("parse error %v does not match errMalformedAuth", err)
			}
		}
		for _, path := range []string{"/status", "/metrics"} {
			a := newAuthenticator(k, func() time.Time { return at }, 0)
			r := httptest.NewRequest("GET", path, nil)
			r.Header.Set("Authorization", header)
			body, err := a.check(r)
			if err != nil {
				if !errors.Is(err, ErrUnauthorized) || len(err.Error()) < len(ErrUnauthorized.Error())+10 {
					t.Errorf("GET %s with %q: error %v, want ErrUnauthorized with a reason", path, header, err)
				}
				continue
			}
			scheme, rest, _ := strings.Cut(header, " ")
			switch {
			case strings.EqualFold(scheme, "Bearer"):
				if path != "/metrics" || strings.Trim(rest, " \t") != token || body != nil {
					t.Errorf("GET %s accepted bearer header %q", path, header)
				}
			default:
				p, err := parseSigned(strings.TrimLeft(rest, " \t"))
				want := map[string]authParams{"/status": statusParams, "/metrics": metricsParams}[path]
				if !strings.EqualFold(scheme, AuthScheme) || err != nil || p != want || body == nil {
					t.Errorf("GET %s accepted %q, which is not its seed's signature", path, header)
				}
			}
		}
	})
}
