package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The handshake opens every connection a Layer dials with a secret, and
// every connection a Layer with a secret accepts, before a single byte of
// raft or canoe traffic is read:
//
//	client -> server  hello: magic "CNR\x01", flags (bit 0: the client has a
//	                  key), cluster ID (8 bytes, big-endian), client nonce (32)
//	server -> client  reply: magic, status, server's cluster ID, server nonce
//	                  (32), server proof (32; zero without a key)
//	client -> server  client proof (32), only with a key
//
// The proofs are HMAC-SHA256 under the raft key (derived from the cluster
// secret) of a label for the direction, the cluster ID, the flags and both
// nonces. Each side sends a fresh nonce, so a recorded proof is worth
// nothing on another connection, and the labels keep a server's proof from
// serving as a client's. With a key and no TLS, the rest of the connection
// is sealed with AES-256-GCM under keys derived from the same transcript
// (see sealedConn): a relay between two nodes that completes their
// handshake can neither read nor change what follows. Under TLS, TLS
// protects it.
//
// After the handshake the client sends one channel byte (Raft, or one of
// canoe's own channels). A client without a key dialing the raft channel
// sends no hello at all: it speaks hashicorp/raft's protocol from the first
// byte, as canoe without the handshake did.

const (
	nonceSize = 32
	macSize   = sha256.Size
	helloSize = 4 + 1 + 8 + nonceSize
	replySize = 4 + 1 + 8 + nonceSize + macSize
)

var magic = [4]byte{'C', 'N', 'R', 1}

const flagKey = 1

// Status is the server's answer to a hello.
type Status byte

const (
	StatusOK           Status = 0
	StatusWrongCluster Status = 1
	StatusNeedsKey     Status = 2 // the server has a key, the client has none
	StatusHasNoKey     Status = 3 // the client has a key, the server has none
	StatusMalformed    Status = 4
)

// ErrHandshake is what every handshake failure matches.
var ErrHandshake = errors.New("canoe: raft connection handshake failed")

// hello is the client's first message.
type hello struct {
	flags     byte
	clusterID uint64
	nonce     [nonceSize]byte
}

func (h hello) encode() []byte {
	b := make([]byte, 0, helloSize)
	b = append(b, magic[:]...)
	b = append(b, h.flags)
	b = binary.BigEndian.AppendUint64(b, h.clusterID)
	return append(b, h.nonce[:]...)
}

// decodeHello parses a hello. It never panics.
func decodeHello(b []byte) (hello, error) {
	var h hello
	if len(b) != helloSize {
		return h, fmt.Errorf("hello is %d bytes, want %d", len(b), helloSize)
	}
	if [4]byte(b[:4]) != magic {
		return h, fmt.Errorf("hello starts with %q, want %q (another protocol version?)", b[:4], magic[:])
	}
	h.flags = b[4]
	if h.flags&^flagKey != 0 {
		return h, fmt.Errorf("hello has unknown flags %#x", h.flags)
	}
	h.clusterID = binary.BigEndian.Uint64(b[5:13])
	copy(h.nonce[:], b[13:])
	return h, nil
}

// reply is the server's answer.
type reply struct {
	status    Status
	clusterID uint64
	nonce     [nonceSize]byte
	mac       [macSize]byte
}

func (r reply) encode() []byte {
	b := make([]byte, 0, replySize)
	b = append(b, magic[:]...)
	b = append(b, byte(r.status))
	b = binary.BigEndian.AppendUint64(b, r.clusterID)
	b = append(b, r.nonce[:]...)
	return append(b, r.mac[:]...)
}

// decodeReply parses a reply. It never panics.
func decodeReply(b []byte) (reply, error) {
	var r reply
	if len(b) != replySize {
		return r, fmt.Errorf("reply is %d bytes, want %d", len(b), replySize)
	}
	if [4]byte(b[:4]) != magic {
		return r, fmt.Errorf("reply starts with %q, want %q: the peer does not speak canoe's handshake", b[:4], magic[:])
	}
	r.status = Status(b[4])
	r.clusterID = binary.BigEndian.Uint64(b[5:13])
	copy(r.nonce[:], b[13:13+nonceSize])
	copy(r.mac[:], b[13+nonceSize:])
	return r, nil
}

// transcript is what both proofs and the session keys are computed over.
type transcript struct {
	clusterID uint64
	flags     byte
	client    [nonceSize]byte
	server    [nonceSize]byte
}

// mac returns HMAC-SHA256(key, label || transcript).
func (t *transcript) mac(key []byte, label string) [macSize]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], t.clusterID)
	m.Write(b[:])
	m.Write([]byte{t.flags})
	m.Write(t.client[:])
	m.Write(t.server[:])
	var out [macSize]byte
	copy(out[:], m.Sum(nil))
	return out
}

const (
	labelServer = "canoe raft v1 server proof"
	labelClient = "canoe raft v1 client proof"
	labelC2S    = "canoe raft v1 client to server"
	labelS2C    = "canoe raft v1 server to client"
)

