package httpconfig

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/canoe-raft/canoe/internal/keys"
)

// Request signing; see the package documentation, "Authentication".
const (
	// AuthScheme is the Authorization scheme of signed requests.
	AuthScheme = "Canoe-HMAC-SHA256"
	// SignatureWindow is how far a signed request's timestamp may be from
	// the server's clock, either way.
	SignatureWindow = 60 * time.Second

	// sigLabel starts the string to sign; a new format gets a new label.
	sigLabel = "CANOE-HMAC-SHA256-V1"
	// nonceBytes is the size of the random nonce a Signer sends.
	nonceBytes = 16
	// Accepted nonce lengths, in base64url characters.
	minNonceLen, maxNonceLen = 16, 64
	// maxTimestampLen bounds the digits of t (15 digits of milliseconds
	// reach the year 33658).
	maxTimestampLen = 15
	// maxAuthHeader bounds the Authorization header the server parses.
	maxAuthHeader = 512
)

// b64 encodes nonces, body hashes, signatures and the metrics token:
// base64url without padding, canonical bits only.
var b64 = base64.RawURLEncoding.Strict()

// Signer signs requests to the API of one cluster. It holds the API key
// derived from the cluster secret and cluster ID (never the secret) and is
// safe for concurrent use. Client uses one; NewSigner is for programs that
// build their own requests.
type Signer struct {
	key [keys.Size]byte
}

// NewSigner returns a Signer for the cluster with the given secret (at
// least 16 bytes, NodeConfig.ClusterSecret) and ID (NodeConfig.ClusterID
// after defaulting: canoe's default is 0x100). It fails if the secret is
// too short.
func NewSigner(secret []byte, clusterID uint64) (*Signer, error) {
	k, err := keys.Derive(secret, clusterID)
	if err != nil {
		return nil, fmt.Errorf("httpconfig: %w", err)
	}
	return &Signer{key: k.API}, nil
}

// Authorization returns the value of the Authorization header for a
// request with the given method, request URI (escaped path and query as
// sent on the request line, as url.URL.RequestURI returns it) and body
// SHA-256 (sha256.Sum256(nil) for no body), signed at time at with a fresh
// random nonce. The server accepts it once, within SignatureWindow of at.
func (s *Signer) Authorization(method, requestURI string, bodySum [sha256.Size]byte, at time.Time) string {
	var nonce [nonceBytes]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	return s.authorization(method, requestURI, bodySum, at, b64.EncodeToString(nonce[:]))
}

// authorization is Authorization with the given nonce.
func (s *Signer) authorization(method, requestURI string, bodySum [sha256.Size]byte, at time.Time, nonce string) string {
	p := authParams{
		ts:    strconv.FormatInt(at.UnixMilli(), 10),
		nonce: nonce,
		body:  bodySum,
	}
	p.sig = s.sign(method, requestURI, &p)
	return p.String()
}

// sign returns the HMAC-SHA256 of the string to sign for p (whose sig it
// ignores).
func (s *Signer) sign(method, requestURI string, p *authParams) [sha256.Size]byte {
	m := hmac.New(sha256.New, s.key[:])
	// The fields are newline-separated and none can hold a newline: the
	// method and request URI come from a parsed request line, the rest from
	// checked parameters.
	for _, f := range []string{sigLabel, method, requestURI, p.ts, p.nonce, b64.EncodeToString(p.body[:])} {
		m.Write([]byte(f))
		m.Write([]byte{'\n'})
	}
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	return sum
}

// MetricsToken returns the read-only bearer token of the cluster with the
// given secret and ID: "Authorization: Bearer <token>" is accepted on
// GET /metrics and GET /healthz and nowhere else. It is derived from the
// secret (43 base64url characters) and reveals neither the secret nor any
// other key. It fails if the secret is shorter than 16 bytes.
func MetricsToken(secret []byte, clusterID uint64) (string, error) {
	k, err := keys.Derive(secret, clusterID)
	if err != nil {
		return "", fmt.Errorf("httpconfig: %w", err)
	}
	return b64.EncodeToString(k.Metrics[:]), nil
}

// authParams are the parameters of a Canoe-HMAC-SHA256 Authorization
// header: t (unix milliseconds, decimal), n (nonce), b (body SHA-256) and s
// (signature).
type authParams struct {
	ts    string // as sent: the signature covers these characters
	nonce string
	body  [sha256.Size]byte
	sig   [sha256.Size]byte
}

// String formats p as an Authorization header value.
func (p *authParams) String() string {
	return AuthScheme + " t=" + p.ts + ",n=" + p.nonce +
		",b=" + b64.EncodeToString(p.body[:]) + ",s=" + b64.EncodeToString(p.sig[:])
}

// millis returns t as unix milliseconds. parseSigned checked it.
func (p *authParams) millis() int64 {
	ms, _ := strconv.ParseInt(p.ts, 10, 64)
	return ms
}

// errMalformedAuth starts every parse error's message.
var errMalformedAuth = errors.New("malformed " + AuthScheme + " Authorization header")

// parseSigned parses the parameters after "Canoe-HMAC-SHA256 ":
// comma-separated key=value pairs with optional spaces or tabs around the
// commas, in any order, t, n, b and s each exactly once, nothing else.
func parseSigned(params string) (authParams, error) {
	var p authParams
	bad := func(format string, args ...any) (authParams, error) {
		return authParams{}, fmt.Errorf("%w: "+format, append([]any{errMalformedAuth}, args...)...)
	}
	var seen [4]bool // t, n, b, s
	for part := range strings.SplitSeq(params, ",") {
		key, val, ok := strings.Cut(strings.Trim(part, " \t"), "=")
		if !ok {
			return bad("want key=value, got %q", truncate(part, 32))
		}
		i := strings.Index("tnbs", key)
		if len(key) != 1 || i < 0 {
			return bad("unknown parameter %q", truncate(key, 32))
		}
		if seen[i] {
			return bad("parameter %q given twice", key)
		}
		seen[i] = true
		switch key {
		case "t":
			if val == "" || len(val) > maxTimestampLen || strings.Trim(val, "0123456789") != "" {
				return bad("t must be unix milliseconds (1 to %d digits), got %q", maxTimestampLen, truncate(val, 32))
			}
			p.ts = val
		case "n":
			if len(val) < minNonceLen || len(val) > maxNonceLen || !isBase64URL(val) {
				return bad("n must be %d to %d base64url characters", minNonceLen, maxNonceLen)
			}
			p.nonce = val
		case "b":
			if !decode32(&p.body, val) {
				return bad("b must be a SHA-256 in unpadded base64url (43 characters)")
			}
		case "s":
			if !decode32(&p.sig, val) {
				return bad("s must be an HMAC-SHA256 in unpadded base64url (43 characters)")
			}
		}
	}
	for i, ok := range seen {
		if !ok {
			return bad("parameter %q missing", "tnbs"[i:i+1])
		}
	}
	return p, nil
}

// decode32 decodes 32 bytes of unpadded, canonical base64url into dst.
func decode32(dst *[sha256.Size]byte, s string) bool {
	if len(s) != b64.EncodedLen(sha256.Size) {
		return false
	}
	n, err := b64.Decode(dst[:], []byte(s))
	return err == nil && n == sha256.Size
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
