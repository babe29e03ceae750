// Package backup is the format of canoe's backups: one self-describing,
// checksummed stream that holds a cluster's state at one log index.
//
// Layout (version 1; integers big-endian):
//
//	offset  size  field
//	0       8     magic "CANOEBAK"
//	8       2     format version (1)
//	10      8     cluster ID
//	18      8     ID of the node that wrote it
//	26      8     log index the state reflects
//	34      8     term of that index
//	42      8     creation time, Unix milliseconds
//	50      8     M: size of the membership record
//	58      8     S: size of the FSM's state
//	66      M     membership record (canoe's JSON)
//	66+M    S     the FSM's state, as its snapshot writes it
//	66+M+S  32    SHA-256 of every byte before it
//
// and nothing after. The sizes come first, so that a reader knows where
// the state ends (and raft's Restore, which takes a size, can stream it);
// the checksum comes last, so that a writer streams in one pass. A reader
// must not act on anything before Reader.State returned io.EOF, which it
// does only once the checksum matched.
package backup

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"time"
)

// Magic opens every backup.
const Magic = "CANOEBAK"

// Version is the format version this package writes and reads.
const Version = 1

const (
	headerSize = 66
	sumSize    = sha256.Size
	// MaxMembership bounds the membership record.
	MaxMembership = 64 << 20
)

// ErrInvalid matches every error about a backup's content.
var ErrInvalid = errors.New("invalid backup")

// Header is the fixed part of a backup.
type Header struct {
	Version        int
	ClusterID      uint64
	NodeID         uint64
	Index          uint64
	Term           uint64
	Created        time.Time // millisecond precision
	MembershipSize int64
	StateSize      int64
}

// Size returns the size of the whole backup h describes.
func (h Header) Size() int64 { return headerSize + h.MembershipSize + h.StateSize + sumSize }

func (h Header) encode() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, Version)
	for _, v := range []uint64{h.ClusterID, h.NodeID, h.Index, h.Term, uint64(h.Created.UnixMilli()),
		uint64(h.MembershipSize), uint64(h.StateSize)} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// Write writes a backup of h (Version is ignored: Version is written) with
// the given membership record and exactly h.StateSize bytes read from
// state, and returns the SHA-256 it ends with. h.MembershipSize must be
// len(membership).
func Write(w io.Writer, h Header, membership []byte, state io.Reader) ([sumSize]byte, error) {
	var sum [sumSize]byte
	if h.MembershipSize != int64(len(membership)) || h.StateSize < 0 {
		return sum, fmt.Errorf("backup: header sizes (%d, %d) do not match the content", h.MembershipSize, h.StateSize)
	}
	hw := &hashingWriter{w: w, h: sha256.New()}
	if _, err := hw.Write(h.encode()); err != nil {
		return sum, err
	}
	if _, err := hw.Write(membership); err != nil {
		return sum, err
	}
	n, err := io.CopyN(hw, state, h.StateSize)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("backup: the state ended after %d of its %d bytes", n, h.StateSize)
		}
		return sum, err
	}
	hw.h.Sum(sum[:0])
	if _, err := w.Write(sum[:]); err != nil {
		return sum, err
	}
	return sum, nil
}

type hashingWriter struct {
	w io.Writer
	h hash.Hash
}

func (w *hashingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.h.Write(p[:n])
	return n, err
}

// Reader reads a backup and checks it as it goes.
type Reader struct {
	r          io.Reader
	h          hash.Hash
	header     Header
	membership []byte
	left       int64 // state bytes not read yet
	done       bool  // the checksum matched and the stream ended
	err        error // sticky error of State's reader
	sum        [sumSize]byte
}

