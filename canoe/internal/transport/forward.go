package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Forward is the channel on which a follower sends its proposals and
// read-index requests to the leader: one long-lived connection per
// follower, requests pipelined, answered in any order by ID.
//
// Every message is a frame: uvarint(length of the rest), then a kind byte
// and the kind's fields. Integers are uvarints; a session is 8 bytes,
// big-endian.
//
//	propose      kind 1: id, session, count, {seq, len, bytes}*count
//	read index   kind 2: id
//	reply        kind 3: id, status, then by status:
//	               OK: count, {index}*count (one per proposal; one for a read),
//	                   term of the entry at the highest index (0: unknown)
//	               NotLeader: leader id (0: unknown)
//	               Unknown, Refused: len, message bytes
//
// A decoder accepts exactly one spelling of each message (minimal
// uvarints, no trailing bytes) and bounds every allocation by the input.
const Forward Channel = 'F'

// Message kinds.
const (
	KindPropose   byte = 1
	KindReadIndex byte = 2
	KindReply     byte = 3
)

// ReplyStatus says how the leader handled a request.
type ReplyStatus byte

const (
	// ReplyOK: the proposals committed (Indexes holds each one's entry), or
	// the read index is Indexes[0]; Term is the term of the entry at the
	// highest of them, so that a follower whose log holds that entry in that
	// term knows its log matches the leader's up to there.
	ReplyOK ReplyStatus = 1
	// ReplyNotLeader: this node does not lead; nothing was done. Leader
	// names the leader it knows (0: none).
	ReplyNotLeader ReplyStatus = 2
	// ReplyUnknown: the proposals may or may not commit.
	ReplyUnknown ReplyStatus = 3
	// ReplyRefused: the request was refused; nothing was done.
	ReplyRefused ReplyStatus = 4
)

// MaxFrame bounds one forward frame: a batch of proposals of up to 1 MiB
// each, many of them.
const MaxFrame = 64 << 20

// ErrBadFrame reports a malformed forward frame.
var ErrBadFrame = errors.New("canoe: malformed forward frame")

// ProposeRequest carries a follower's proposals, each tagged with the
// follower's session and a sequence number.
type ProposeRequest struct {
	ID      uint64
	Session uint64
	Seqs    []uint64
	Items   [][]byte
}

// ReadIndexRequest asks the leader for a read index.
type ReadIndexRequest struct{ ID uint64 }

// Reply answers a request.
type Reply struct {
	ID      uint64
	Status  ReplyStatus
	Indexes []uint64
	Term    uint64
	Leader  uint64
	Message string
}

// AppendPropose appends r's frame to b.
func AppendPropose(b []byte, r *ProposeRequest) []byte {
	body := 1 + 3*binary.MaxVarintLen64 + 8
	for _, it := range r.Items {
		body += 2*binary.MaxVarintLen64 + len(it)
	}
	return appendFrame(b, body, func(b []byte) []byte {
		b = append(b, KindPropose)
		b = binary.AppendUvarint(b, r.ID)
		b = binary.BigEndian.AppendUint64(b, r.Session)
		b = binary.AppendUvarint(b, uint64(len(r.Items)))
		for i, it := range r.Items {
			b = binary.AppendUvarint(b, r.Seqs[i])
			b = binary.AppendUvarint(b, uint64(len(it)))
			b = append(b, it...)
		}
		return b
	})
}

// AppendReadIndex appends r's frame to b.
func AppendReadIndex(b []byte, r ReadIndexRequest) []byte {
	return appendFrame(b, 1+binary.MaxVarintLen64, func(b []byte) []byte {
		return binary.AppendUvarint(append(b, KindReadIndex), r.ID)
	})
}

// AppendReply appends r's frame to b.
func AppendReply(b []byte, r *Reply) []byte {
	body := 3 + 4*binary.MaxVarintLen64 + len(r.Message) + len(r.Indexes)*binary.MaxVarintLen64
	return appendFrame(b, body, func(b []byte) []byte {
		b = append(b, KindReply)
		b = binary.AppendUvarint(b, r.ID)
		b = append(b, byte(r.Status))
		switch r.Status {
		case ReplyOK:
			b = binary.AppendUvarint(b, uint64(len(r.Indexes)))
			for _, ix := range r.Indexes {
				b = binary.AppendUvarint(b, ix)
			}
			b = binary.AppendUvarint(b, r.Term)
		case ReplyNotLeader:
			b = binary.AppendUvarint(b, r.Leader)
		default:
			b = binary.AppendUvarint(b, uint64(len(r.Message)))
			b = append(b, r.Message...)
		}
		return b
	})
}

