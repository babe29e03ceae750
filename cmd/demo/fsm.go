package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/canoe-raft/canoe/canoe"
)

// The replicated key-value store: a map guarded by a mutex, changed only by
// committed commands.
//
// Command encoding (what Propose carries):
//
//	byte 0      header: version<<4 | op
//	uvarint     key length (1..maxKeyLen)
//	key bytes
//	then, by op:
//	  put     (0x11)  the value: the rest of the command
//	  delete  (0x12)  nothing
//	  cas     (0x23)  uvarint length of the expected value, that value,
//	                  then the new value: the rest of the command
//	  incr    (0x24)  varint (zigzag) delta, nothing after
//
// The version in the header is the format version that introduced the op:
// version 1 has put and delete, version 2 adds cas and incr, the commands
// that answer a value (canoe.ResultFSM). Each op is written with its own
// version, so a put stays readable by builds that know only version 1, and
// a build that knows only version 1 refuses a cas with "format version 2"
// instead of guessing. Decoders reject versions and ops they do not know;
// every command ever written stays readable (the log of a running cluster
// holds old entries).
//
// Results (ApplyResult's value): nil for put and delete; for incr the new
// value in decimal, as stored; for cas one flags byte (bit 0: the key
// existed, bit 1: the value was swapped) followed by the value found.
//
// Snapshot encoding, format version 1 (keys sorted, so equal stores give
// equal snapshots):
//
//	"CNKV" magic, byte version (1)
//	uvarint     number of pairs
//	per pair:   uvarint key length, key, uvarint value length, value
//
// and nothing after. The store streams its snapshots (canoe.StreamingFSM)
// in this format, which it wrote as one []byte before: the count comes
// first, known from the captured map. Counters are values like any other
// (decimal text), so cas and incr changed nothing here. A future version
// gets a new version byte; decoders reject versions they do not know
// instead of guessing.

const (
	opPut    = 1 // since format version 1
	opDelete = 2 // since format version 1
	opCAS    = 3 // since format version 2
	opIncr   = 4 // since format version 2

	snapVersion = 1
	maxKeyLen   = 4096
)

// opVersion is the command format version that introduced each op, and
// the version the op is written with.
var opVersion = map[byte]byte{opPut: 1, opDelete: 1, opCAS: 2, opIncr: 2}

// maxCmdVersion is the newest command format this build reads.
const maxCmdVersion = 2

// Flags of a cas result's first byte.
const (
	casFound   = 1 << 0
	casSwapped = 1 << 1
)

var snapMagic = []byte("CNKV")

var (
	errMalformed = errors.New("malformed command")
	errBadSnap   = errors.New("malformed snapshot")
	// errNotInteger and errOverflow are incr's errors: the store changes
	// nothing then.
	errNotInteger = errors.New("not an integer")
	errOverflow   = errors.New("integer overflow")
)

// command is one decoded change to the store.
type command struct {
	op    byte
	key   string
	value []byte // put: the value; cas: the new value
	old   []byte // cas: the value expected
	delta int64  // incr
}

// encodePut returns the command that sets key to value.
func encodePut(key string, value []byte) []byte {
	return command{op: opPut, key: key, value: value}.encode()
}

// encodeDelete returns the command that removes key.
func encodeDelete(key string) []byte {
	return command{op: opDelete, key: key}.encode()
}

// encodeCAS returns the command that sets key to value if its value is
// old.
func encodeCAS(key string, old, value []byte) []byte {
	return command{op: opCAS, key: key, old: old, value: value}.encode()
}

// encodeIncr returns the command that adds delta to the integer value of
// key (a missing key counts as 0).
func encodeIncr(key string, delta int64) []byte {
	return command{op: opIncr, key: key, delta: delta}.encode()
}

// encode returns the command's encoding, in the format version of its op.
func (c command) encode() []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(c.key)+len(c.old)+len(c.value))
	b = append(b, opVersion[c.op]<<4|c.op)
	b = binary.AppendUvarint(b, uint64(len(c.key)))
	b = append(b, c.key...)
	switch c.op {
	case opPut:
		b = append(b, c.value...)
	case opCAS:
		b = binary.AppendUvarint(b, uint64(len(c.old)))
		b = append(b, c.old...)
		b = append(b, c.value...)
	case opIncr:
		b = binary.AppendVarint(b, c.delta)
	}
	return b
}

