package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/canoe"
)

// kvStore is the state machine of the read cells and the soak: a map from
// 8-byte keys to values, each with the number of times it was set. An
// entry is the key (8 bytes, big endian) followed by the value; shorter
// entries leave the map alone. Reads may run concurrently with Apply.
type kvStore struct {
	mu sync.RWMutex // guards m
	m  map[uint64]kvValue
}

type kvValue struct {
	version uint64
	data    []byte
}

// kvEntry encodes setting key to value.
func kvEntry(key uint64, value []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), key), value...)
}

// set applies one entry and returns the key's new version (0 for an entry
// that is not a set).
func (s *kvStore) set(data []byte) uint64 {
	if len(data) < 8 {
		return 0
	}
	key := binary.BigEndian.Uint64(data)
	v := bytes.Clone(data[8:]) // the store keeps it; the caller's buffer may be reused
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uint64]kvValue{}
	}
	ver := s.m[key].version + 1
	s.m[key] = kvValue{version: ver, data: v}
	return ver
}

// get returns key's value (nil if unset). The caller must not change it.
func (s *kvStore) get(key uint64) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[key].data
}

// snapshot encodes the map: per key, key, version, value length (8, 8 and
// 4 bytes) and the value.
func (s *kvStore) snapshot() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, v := range s.m {
		n += 20 + len(v.data)
	}
	b := make([]byte, 0, n)
	for k, v := range s.m {
		b = binary.BigEndian.AppendUint64(b, k)
		b = binary.BigEndian.AppendUint64(b, v.version)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.data)))
		b = append(b, v.data...)
	}
	return b
}

// restore replaces the map with a snapshot's.
func (s *kvStore) restore(b []byte) error {
	m := map[uint64]kvValue{}
	for len(b) > 0 {
		if len(b) < 20 {
			return errors.New("kv snapshot: truncated header")
		}
		k, ver, n := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), int(binary.BigEndian.Uint32(b[16:]))
		b = b[20:]
		if len(b) < n {
			return fmt.Errorf("kv snapshot: value of key %d truncated", k)
		}
		m[k] = kvValue{version: ver, data: bytes.Clone(b[:n])}
		b = b[n:]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = m
	return nil
}

// canoeKV adapts kvStore to canoe.FSM.
type canoeKV struct{ kvStore }

func (f *canoeKV) Apply(d canoe.LogData) error           { f.set(d); return nil }
func (f *canoeKV) Snapshot() (canoe.SnapshotData, error) { return f.snapshot(), nil }
func (f *canoeKV) Restore(s canoe.SnapshotData) error    { return f.restore(s) }

// canoeKVResult is canoeKV as a canoe.ResultFSM: a set answers the key's
// new version (8 bytes, big endian).
type canoeKVResult struct{ canoeKV }

func (f *canoeKVResult) ApplyResult(d canoe.LogData) ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, f.set(d)), nil
}

// raftKV adapts kvStore to raft.FSM.
type raftKV struct{ kvStore }

func (f *raftKV) Apply(l *raft.Log) any { return f.set(l.Data) }

func (f *raftKV) Snapshot() (raft.FSMSnapshot, error) { return blobSnap(f.snapshot()), nil }

func (f *raftKV) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	return f.restore(b)
}