func randomNonce() (n [nonceSize]byte) {
	_, _ = rand.Read(n[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return n
}

// statusError explains a refusal to the client's operator.
func statusError(s Status, addr string, ours, theirs uint64) error {
	switch s {
	case StatusWrongCluster:
		return fmt.Errorf("%w: %s belongs to cluster %d, this node to cluster %d", ErrHandshake, addr, theirs, ours)
	case StatusNeedsKey:
		return fmt.Errorf("%w: %s requires the cluster's ClusterSecret and this node has none: set the same ClusterSecret on every node", ErrHandshake, addr)
	case StatusHasNoKey:
		return fmt.Errorf("%w: %s has no ClusterSecret and this node has one: set the same ClusterSecret on every node", ErrHandshake, addr)
	case StatusMalformed:
		return fmt.Errorf("%w: %s could not read this node's hello (a different canoe version?)", ErrHandshake, addr)
	}
	return fmt.Errorf("%w: %s answered with unknown status %d", ErrHandshake, addr, s)
}

// session is what a completed handshake yields: the keys sealing each
// direction, or none.
type session struct {
	send, recv []byte // nil: the connection is not sealed
}

// clientHandshake runs the client's side on rw, dialed to addr. With key nil
// it only checks the cluster ID (used by canoe's own channels on clusters
// without a secret).
func clientHandshake(rw io.ReadWriter, addr string, clusterID uint64, key []byte) (session, error) {
	h := hello{clusterID: clusterID, nonce: randomNonce()}
	if key != nil {
		h.flags = flagKey
	}
	if _, err := rw.Write(h.encode()); err != nil {
		return session{}, fmt.Errorf("%w: send hello to %s: %v", ErrHandshake, addr, err)
	}
	var buf [replySize]byte
	if _, err := io.ReadFull(rw, buf[:]); err != nil {
		return session{}, fmt.Errorf("%w: %s closed the connection or sent no answer to the hello (%v): it refused this node, or it runs a canoe without the handshake", ErrHandshake, addr, err)
	}
	r, err := decodeReply(buf[:])
	if err != nil {
		return session{}, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	if r.status != StatusOK {
		return session{}, statusError(r.status, addr, clusterID, r.clusterID)
	}
	if key == nil {
		return session{}, nil
	}
	t := transcript{clusterID: clusterID, flags: h.flags, client: h.nonce, server: r.nonce}
	want := t.mac(key, labelServer)
	if !hmac.Equal(r.mac[:], want[:]) {
		return session{}, fmt.Errorf("%w: %s could not prove it knows the cluster's secret: it has a different ClusterSecret", ErrHandshake, addr)
	}
	proof := t.mac(key, labelClient)
	if _, err := rw.Write(proof[:]); err != nil {
		return session{}, fmt.Errorf("%w: send proof to %s: %v", ErrHandshake, addr, err)
	}
	return session{send: sessionKey(key, &t, labelC2S), recv: sessionKey(key, &t, labelS2C)}, nil
}

// serverHandshake runs the server's side after the hello's bytes were read
// into b. Its errors say why the client was refused.
func serverHandshake(rw io.ReadWriter, b []byte, clusterID uint64, key []byte) (session, error) {
	h, err := decodeHello(b)
	if err != nil {
		_, _ = rw.Write(reply{status: StatusMalformed, clusterID: clusterID}.encode())
		return session{}, fmt.Errorf("malformed hello: %v", err)
	}
	r := reply{clusterID: clusterID, nonce: randomNonce()}
	hasKey := h.flags&flagKey != 0
	switch {
	case h.clusterID != clusterID:
		r.status = StatusWrongCluster
	case key != nil && !hasKey:
		r.status = StatusNeedsKey
	case key == nil && hasKey:
		r.status = StatusHasNoKey
	}
	t := transcript{clusterID: clusterID, flags: h.flags, client: h.nonce, server: r.nonce}
	if r.status == StatusOK && key != nil {
		r.mac = t.mac(key, labelServer)
	}
	if _, err := rw.Write(r.encode()); err != nil {
		return session{}, fmt.Errorf("send reply: %v", err)
	}
	switch r.status {
	case StatusOK:
	case StatusWrongCluster:
		return session{}, fmt.Errorf("it belongs to cluster %d, this node to cluster %d", h.clusterID, clusterID)
	case StatusNeedsKey:
		return session{}, errors.New("it has no ClusterSecret and this node requires one")
	default:
		return session{}, errors.New("it has a ClusterSecret and this node has none")
	}
	if key == nil {
		return session{}, nil
	}
	var proof [macSize]byte
	if _, err := io.ReadFull(rw, proof[:]); err != nil {
		return session{}, fmt.Errorf("it sent no proof of the cluster's secret (%v): a different ClusterSecret?", err)
	}
	want := t.mac(key, labelClient)
	if !hmac.Equal(proof[:], want[:]) {
		return session{}, errors.New("its proof of the cluster's secret is wrong: a different ClusterSecret")
	}
	return session{send: sessionKey(key, &t, labelS2C), recv: sessionKey(key, &t, labelC2S)}, nil
}

func sessionKey(key []byte, t *transcript, label string) []byte {
	k := t.mac(key, label)
	return k[:]
}
