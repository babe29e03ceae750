package discovery

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/hashicorp/memberlist"
)

// MaxMetaSize is the largest encoded Meta memberlist accepts (it panics on
// more). Meta.Encode refuses anything larger.
const MaxMetaSize = memberlist.MetaMaxSize

// metaVersion is the format version Meta.Encode writes.
const metaVersion = 1

const (
	flagHasState = 1 << iota
	flagLeaving
	flagNonVoter
)

// Meta is what each node gossips about itself. It travels in memberlist's
// node metadata, so its encoding must stay within MaxMetaSize bytes.
type Meta struct {
	ID              uint64 // canoe node ID; must be nonzero
	ClusterID       uint64 // nodes of different clusters refuse each other
	RaftAddr        string // host:port of the raft transport
	ConfigAddr      string // host:port of the HTTP API; "" if none
	BootstrapExpect int    // nodes to wait for before bootstrapping; 0 = not used
	HasState        bool   // the node already has raft state / belongs to a formed cluster
	Leaving         bool   // set just before a graceful Leave
	// NonVoter asks the leader that adds this node by gossip to add it as
	// a read replica: a non-voter it never promotes on its own.
	NonVoter bool
}

// Encode returns m's compact binary form. It fails with ErrInvalidMeta for a
// zero ID or a BootstrapExpect outside [0, MaxInt32], and with
// ErrMetaTooLarge when the result would exceed MaxMetaSize bytes.
//
// Format version 1, in order: the version byte (1); uvarint ID; uvarint
// ClusterID; uvarint length + bytes of RaftAddr; the same for ConfigAddr;
// uvarint BootstrapExpect; one flags byte (bit 0 HasState, bit 1 Leaving,
// bit 2 NonVoter). Later versions may only append fields or flag bits, so
// that old decoders keep working during a rolling upgrade (a decoder that
// predates bit 2 reads a NonVoter node as one to promote).
func (m Meta) Encode() ([]byte, error) {
	if m.ID == 0 {
		return nil, fmt.Errorf("%w: ID must be nonzero", ErrInvalidMeta)
	}
	if m.BootstrapExpect < 0 || m.BootstrapExpect > math.MaxInt32 {
		return nil, fmt.Errorf("%w: BootstrapExpect %d out of range [0, %d]",
			ErrInvalidMeta, m.BootstrapExpect, math.MaxInt32)
	}
	size := 1 + uvarintLen(m.ID) + uvarintLen(m.ClusterID) +
		uvarintLen(uint64(len(m.RaftAddr))) + len(m.RaftAddr) +
		uvarintLen(uint64(len(m.ConfigAddr))) + len(m.ConfigAddr) +
		uvarintLen(uint64(m.BootstrapExpect)) + 1
	if size > MaxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, size, MaxMetaSize)
	}
	b := make([]byte, 0, size)
	b = append(b, metaVersion)
	b = binary.AppendUvarint(b, m.ID)
	b = binary.AppendUvarint(b, m.ClusterID)
	b = binary.AppendUvarint(b, uint64(len(m.RaftAddr)))
	b = append(b, m.RaftAddr...)
	b = binary.AppendUvarint(b, uint64(len(m.ConfigAddr)))
	b = append(b, m.ConfigAddr...)
	b = binary.AppendUvarint(b, uint64(m.BootstrapExpect))
	var flags byte
	if m.HasState {
		flags |= flagHasState
	}
	if m.Leaving {
		flags |= flagLeaving
	}
	if m.NonVoter {
		flags |= flagNonVoter
	}
	return append(b, flags), nil
}

// DecodeMeta parses what Meta.Encode produced. It accepts format version 1
// and any later version (which may only append), ignoring trailing bytes and
// unknown flag bits. It never panics; malformed input gives an error that
// matches ErrInvalidMeta or ErrMetaTooLarge.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) > MaxMetaSize {
		return Meta{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(b), MaxMetaSize)
	}
	d := metaDecoder{buf: b}
	if v := d.byte("version"); d.err == nil && v < metaVersion {
		return Meta{}, fmt.Errorf("%w: unknown format version %d", ErrInvalidMeta, v)
	}
	var m Meta
	m.ID = d.uvarint("ID")
	m.ClusterID = d.uvarint("ClusterID")
	m.RaftAddr = d.string("RaftAddr")
	m.ConfigAddr = d.string("ConfigAddr")
	be := d.uvarint("BootstrapExpect")
	flags := d.byte("flags")
	if d.err != nil {
		return Meta{}, d.err
	}
	if m.ID == 0 {
		return Meta{}, fmt.Errorf("%w: ID is zero", ErrInvalidMeta)
	}
	if be > math.MaxInt32 {
		return Meta{}, fmt.Errorf("%w: BootstrapExpect %d too large", ErrInvalidMeta, be)
	}
	m.BootstrapExpect = int(be)
	m.HasState = flags&flagHasState != 0
	m.Leaving = flags&flagLeaving != 0
	m.NonVoter = flags&flagNonVoter != 0
	return m, nil
}

// metaDecoder reads fields in order; the first error sticks and later reads
// return zero values.
type metaDecoder struct {
	buf []byte
	err error
}

func (d *metaDecoder) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrInvalidMeta, field, why)
	}
}

func (d *metaDecoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.fail(field, "truncated")
		return 0
	}
	v := d.buf[0]
	d.buf = d.buf[1:]
	return v
}

func (d *metaDecoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(field, "truncated or overlong varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *metaDecoder) string(field string) string {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.buf)) {
		d.fail(field, "length exceeds input")
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