// decodeCommand parses a command of any format version this build knows;
// it never panics on bad input.
func decodeCommand(b []byte) (command, error) {
	if len(b) == 0 {
		return command{}, fmt.Errorf("%w: empty", errMalformed)
	}
	v, op := b[0]>>4, b[0]&0x0f
	if v == 0 || v > maxCmdVersion {
		return command{}, fmt.Errorf("%w: format version %d, this build knows 1 to %d", errMalformed, v, maxCmdVersion)
	}
	if since, ok := opVersion[op]; !ok || since != v {
		return command{}, fmt.Errorf("%w: unknown op %d in format version %d", errMalformed, op, v)
	}
	n, w := binary.Uvarint(b[1:])
	if w <= 0 {
		return command{}, fmt.Errorf("%w: bad key length", errMalformed)
	}
	rest := b[1+w:]
	if n == 0 || n > maxKeyLen || n > uint64(len(rest)) {
		return command{}, fmt.Errorf("%w: key length %d (have %d bytes, limit %d)", errMalformed, n, len(rest), maxKeyLen)
	}
	c := command{op: op, key: string(rest[:n])}
	switch rest = rest[n:]; op {
	case opPut:
		c.value = nonNil(bytes.Clone(rest))
	case opDelete:
		if len(rest) != 0 {
			return command{}, fmt.Errorf("%w: %d trailing bytes after delete", errMalformed, len(rest))
		}
	case opCAS:
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return command{}, fmt.Errorf("%w: bad expected-value length in cas", errMalformed)
		}
		rest = rest[w:]
		c.old = nonNil(bytes.Clone(rest[:n]))
		c.value = nonNil(bytes.Clone(rest[n:]))
	case opIncr:
		d, w := binary.Varint(rest)
		if w <= 0 {
			return command{}, fmt.Errorf("%w: bad delta in incr", errMalformed)
		}
		if len(rest) != w {
			return command{}, fmt.Errorf("%w: %d trailing bytes after incr", errMalformed, len(rest)-w)
		}
		c.delta = d
	}
	return c, nil
}

// nonNil returns b, or an empty slice for nil: a stored value is never nil.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// casResult is what a cas answered.
type casResult struct {
	Found   bool   // the key existed
	Swapped bool   // its value was the expected one, and is now the new one
	Value   []byte // the value found (nil if none)
}

// decodeCASResult parses a cas command's result.
func decodeCASResult(b []byte) (casResult, error) {
	if len(b) == 0 || b[0]&^(casFound|casSwapped) != 0 {
		return casResult{}, fmt.Errorf("malformed cas result %q", b)
	}
	r := casResult{Found: b[0]&casFound != 0, Swapped: b[0]&casSwapped != 0}
	if r.Found {
		r.Value = nonNil(b[1:])
	} else if len(b) > 1 {
		return casResult{}, fmt.Errorf("malformed cas result: a value for a missing key")
	}
	return r, nil
}

// kvStore is the demo's canoe.FSM. Beside the data it keeps, for the
// dashboard, counters and the keys changed last; these are this store's
// own (a restarted node's store starts them again) and are not replicated.
type kvStore struct {
	gen uint64 // tells this store from the stores of earlier starts

	mu      sync.RWMutex // guards data, bytes, writes, version, recent
	data    map[string][]byte
	bytes   int64      // sum of the lengths of every key and value
	writes  uint64     // commands applied since this store was created
	version uint64     // bumped by every change, Restore included
	recent  recentKeys // the keys changed last
}

var (
	_ canoe.FSM          = (*kvStore)(nil)
	_ canoe.StreamingFSM = (*kvStore)(nil)
	_ canoe.ResultFSM    = (*kvStore)(nil)
)

var storeGen atomic.Uint64

func newKVStore() *kvStore {
	return &kvStore{gen: storeGen.Add(1), data: map[string][]byte{}}
}

// Apply applies one committed command, dropping its result. canoe calls
// ApplyResult instead; Apply is for the FSM interface.
func (s *kvStore) Apply(data canoe.LogData) error {
	_, err := s.ApplyResult(data)
	return err
}

// ApplyResult applies one committed command and returns its result (see
// the command encoding above). A malformed command, and an incr of a value
// that is not a decimal int64 or that would overflow, change nothing and
// return an error (to the proposer); it never panics. Like every Apply it
// is deterministic: each node returns the same result for the same entry.
func (s *kvStore) ApplyResult(data canoe.LogData) ([]byte, error) {
	c, err := decodeCommand(data)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.data[c.key]
	var result []byte
	switch c.op {
	case opPut:
		s.set(c.key, c.value)
	case opDelete:
		if had {
			s.bytes -= int64(len(c.key) + len(old))
			delete(s.data, c.key)
		}
		s.recent.remove(c.key)
	case opCAS:
		flags := byte(0)
		if had {
			flags |= casFound
		}
		if had && bytes.Equal(old, c.old) {
			flags |= casSwapped
			s.set(c.key, c.value)
		}
		result = append([]byte{flags}, old...)
	case opIncr:
		n := int64(0)
		if had {
			if n, err = strconv.ParseInt(string(old), 10, 64); err != nil {
				return nil, fmt.Errorf("incr %q: its value %s is %w (a decimal int64)", c.key, quoteValue(old), errNotInteger)
			}
		}
		sum := n + c.delta
		if (c.delta > 0 && sum < n) || (c.delta < 0 && sum > n) {
			return nil, fmt.Errorf("incr %q: %d + %d is outside int64: %w", c.key, n, c.delta, errOverflow)
		}
		result = strconv.AppendInt(nil, sum, 10)
		s.set(c.key, result)
	}
	s.writes++
	s.version++
	return result, nil
}

// set stores value under key. s.mu must be held.
func (s *kvStore) set(key string, value []byte) {
	if old, had := s.data[key]; had {
		s.bytes -= int64(len(key) + len(old))
	}
	s.data[key] = value
	s.bytes += int64(len(key) + len(value))
	s.recent.touch(key)
}

