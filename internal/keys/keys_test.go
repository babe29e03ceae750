package keys

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

var asciiSecret = []byte("0123456789abcdef0123456789abcdef")

func mustDerive(t *testing.T, secret []byte, clusterID uint64) Keys {
	t.Helper()
	k, err := Derive(secret, clusterID)
	if err != nil {
		t.Fatalf("Derive(%x, %d): %v", secret, clusterID, err)
	}
	return k
}

func (k Keys) all() map[string][Size]byte {
	return map[string][Size]byte{"gossip": k.Gossip, "raft": k.Raft, "api": k.API, "metrics": k.Metrics}
}

// TestKnownAnswers checks Derive against vectors computed outside Go:
//
//	openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:<secret> \
//	  -kdfopt salt:"canoe cluster secret v1" \
//	  -kdfopt hexinfo:<hex("canoe v1 <label>") 00 <cluster ID, 8 bytes big-endian>> HKDF
//
// and again with a from-scratch RFC 5869 HKDF in Python's hmac module (both
// gave the same bytes).
func TestKnownAnswers(t *testing.T) {
	binarySecret := make([]byte, 16)
	for i := range binarySecret {
		binarySecret[i] = byte(i)
	}
	tests := []struct {
		name      string
		secret    []byte
		clusterID uint64
		want      map[string]string
	}{
		{"ascii secret, default cluster", asciiSecret, 0x100, map[string]string{
			"gossip":  "21f72d00bf51d714d2511e349cf572a680095d27cedb23514f9a183346099b1c",
			"raft":    "958238679b38ce78f34ba80d5916a3baf8603669d441ecde924d60ffed02000c",
			"api":     "fd3d63c63027a9bc66c52bb48873f19309b206e307907df801874b8968e3da2f",
			"metrics": "d3b6c2919bb85bec447957c166ff4245343013d8859a0ed59c449a713c668b1a",
		}},
		{"binary secret, cluster 7", binarySecret, 7, map[string]string{
			"gossip":  "d52bf561b42c7d2a6cb076da53f1d76a2f7616b92c3a34087e0c1ab1341afc30",
			"raft":    "f73f702ed59ff29add3367b0995ca99c464807a53e4d1af11321981e3c839165",
			"api":     "fa21542d4f886a09fcb2a848c6a2f390f0d56b24c3ce97698a5762a0943f13d9",
			"metrics": "0da78a9855d3aeb9bd2d0d7f358f5ddd8db9c29a0e77344431906278bdc9f966",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustDerive(t, tt.secret, tt.clusterID).all()
			for label, want := range tt.want {
				k := got[label]
				if h := hex.EncodeToString(k[:]); h != want {
					t.Errorf("%s key = %s, want %s", label, h, want)
				}
			}
		})
	}
}

// TestDistinct checks that every label, secret and cluster ID gives its own
// key, that no key is the secret, and that Derive is deterministic.
func TestDistinct(t *testing.T) {
	inputs := []struct {
		secret    []byte
		clusterID uint64
	}{
		{asciiSecret, 0x100},
		{asciiSecret, 0x101},
		{asciiSecret, 0},
		{[]byte("0123456789abcdef0123456789abcdeF"), 0x100},
		{asciiSecret[:16], 0x100},
		{asciiSecret[:24], 0x100},
	}
	seen := map[[Size]byte]string{}
	for _, in := range inputs {
		k := mustDerive(t, in.secret, in.clusterID)
		if again := mustDerive(t, in.secret, in.clusterID); again != k {
			t.Errorf("Derive(%q, %d) is not deterministic", in.secret, in.clusterID)
		}
		for label, key := range k.all() {
			name := label + " key of " + string(in.secret) + "/" + hex.EncodeToString([]byte{byte(in.clusterID >> 8), byte(in.clusterID)})
			if prev, dup := seen[key]; dup {
				t.Errorf("%s equals %s", name, prev)
			}
			seen[key] = name
			if bytes.Contains(key[:], in.secret[:MinSecretLen]) {
				t.Errorf("%s contains the secret", name)
			}
		}
	}
	if len(seen) != 4*len(inputs) {
		t.Errorf("got %d distinct keys, want %d", len(seen), 4*len(inputs))
	}
}

func TestShortSecret(t *testing.T) {
	for _, n := range []int{0, 1, MinSecretLen - 1} {
		k, err := Derive(make([]byte, n), 1)
		if !errors.Is(err, ErrShortSecret) {
			t.Errorf("Derive(%d bytes) error = %v, want ErrShortSecret", n, err)
		}
		if k != (Keys{}) {
			t.Errorf("Derive(%d bytes) returned keys with its error", n)
		}
	}
	if _, err := Derive(nil, 1); err == nil || err.Error() != "keys: cluster secret too short: 0 bytes, want at least 16" {
		t.Errorf("Derive(nil) error = %v, want the length in the message", err)
	}
}
