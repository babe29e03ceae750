package transport

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// A sealed connection carries a stream in frames, each a 4-byte big-endian
// length and that many bytes of AES-256-GCM ciphertext (with its 16-byte
// tag). The length is the frame's additional data, and the nonce is a
// per-direction counter, so frames cannot be altered, dropped, reordered or
// replayed without the reader failing. Each direction has its own key.
const (
	maxFramePlain = 64 << 10
	tagSize       = 16
	frameHeader   = 4

	// readBuffer buffers the reads from the connection, so that a small
	// frame's header and body usually come in one read.
	readBuffer = 16 << 10
)

// ErrSealedFrame reports a frame that failed authentication or is malformed.
var ErrSealedFrame = errors.New("canoe: sealed raft connection: bad frame")

// sealedConn seals what is written to and opens what is read from Conn.
type sealedConn struct {
	net.Conn

	wmu     sync.Mutex // guards the write side
	send    cipher.AEAD
	sendCtr uint64
	wbuf    []byte
	whdr    [frameHeader]byte
	wnonce  [12]byte

	rmu     sync.Mutex    // guards the read side
	r       *bufio.Reader // reads Conn
	recv    cipher.AEAD
	recvCtr uint64
	rbuf    []byte // the frame being read (ciphertext, then plaintext in place)
	plain   []byte // unread plaintext, a slice of rbuf
	rerr    error  // sticky read error
	rhdr    [frameHeader]byte
	rnonce  [12]byte
}

func newAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("transport: session key of %d bytes: %v", len(key), err)) // keys are always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("transport: GCM: %v", err))
	}
	return aead
}

func newSealedConn(c net.Conn, s session) *sealedConn {
	return &sealedConn{Conn: c, r: bufio.NewReaderSize(c, readBuffer), send: newAEAD(s.send), recv: newAEAD(s.recv)}
}

// frameNonce writes the nonce of frame ctr into n (the connection's own
// buffer, so that sealing allocates nothing) and returns it.
func frameNonce(n *[12]byte, ctr uint64) []byte {
	binary.BigEndian.PutUint64(n[4:], ctr)
	return n[:]
}

// Write seals p in frames of at most maxFramePlain bytes and writes them in
// one call to the underlying connection.
func (c *sealedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	frames := (len(p) + maxFramePlain - 1) / maxFramePlain
	need := len(p) + frames*(frameHeader+tagSize)
	if cap(c.wbuf) < need {
		c.wbuf = make([]byte, 0, need)
	}
	out := c.wbuf[:0]
	for rest := p; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxFramePlain)]
		rest = rest[len(chunk):]
		binary.BigEndian.PutUint32(c.whdr[:], uint32(len(chunk)+tagSize))
		out = append(out, c.whdr[:]...)
		out = c.send.Seal(out, frameNonce(&c.wnonce, c.sendCtr), chunk, c.whdr[:])
		c.sendCtr++
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	if cap(c.wbuf) > 4*maxFramePlain {
		c.wbuf = nil // a snapshot's burst: do not keep its buffer
	}
	return len(p), nil
}

// Read returns opened plaintext, reading the next frame when none is left.
func (c *sealedConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.plain) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if err := c.readFrame(); err != nil {
			c.rerr = err
			return 0, err
		}
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	return n, nil
}

func (c *sealedConn) readFrame() error {
	hdr := c.rhdr[:]
	if _, err := io.ReadFull(c.r, hdr); err != nil {
		return err // io.EOF at a frame boundary is an orderly end
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n < tagSize || n > maxFramePlain+tagSize {
		return fmt.Errorf("%w: length %d", ErrSealedFrame, n)
	}
	if cap(c.rbuf) < n {
		c.rbuf = make([]byte, n, maxFramePlain+tagSize)
	}
	buf := c.rbuf[:n]
	if _, err := io.ReadFull(c.r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	plain, err := c.recv.Open(buf[:0], frameNonce(&c.rnonce, c.recvCtr), buf, hdr)
	if err != nil {
		return fmt.Errorf("%w: frame %d failed authentication", ErrSealedFrame, c.recvCtr)
	}
	c.recvCtr++
	c.plain = plain
	return nil
}