// quoteValue quotes a value for an error message, cut to a readable
// length.
func quoteValue(v []byte) string {
	const limit = 64
	if len(v) > limit {
		return strconv.Quote(string(v[:limit])) + "..."
	}
	return strconv.Quote(string(v))
}

// Snapshot encodes the whole store into one []byte. canoe streams instead
// (SnapshotStream); this is for callers that want the bytes.
func (s *kvStore) Snapshot() (canoe.SnapshotData, error) {
	write, err := s.SnapshotStream()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// SnapshotStream captures the store and returns the function that writes
// it. It copies the map's references to keys and values (values are never
// modified in place), not the bytes, so Apply waits only for that copy;
// sorting and writing happen in the returned function.
func (s *kvStore) SnapshotStream() (func(io.Writer) error, error) {
	s.mu.RLock()
	m := make(map[string][]byte, len(s.data))
	for k, v := range s.data {
		m[k] = v
	}
	s.mu.RUnlock()
	return func(w io.Writer) error { return writeSnapshot(w, m) }, nil
}

// Restore replaces the store with a snapshot's content. A malformed
// snapshot leaves the store unchanged.
func (s *kvStore) Restore(snap canoe.SnapshotData) error {
	return s.RestoreStream(bytes.NewReader(snap))
}

// RestoreStream replaces the store with the content of the snapshot r
// holds, read as a stream. A malformed snapshot leaves the store
// unchanged. The recent keys become the snapshot's first keys in key
// order: a snapshot does not say which keys changed last.
func (s *kvStore) RestoreStream(r io.Reader) error {
	m, err := readSnapshot(r)
	if err != nil {
		return err
	}
	var size int64
	keys := make([]string, 0, len(m))
	for k, v := range m {
		size += int64(len(k) + len(v))
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.bytes = m, size
	s.recent = recentKeys{}
	for i := len(keys[:min(len(keys), maxRecentKeys)]) - 1; i >= 0; i-- {
		s.recent.touch(keys[i])
	}
	s.version++
	return nil
}

// Get returns the value of key and whether it exists.
func (s *kvStore) Get(key string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[key]
	return v, ok // values are never modified in place
}

// All returns a copy of the store.
func (s *kvStore) All() map[string][]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string][]byte, len(s.data))
	for k, v := range s.data {
		out[k] = v
	}
	return out
}

// Writes returns the number of commands this store has applied.
func (s *kvStore) Writes() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.writes
}

// writeSnapshot writes the snapshot of m to w.
func writeSnapshot(w io.Writer, m map[string][]byte) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	bw := bufio.NewWriterSize(w, 64<<10)
	var hdr []byte
	hdr = append(hdr, snapMagic...)
	hdr = append(hdr, snapVersion)
	hdr = binary.AppendUvarint(hdr, uint64(len(keys)))
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	var lb [binary.MaxVarintLen64]byte
	for _, k := range keys {
		v := m[k]
		bw.Write(binary.AppendUvarint(lb[:0], uint64(len(k))))
		bw.WriteString(k)
		bw.Write(binary.AppendUvarint(lb[:0], uint64(len(v))))
		if _, err := bw.Write(v); err != nil {
			return err // a bufio.Writer keeps its first error
		}
	}
	return bw.Flush()
}

// readSnapshot reads a snapshot from r, to its end. It never panics, and
// allocates no more than the input holds: lengths and counts are not
// trusted until the bytes they announce arrive.
func readSnapshot(r io.Reader) (map[string][]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	hdr := make([]byte, len(snapMagic)+1)
	if _, err := io.ReadFull(br, hdr); err != nil || !bytes.Equal(hdr[:len(snapMagic)], snapMagic) {
		return nil, fmt.Errorf("%w: no %q header", errBadSnap, snapMagic)
	}
	if v := hdr[len(snapMagic)]; v != snapVersion {
		return nil, fmt.Errorf("%w: format version %d, this build knows %d", errBadSnap, v, snapVersion)
	}
	count, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("%w: bad pair count", errBadSnap)
	}
	next := func(what string, limit uint64) ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil || n > limit {
			return nil, fmt.Errorf("%w: bad %s length", errBadSnap, what)
		}
		var b bytes.Buffer
		if k, err := io.CopyN(&b, br, int64(n)); err != nil {
			return nil, fmt.Errorf("%w: %s truncated (%d of %d bytes)", errBadSnap, what, k, n)
		}
		return nonNil(b.Bytes()), nil
	}
	m := make(map[string][]byte, min(count, 1<<16))
	for i := uint64(0); i < count; i++ {
		k, err := next("key", maxKeyLen)
		if err != nil {
			return nil, err
		}
		v, err := next("value", math.MaxInt64)
		if err != nil {
			return nil, err
		}
		if _, dup := m[string(k)]; dup {
			return nil, fmt.Errorf("%w: duplicate key %q", errBadSnap, k)
		}
		m[string(k)] = v
	}
	if n, _ := io.Copy(io.Discard, br); n != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadSnap, n)
	}
	return m, nil
}
