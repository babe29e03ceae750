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
