package adapter

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Kind is the first byte of every raft log command canoe writes. It versions
// the entry format: a new layout gets a new kind, and old kinds stay readable
// forever so that old logs still replay.
type Kind byte

const (
	// KindProposal is one user proposal: the rest of the entry is its data.
	KindProposal Kind = 1
	// KindBatch is several user proposals coalesced into one raft entry:
	// uvarint count, then for each item a uvarint length and the bytes.
	KindBatch Kind = 2
	// KindPeerMeta records a member's addresses (JSON-encoded PeerMeta).
	KindPeerMeta Kind = 3
	// KindPeerForget drops a member's addresses (uvarint id).
	KindPeerForget Kind = 4
	// KindTagged is a batch of user proposals, each tagged with who
	// proposed it, so that every node can hand the proposer its result
	// when it applies the entry (see EncodeTagged).
	KindTagged Kind = 5
)

// ErrMalformedEntry reports a log entry canoe cannot decode.
var ErrMalformedEntry = errors.New("adapter: malformed log entry")

// EncodeProposal returns the entry for a single proposal.
func EncodeProposal(data []byte) []byte {
	buf := make([]byte, 1+len(data))
	buf[0] = byte(KindProposal)
	copy(buf[1:], data)
	return buf
}

// EncodeBatch returns one entry holding every item, applied in order. A batch
// of one item is encoded as a plain proposal.
func EncodeBatch(items [][]byte) []byte {
	if len(items) == 1 {
		return EncodeProposal(items[0])
	}
	size := 1 + binary.MaxVarintLen64
	for _, it := range items {
		size += binary.MaxVarintLen64 + len(it)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, byte(KindBatch))
	buf = binary.AppendUvarint(buf, uint64(len(items)))
	for _, it := range items {
		buf = binary.AppendUvarint(buf, uint64(len(it)))
		buf = append(buf, it...)
	}
	return buf
}

// DecodeProposals returns the user proposals held by a proposal or batch
// entry. The returned slices alias data.
func DecodeProposals(data []byte) ([][]byte, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformedEntry)
	}
	switch Kind(data[0]) {
	case KindProposal:
		return [][]byte{data[1:]}, nil
	case KindBatch:
		rest := data[1:]
		n, k := uvarint(rest)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad batch count", ErrMalformedEntry)
		}
		rest = rest[k:]
		// Each item takes at least one byte (its length), which bounds n
		// by the input and keeps a hostile count from allocating.
		if n == 0 || n > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: batch count %d for %d bytes", ErrMalformedEntry, n, len(rest))
		}
		items := make([][]byte, 0, n)
		for i := uint64(0); i < n; i++ {
			l, k := uvarint(rest)
			if k <= 0 || l > uint64(len(rest)-k) {
				return nil, fmt.Errorf("%w: batch item %d truncated", ErrMalformedEntry, i)
			}
			rest = rest[k:]
			items = append(items, rest[:l:l])
			rest = rest[l:]
		}
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: %d trailing bytes after batch", ErrMalformedEntry, len(rest))
		}
		return items, nil
	default:
		return nil, fmt.Errorf("%w: kind %d is not a proposal", ErrMalformedEntry, data[0])
	}
}

