package httpconfig

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/canoe-raft/canoe/internal/keys"
)

// Why a request gets 401. Each matches ErrUnauthorized; the server answers
// with the full message.
var (
	errNoAuth = fmt.Errorf("%w: missing Authorization header: sign requests with the cluster secret "+
		"(%s, as httpconfig.Client does)", ErrUnauthorized, AuthScheme)
	errBadSignature = fmt.Errorf("%w: bad signature: the request was not signed with this cluster's key "+
		"(wrong ClusterSecret or ClusterID?), or it was altered in transit", ErrUnauthorized)
	errReplayed = fmt.Errorf("%w: replayed request: this signature's nonce was already used", ErrUnauthorized)
	// errBodyMismatch is what a signed request's Body returns instead of
	// io.EOF when the body does not match the signed hash.
	errBodyMismatch = fmt.Errorf("%w: request body does not match the SHA-256 it was signed with "+
		"(altered or truncated in transit)", ErrUnauthorized)
)

// authenticator checks requests against the keys of one cluster.
type authenticator struct {
	signer  Signer           // the API key, to recompute signatures
	metrics [keys.Size]byte  // the metrics bearer token, decoded
	now     func() time.Time // the server's clock
	replay  *replayCache
}

func newAuthenticator(k keys.Keys, now func() time.Time, replayCap int) *authenticator {
	return &authenticator{
		signer:  Signer{key: k.API},
		metrics: k.Metrics,
		now:     now,
		replay:  newReplayCache(replayCap, SignatureWindow.Milliseconds()),
	}
}

// readOnlyRoute reports whether the metrics token grants r.
func readOnlyRoute(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == PathMetrics || r.URL.Path == PathHealthz)
}

// check decides whether r may proceed. For a signed request it returns the
// Body to install in r, which checks the signed body hash; for a request
// the metrics token admits it returns nil, nil. An error matches
// ErrUnauthorized and says what is wrong.
func (a *authenticator) check(r *http.Request) (*signedBody, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return nil, errNoAuth
	}
	if len(header) > maxAuthHeader {
		return nil, fmt.Errorf("%w: %w: over %d bytes", ErrUnauthorized, errMalformedAuth, maxAuthHeader)
	}
	scheme, rest, _ := strings.Cut(header, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return nil, a.checkBearer(r, strings.Trim(rest, " \t"))
	case !strings.EqualFold(scheme, AuthScheme):
		return nil, fmt.Errorf("%w: unsupported Authorization scheme %q: sign requests with the cluster secret (%s), "+
			"or send the metrics token as a Bearer token to GET %s or GET %s", ErrUnauthorized,
			truncate(scheme, 32), AuthScheme, PathMetrics, PathHealthz)
	}
	p, err := parseSigned(strings.TrimLeft(rest, " \t"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	want := a.signer.sign(r.Method, uri, &p)
	if !hmac.Equal(want[:], p.sig[:]) {
		return nil, errBadSignature
	}
	now := a.now().UnixMilli()
	skew := now - p.millis()
	if skew > SignatureWindow.Milliseconds() || -skew > SignatureWindow.Milliseconds() {
		return nil, skewError(time.Duration(skew) * time.Millisecond)
	}
	if err := a.replay.add(p.nonce, p.millis(), now); err != nil {
		return nil, err
	}
	return &signedBody{rc: r.Body, h: sha256.New(), want: p.body}, nil
}

// checkBearer admits the metrics token on the read-only routes.
func (a *authenticator) checkBearer(r *http.Request, token string) error {
	var got [keys.Size]byte
	isMetrics := decode32(&got, token) && subtle.ConstantTimeCompare(got[:], a.metrics[:]) == 1
	switch {
	case isMetrics && readOnlyRoute(r):
		return nil
	case isMetrics:
		return fmt.Errorf("%w: the metrics token grants only GET %s and GET %s; sign other requests "+
			"with the cluster secret (%s)", ErrUnauthorized, PathMetrics, PathHealthz, AuthScheme)
	case readOnlyRoute(r):
		return fmt.Errorf("%w: wrong bearer token: want the metrics token (httpconfig.MetricsToken) "+
			"of this cluster's secret and ID", ErrUnauthorized)
	}
	return fmt.Errorf("%w: bearer tokens are accepted only on GET %s and GET %s (the metrics token); "+
		"sign other requests with the cluster secret (%s)", ErrUnauthorized, PathMetrics, PathHealthz, AuthScheme)
}

// skewError is the 401 for a timestamp outside the window; skew is the
// server's clock minus the request's timestamp.
func skewError(skew time.Duration) error {
	dir := "behind"
	if skew < 0 {
		dir, skew = "ahead of", -skew
	}
	return fmt.Errorf("%w: expired or clock skew: the request's timestamp is %v %s this node's clock, "+
		"outside the ±%v window (an old or replayed request, or clocks that disagree: check NTP on both nodes)",
		ErrUnauthorized, skew.Round(time.Millisecond), dir, SignatureWindow)
}

// signedBody is the Body of a signed request: it hashes what is read and
// returns io.EOF only if the whole body matches the SHA-256 the request was
// signed with; otherwise its last Read returns errBodyMismatch instead.
// A handler must not act on a body before it has read io.EOF from it.
type signedBody struct {
	rc    io.ReadCloser
	h     hash.Hash
	want  [sha256.Size]byte
	state bodyState
}

type bodyState int

const (
	bodyOpen bodyState = iota
	bodyMatched
	bodyMismatched
)

func (b *signedBody) Read(p []byte) (int, error) {
	switch b.state {
	case bodyMatched:
		return 0, io.EOF
	case bodyMismatched:
		return 0, errBodyMismatch
	}
	n, err := b.rc.Read(p)
	b.h.Write(p[:n])
	if !errors.Is(err, io.EOF) {
		return n, err
	}
	var sum [sha256.Size]byte
	if subtle.ConstantTimeCompare(b.h.Sum(sum[:0]), b.want[:]) != 1 {
		b.state = bodyMismatched
		return n, errBodyMismatch
	}
	b.state = bodyMatched
	return n, io.EOF
}

func (b *signedBody) Close() error { return b.rc.Close() }

// verified reports whether the whole body was read and matched.
func (b *signedBody) verified() bool { return b.state == bodyMatched }
