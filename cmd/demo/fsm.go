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
	"sync"
	"sync/atomic"

	"github.com/canoe-raft/canoe/canoe"
)

// The replicated key-value store: a map guarded by a mutex, changed only by
// committed commands.
//
// Command encoding (what Propose carries), format version 1:
//
//	byte 0      header: version<<4 | op  (0x11 put, 0x12 delete)
//	uvarint     key length (1..maxKeyLen)
//	key bytes
//	value bytes (put only: the rest of the command; delete has none)
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
// first, known from the captured map. A future version gets a new
// header/version byte; decoders reject versions they do not know instead
// of guessing.

const (
	cmdVersion  = 1
	opPut       = 1
	opDelete    = 2
	snapVersion = 1
	maxKeyLen   = 4096
)

var snapMagic = []byte("CNKV")

var (
	errMalformed = errors.New("malformed command")
	errBadSnap   = errors.New("malformed snapshot")
)

// command is one decoded change to the store.
type command struct {
	op    byte
	key   string
	value []byte
}

// encodePut returns the command that sets key to value.
func encodePut(key string, value []byte) []byte {
	return encodeCommand(opPut, key, value)
}

// encodeDelete returns the command that removes key.
func encodeDelete(key string) []byte {
	return encodeCommand(opDelete, key, nil)
}

func encodeCommand(op byte, key string, value []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+len(value))
	b = append(b, cmdVersion<<4|op)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// decodeCommand parses a command; it never panics on bad input.
func decodeCommand(b []byte) (command, error) {
	if len(b) == 0 {
		return command{}, fmt.Errorf("%w: empty", errMalformed)
	}
	if v := b[0] >> 4; v != cmdVersion {
		return command{}, fmt.Errorf("%w: format version %d, this build knows %d", errMalformed, v, cmdVersion)
	}
	op := b[0] & 0x0f
	if op != opPut && op != opDelete {
		return command{}, fmt.Errorf("%w: unknown op %d", errMalformed, op)
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
		c.value = bytes.Clone(rest)
		if c.value == nil {
			c.value = []byte{}
		}
	case opDelete:
		if len(rest) != 0 {
			return command{}, fmt.Errorf("%w: %d trailing bytes after delete", errMalformed, len(rest))
		}
	}
	return c, nil
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
)

var storeGen atomic.Uint64

func newKVStore() *kvStore {
	return &kvStore{gen: storeGen.Add(1), data: map[string][]byte{}}
}

// Apply applies one committed command. A malformed command changes nothing
// and returns an error (to the proposer); it never panics.
func (s *kvStore) Apply(data canoe.LogData) error {
	c, err := decodeCommand(data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.data[c.key]
	if had {
		s.bytes -= int64(len(c.key) + len(old))
	}
	switch c.op {
	case opPut:
		s.data[c.key] = c.value
		s.bytes += int64(len(c.key) + len(c.value))
		s.recent.touch(c.key)
	case opDelete:
		delete(s.data, c.key)
		s.recent.remove(c.key)
	}
	s.writes++
	s.version++
	return nil
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

// encodeSnapshot returns the snapshot of m.
func encodeSnapshot(m map[string][]byte) []byte {
	var b bytes.Buffer
	_ = writeSnapshot(&b, m) // a bytes.Buffer does not fail
	return b.Bytes()
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

// decodeSnapshot decodes the snapshot b.
func decodeSnapshot(b []byte) (map[string][]byte, error) {
	return readSnapshot(bytes.NewReader(b))
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
		out := b.Bytes()
		if out == nil {
			out = []byte{}
		}
		return out, nil
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