// uvarint reads a canonically encoded uvarint (binary.Uvarint also accepts
// overlong encodings, which would give one entry two spellings); k <= 0
// means malformed.
func uvarint(b []byte) (v uint64, k int) {
	v, k = binary.Uvarint(b)
	if k > 0 && k != uvarintLen(v) {
		return 0, -1
	}
	return v, k
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// Tag names a proposal, or a batch, in the log: the session of the
// runtime that made it (random per Start, so a restarted node never takes
// an old entry for its own) and a sequence number within that session.
type Tag struct {
	Session uint64
	Seq     uint64
}

// Group is the proposals of one session in a tagged entry.
type Group struct {
	Session uint64
	Seqs    []uint64
	Items   [][]byte
}

// Tagged is a decoded KindTagged entry: the batch's own tag (the leader
// that wrote it) and its proposals, grouped by proposer session.
type Tagged struct {
	Batch  Tag
	Groups []Group
}

// EncodeTagged returns the KindTagged entry for t:
//
//	kind(1) batch session(8, big-endian) uvarint(batch seq) uvarint(groups)
//	{ session(8) uvarint(count) { uvarint(seq) uvarint(len) bytes }*count }*groups
//
// Every group holds at least one proposal.
func EncodeTagged(t Tagged) []byte {
	size := 1 + 8 + 2*binary.MaxVarintLen64
	for _, g := range t.Groups {
		size += 8 + binary.MaxVarintLen64
		for _, it := range g.Items {
			size += 2*binary.MaxVarintLen64 + len(it)
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, byte(KindTagged))
	buf = binary.BigEndian.AppendUint64(buf, t.Batch.Session)
	buf = binary.AppendUvarint(buf, t.Batch.Seq)
	buf = binary.AppendUvarint(buf, uint64(len(t.Groups)))
	for _, g := range t.Groups {
		buf = binary.BigEndian.AppendUint64(buf, g.Session)
		buf = binary.AppendUvarint(buf, uint64(len(g.Items)))
		for i, it := range g.Items {
			buf = binary.AppendUvarint(buf, g.Seqs[i])
			buf = binary.AppendUvarint(buf, uint64(len(it)))
			buf = append(buf, it...)
		}
	}
	return buf
}

// DecodeTagged parses a KindTagged entry. The items alias data. Every
// count is bounded by the input's length, so hostile input cannot make it
// allocate without bound.
func DecodeTagged(data []byte) (Tagged, error) {
	var t Tagged
	bad := func(format string, args ...any) (Tagged, error) {
		return Tagged{}, fmt.Errorf("%w: tagged batch: %s", ErrMalformedEntry, fmt.Sprintf(format, args...))
	}
	if len(data) < 1+8 || Kind(data[0]) != KindTagged {
		return bad("too short or wrong kind")
	}
	t.Batch.Session = binary.BigEndian.Uint64(data[1:9])
	rest := data[9:]
	var k int
	if t.Batch.Seq, k = uvarint(rest); k <= 0 {
		return bad("batch seq")
	}
	rest = rest[k:]
	n, k := uvarint(rest)
	// A group takes at least 10 bytes (session, count, one item's seq and length).
	if k <= 0 || n == 0 || n > uint64(len(rest)-k)/10 {
		return bad("group count")
	}
	rest = rest[k:]
	t.Groups = make([]Group, 0, n)
	for range n {
		if len(rest) < 8 {
			return bad("truncated group")
		}
		g := Group{Session: binary.BigEndian.Uint64(rest)}
		rest = rest[8:]
		count, k := uvarint(rest)
		// An item takes at least 2 bytes (seq and length).
		if k <= 0 || count == 0 || count > uint64(len(rest)-k)/2 {
			return bad("item count")
		}
		rest = rest[k:]
		g.Seqs = make([]uint64, 0, count)
		g.Items = make([][]byte, 0, count)
		for range count {
			seq, k := uvarint(rest)
			if k <= 0 {
				return bad("item seq")
			}
			rest = rest[k:]
			l, k := uvarint(rest)
			if k <= 0 || l > uint64(len(rest)-k) {
				return bad("item truncated")
			}
			rest = rest[k:]
			g.Seqs = append(g.Seqs, seq)
			g.Items = append(g.Items, rest[:l:l])
			rest = rest[l:]
		}
		t.Groups = append(t.Groups, g)
	}
	if len(rest) != 0 {
		return bad("%d trailing bytes", len(rest))
	}
	return t, nil
}

// PeerMeta is what canoe replicates about a member beyond raft's ID and
// address: the ports of its other listeners, and whether it is a read
// replica.
type PeerMeta struct {
	ID         uint64 `json:"id"`
	Host       string `json:"host"`
	RaftPort   int    `json:"raft_port"`
	ConfigPort int    `json:"config_port,omitempty"`
	GossipPort int    `json:"gossip_port,omitempty"`
	// NonVoter marks a member that stays a non-voter until promoted
	// explicitly; the leader never promotes it on its own. Entries and
	// snapshots written before the field existed decode as false: a
	// non-voter to promote once it has caught up.
	NonVoter bool `json:"nonvoter,omitempty"`
}

// EncodePeerMeta returns the entry recording m.
func EncodePeerMeta(m PeerMeta) []byte {
	b, _ := json.Marshal(m) // a struct of strings, ints and bools always marshals
	return append([]byte{byte(KindPeerMeta)}, b...)
}

// EncodePeerForget returns the entry dropping the addresses of member id.
func EncodePeerForget(id uint64) []byte {
	return binary.AppendUvarint([]byte{byte(KindPeerForget)}, id)
}

func decodePeerMeta(data []byte) (PeerMeta, error) {
	var m PeerMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return PeerMeta{}, fmt.Errorf("%w: peer meta: %v", ErrMalformedEntry, err)
	}
	if m.ID == 0 {
		return PeerMeta{}, fmt.Errorf("%w: peer meta without id", ErrMalformedEntry)
	}
	return m, nil
}

func decodePeerForget(data []byte) (uint64, error) {
	id, k := uvarint(data)
	if k <= 0 || k != len(data) {
		return 0, fmt.Errorf("%w: peer forget", ErrMalformedEntry)
	}
	return id, nil
}