// NewReader reads the header and the membership record of the backup r
// holds, refusing a backup larger than maxSize bytes. Its errors match
// ErrInvalid, except the errors of r itself.
func NewReader(r io.Reader, maxSize int64) (*Reader, error) {
	br := &Reader{r: r, h: sha256.New()}
	var hdr [headerSize]byte
	n, err := io.ReadFull(br.hashed(), hdr[:])
	if k := min(n, len(Magic)); string(hdr[:k]) != Magic[:k] {
		return nil, notBackup(hdr[:k])
	}
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: empty: no data at all", ErrInvalid)
	case err != nil:
		return nil, truncated(err, fmt.Sprintf("inside its %d-byte header (after %d bytes)", headerSize, n))
	}
	h := Header{Version: int(binary.BigEndian.Uint16(hdr[8:10]))}
	if h.Version != Version {
		return nil, fmt.Errorf("%w: format version %d; this build reads version %d (a backup written by a newer canoe?)", ErrInvalid, h.Version, Version)
	}
	u := func(off int) uint64 { return binary.BigEndian.Uint64(hdr[off : off+8]) }
	h.ClusterID, h.NodeID, h.Index, h.Term = u(10), u(18), u(26), u(34)
	h.Created = time.UnixMilli(int64(u(42)))
	ms, ss := u(50), u(58)
	if ms > MaxMembership {
		return nil, fmt.Errorf("%w: the header gives the membership record %d bytes, over the limit of %d: the backup is damaged", ErrInvalid, ms, MaxMembership)
	}
	h.MembershipSize, h.StateSize = int64(ms), int64(min(ss, math.MaxInt64/2))
	if ss > uint64(maxSize) || h.Size() > maxSize {
		return nil, fmt.Errorf("%w: the header gives the backup %d bytes (a state of %d), over the limit of %d bytes (raise MaxBackupBytes if the backup is real)",
			ErrInvalid, headerSize+ms+ss+sumSize, ss, maxSize)
	}
	br.header = h
	br.membership = make([]byte, ms)
	if n, err := io.ReadFull(br.hashed(), br.membership); err != nil {
		return nil, truncated(err, fmt.Sprintf("inside its membership record (after %d of %d bytes)", n, ms))
	}
	br.left = h.StateSize
	return br, nil
}

func notBackup(start []byte) error {
	return fmt.Errorf("%w: not a canoe backup: it starts with %q, a canoe backup with %q", ErrInvalid, start, Magic)
}

// truncated describes a stream that ended early; a read error that is not
// an early end passes through.
func truncated(err error, where string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated: the stream ends %s", ErrInvalid, where)
	}
	return err
}

func (r *Reader) hashed() io.Reader { return io.TeeReader(r.r, r.h) }

// Header returns the backup's header.
func (r *Reader) Header() Header { return r.header }

// Membership returns the membership record. It is not verified until State
// has returned io.EOF.
func (r *Reader) Membership() []byte { return r.membership }

// Sum returns the SHA-256 the backup ends with, once State has returned
// io.EOF.
func (r *Reader) Sum() [sumSize]byte { return r.sum }

// State returns a reader of the FSM's state. It returns io.EOF only after
// the last byte of the state, once the checksum after it matched and the
// stream ended there; a damaged or truncated backup makes it return an
// error matching ErrInvalid instead.
func (r *Reader) State() io.Reader { return stateReader{r} }

type stateReader struct{ r *Reader }

func (s stateReader) Read(p []byte) (int, error) {
	r := s.r
	switch {
	case r.err != nil:
		return 0, r.err
	case r.done:
		return 0, io.EOF
	case r.left == 0:
		r.err = r.finish()
		if r.err != nil {
			return 0, r.err
		}
		r.done = true
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.left -= int64(n)
	switch {
	case err == nil || errors.Is(err, io.EOF) && n > 0 && r.left == 0:
		return n, nil
	case errors.Is(err, io.EOF):
		r.err = fmt.Errorf("%w: truncated: the stream ends inside the state (after %d of %d bytes)",
			ErrInvalid, r.header.StateSize-r.left, r.header.StateSize)
	default:
		r.err = err
	}
	return n, r.err
}

// finish reads and checks the checksum, and the end of the stream.
func (r *Reader) finish() error {
	var want [sumSize]byte
	r.h.Sum(want[:0])
	var got [sumSize]byte
	if n, err := io.ReadFull(r.r, got[:]); err != nil {
		return truncated(err, fmt.Sprintf("inside its SHA-256 checksum (after %d of %d bytes)", n, sumSize))
	}
	if got != want {
		return fmt.Errorf("%w: checksum mismatch: the backup ends with SHA-256 %x, but its content hashes to %x: the backup is damaged", ErrInvalid, got[:8], want[:8])
	}
	var extra [1]byte
	switch n, err := io.ReadFull(r.r, extra[:]); {
	case n > 0:
		return fmt.Errorf("%w: unexpected data after the checksum (a backup ends with it; two backups concatenated?)", ErrInvalid)
	case !errors.Is(err, io.EOF):
		return err
	}
	r.sum = got
	return nil
}
