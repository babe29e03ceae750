package httpconfig

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// BearerToken returns the token that carries secret in an
// "Authorization: Bearer <token>" header: the secret itself when it is all
// visible ASCII (0x21-0x7e), else its unpadded base64url encoding, since raw
// bytes are not a valid header value. The server accepts both forms.
func BearerToken(secret []byte) string {
	if printable(secret) {
		return string(secret)
	}
	return base64.RawURLEncoding.EncodeToString(secret)
}

// authenticator checks bearer tokens against a secret in constant time.
type authenticator struct {
	raw     [sha256.Size]byte // hash of the secret itself
	encoded [sha256.Size]byte // hash of its base64url encoding
}

func newAuthenticator(secret []byte) *authenticator {
	if len(secret) == 0 {
		return nil
	}
	return &authenticator{
		raw:     sha256.Sum256(secret),
		encoded: sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(secret))),
	}
}

// check reports whether header (an Authorization header value) carries the
// secret. Both sides are hashed first so that the comparison's time does
// not depend on the token's length or content.
func (a *authenticator) check(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	rawOK := subtle.ConstantTimeCompare(sum[:], a.raw[:])
	encOK := subtle.ConstantTimeCompare(sum[:], a.encoded[:])
	return rawOK|encOK == 1
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return len(b) > 0
}
