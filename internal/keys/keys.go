// Package keys derives canoe's keys from a cluster's shared secret
// (NodeConfig.ClusterSecret), one key per use, so that no key that a use
// exposes reveals the secret or any other key.
//
// Each key is HKDF-SHA256 (RFC 5869, crypto/hkdf) of the secret with the
// fixed salt "canoe cluster secret v1" and the info string
//
//	"canoe v1 " + label + "\x00" + big-endian uint64 cluster ID
//
// where label is "gossip", "raft", "api" or "metrics", and is 32 bytes
// long. The cluster ID is part of every key: two clusters that share a secret
// but not an ID share no key. HKDF's outputs under different info strings
// are independent pseudorandom values, so learning one key (the metrics
// token is sent in the clear by design) tells nothing about the secret or
// about the other keys.
//
// The package is a leaf that canoe, httpconfig and the commands import; it
// never logs and never sends anything.
package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Size is the length of every derived key in bytes (AES-256, HMAC-SHA256).
const Size = 32

// MinSecretLen is the shortest secret Derive accepts, in bytes (128 bits).
const MinSecretLen = 16

// ErrShortSecret is returned by Derive for a secret shorter than
// MinSecretLen bytes (including an empty one).
var ErrShortSecret = errors.New("keys: cluster secret too short")

// Salt is HKDF's salt for every key.
const salt = "canoe cluster secret v1"

// Labels of the keys, part of HKDF's info string.
const (
	labelGossip  = "gossip"
	labelRaft    = "raft"
	labelAPI     = "api"
	labelMetrics = "metrics"
)

// Keys are the keys of one cluster, each used for one purpose only.
type Keys struct {
	// Gossip is memberlist's SecretKey: it encrypts gossip with AES-256-GCM.
	Gossip [Size]byte
	// Raft keys the challenge-response handshake that opens every raft
	// connection (HMAC-SHA256), and the per-connection keys that seal the
	// rest of it (AES-256-GCM) are derived from it and the handshake.
	Raft [Size]byte
	// API signs HTTP API requests (HMAC-SHA256, see httpconfig). It never
	// goes on the wire.
	API [Size]byte
	// Metrics is the read-only bearer token for GET /metrics and
	// GET /healthz. It is sent as is, so it must grant nothing else.
	Metrics [Size]byte
}

// Derive returns the keys of the cluster with the given ID and secret. The
// result depends only on its arguments. It fails with an error matching
// ErrShortSecret if secret is shorter than MinSecretLen bytes, and with
// crypto/hkdf's error in the (FIPS 140-only) cases where HKDF refuses.
func Derive(secret []byte, clusterID uint64) (Keys, error) {
	var k Keys
	if len(secret) < MinSecretLen {
		return k, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortSecret, len(secret), MinSecretLen)
	}
	prk, err := hkdf.Extract(sha256.New, secret, []byte(salt))
	if err != nil {
		return k, fmt.Errorf("keys: HKDF extract: %w", err)
	}
	for _, d := range []struct {
		label string
		dst   *[Size]byte
	}{
		{labelGossip, &k.Gossip},
		{labelRaft, &k.Raft},
		{labelAPI, &k.API},
		{labelMetrics, &k.Metrics},
	} {
		b, err := hkdf.Expand(sha256.New, prk, info(d.label, clusterID), Size)
		if err != nil {
			return Keys{}, fmt.Errorf("keys: HKDF expand %q: %w", d.label, err)
		}
		copy(d.dst[:], b)
	}
	return k, nil
}

// info returns HKDF's info string for label and clusterID.
func info(label string, clusterID uint64) string {
	b := make([]byte, 0, len("canoe v1 ")+len(label)+1+8)
	b = append(b, "canoe v1 "...)
	b = append(b, label...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, clusterID)
	return string(b)
}