// appendFrame appends a length prefix and the body fill writes (at most
// max bytes).
func appendFrame(b []byte, max int, fill func([]byte) []byte) []byte {
	if cap(b)-len(b) < max+binary.MaxVarintLen64 {
		nb := make([]byte, len(b), len(b)+max+binary.MaxVarintLen64)
		copy(nb, b)
		b = nb
	}
	// Leave room for the longest prefix, then move the body if shorter.
	start := len(b)
	b = b[:start+binary.MaxVarintLen64]
	b = fill(b)
	n := len(b) - start - binary.MaxVarintLen64
	var pre [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(pre[:], uint64(n))
	copy(b[start+k:], b[start+binary.MaxVarintLen64:])
	copy(b[start:], pre[:k])
	return b[:start+k+n]
}

// ReadFrame reads one frame's body from r. The body is a fresh slice the
// caller may keep.
func ReadFrame(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: length: %v", ErrBadFrame, err)
	}
	if n == 0 || n > MaxFrame {
		return nil, fmt.Errorf("%w: length %d", ErrBadFrame, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrBadFrame, err)
	}
	return b, nil
}

// DecodeRequest parses a frame a follower sent: a *ProposeRequest or a
// ReadIndexRequest. Proposal items alias b.
func DecodeRequest(b []byte) (any, error) {
	d := wireDecoder{b: b}
	if len(b) == 0 {
		return nil, d.errorf("empty frame")
	}
	d.off = 1
	switch b[0] {
	case KindPropose:
		r := &ProposeRequest{ID: d.uvarint()}
		r.Session = d.uint64()
		count := d.uvarint()
		// An item takes at least two bytes (its seq and its length).
		if d.err == nil && (count == 0 || count > uint64(d.left())/2) {
			return nil, d.errorf("propose: count %d for %d bytes", count, d.left())
		}
		r.Seqs = make([]uint64, 0, count)
		r.Items = make([][]byte, 0, count)
		for i := uint64(0); i < count && d.err == nil; i++ {
			r.Seqs = append(r.Seqs, d.uvarint())
			r.Items = append(r.Items, d.bytes())
		}
		return r, d.end()
	case KindReadIndex:
		r := ReadIndexRequest{ID: d.uvarint()}
		return r, d.end()
	}
	return nil, d.errorf("unknown request kind %d", b[0])
}

// DecodeReply parses a frame the leader sent.
func DecodeReply(b []byte) (*Reply, error) {
	d := wireDecoder{b: b}
	if len(b) < 2 || b[0] != KindReply {
		return nil, d.errorf("not a reply")
	}
	d.off = 1
	r := &Reply{ID: d.uvarint()}
	if d.err != nil || d.left() == 0 {
		return nil, d.errorf("truncated reply")
	}
	r.Status = ReplyStatus(b[d.off])
	d.off++
	switch r.Status {
	case ReplyOK:
		count := d.uvarint()
		if d.err == nil && (count == 0 || count > uint64(d.left())) {
			return nil, d.errorf("reply: count %d for %d bytes", count, d.left())
		}
		r.Indexes = make([]uint64, 0, count)
		for i := uint64(0); i < count && d.err == nil; i++ {
			r.Indexes = append(r.Indexes, d.uvarint())
		}
		r.Term = d.uvarint()
	case ReplyNotLeader:
		r.Leader = d.uvarint()
	case ReplyUnknown, ReplyRefused:
		r.Message = string(d.bytes())
	default:
		return nil, d.errorf("unknown reply status %d", r.Status)
	}
	return r, d.end()
}

// wireDecoder reads the primitives strictly; the first error sticks.
type wireDecoder struct {
	b   []byte
	off int
	err error
}

func (d *wireDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadFrame, fmt.Sprintf(format, args...))
}

func (d *wireDecoder) left() int { return len(d.b) - d.off }

func (d *wireDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n <= 0:
		d.err = d.errorf("bad uvarint at %d", d.off)
		return 0
	case n > 1 && d.b[d.off+n-1] == 0:
		d.err = d.errorf("uvarint at %d not minimally encoded", d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *wireDecoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if d.left() < 8 {
		d.err = d.errorf("truncated at %d", d.off)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *wireDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(d.left()) {
		d.err = d.errorf("length %d past the end at %d", n, d.off)
		return nil
	}
	b := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b
}

func (d *wireDecoder) end() error {
	if d.err != nil {
		return d.err
	}
	if d.left() != 0 {
		return d.errorf("%d trailing bytes", d.left())
	}
	return nil
}
