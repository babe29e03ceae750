package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/canoe-raft/canoe/canoe"
)

// Command encoding: one byte of opcode, then the key and the value, each a
// uvarint length and the bytes. It is what the node proposes and what every
// node's FSM decodes from the replicated log.
const opAppend byte = 1

// Limits on a command's parts; the HTTP API enforces them before proposing.
const (
	maxKeyLen = 256
	maxValLen = 1024
)

var errBadCommand = errors.New("kv: malformed command")

// encodeAppend encodes "append val to key's list".
func encodeAppend(key, val string) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(key)+len(val))
	b = append(b, opAppend)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(val)))
	b = append(b, val...)
	return b
}

// decodeCommand decodes a command. It never panics, whatever b holds, and
// accepts exactly what encodeAppend produces for a key and value within the
// limits (overlong lengths and trailing bytes are errors).
func decodeCommand(b []byte) (key, val string, err error) {
	if len(b) == 0 || b[0] != opAppend {
		return "", "", fmt.Errorf("%w: unknown opcode", errBadCommand)
	}
	rest := b[1:]
	field := func(limit int) (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(limit) || n > uint64(len(rest)-k) {
			return "", false
		}
		if k != len(binary.AppendUvarint(nil, n)) {
			return "", false // overlong varint: not what encodeAppend writes
		}
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s, true
	}
	key, ok := field(maxKeyLen)
	if !ok || key == "" {
		return "", "", fmt.Errorf("%w: bad key", errBadCommand)
	}
	val, ok = field(maxValLen)
	if !ok {
		return "", "", fmt.Errorf("%w: bad value", errBadCommand)
	}
	if len(rest) != 0 {
		return "", "", fmt.Errorf("%w: %d trailing bytes", errBadCommand, len(rest))
	}
	return key, val, nil
}

// kvState is the replicated state: every key's list of appended values,
// and how many commands were applied (malformed ones included).
type kvState struct {
	Lists    map[string][]string `json:"lists"`
	Commands uint64              `json:"commands"`
}

// kvFSM is a canoe.FSM where each write appends a value to a key's list,
// so a read shows the full history of a key. Its snapshots stream
// (canoe.StreamingFSM), in the JSON of kvState that it wrote as one []byte
// before.
type kvFSM struct {
	mu sync.Mutex // guards st
	st kvState
}

func newKVFSM() *kvFSM { return &kvFSM{st: kvState{Lists: map[string][]string{}}} }

var (
	_ canoe.FSM          = (*kvFSM)(nil)
	_ canoe.StreamingFSM = (*kvFSM)(nil)
)

func (f *kvFSM) Apply(d canoe.LogData) error {
	key, val, err := decodeCommand(d)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Commands++
	if err != nil {
		return err
	}
	f.st.Lists[key] = append(f.st.Lists[key], val)
	return nil
}

func (f *kvFSM) Snapshot() (canoe.SnapshotData, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return encodeState(f.st)
}

func (f *kvFSM) Restore(d canoe.SnapshotData) error {
	return f.RestoreStream(bytes.NewReader(d))
}

// SnapshotStream captures the lists (their slice headers: Apply only
// appends, and an append never changes what a shorter header sees) and
// returns the function that writes them as encodeState would.
func (f *kvFSM) SnapshotStream() (func(io.Writer) error, error) {
	f.mu.Lock()
	st := kvState{Lists: make(map[string][]string, len(f.st.Lists)), Commands: f.st.Commands}
	for k, l := range f.st.Lists {
		st.Lists[k] = l[:len(l):len(l)]
	}
	f.mu.Unlock()
	return func(w io.Writer) error { return writeState(w, st) }, nil
}

func (f *kvFSM) RestoreStream(r io.Reader) error {
	st, err := readState(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	return nil
}

// get returns a copy of key's list.
func (f *kvFSM) get(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.st.Lists[key]...)
}

// digest returns the number of commands applied, the number of keys, and a
// hash of the whole state (equal states hash equally on every node).
func (f *kvFSM) digest() (commands uint64, keys int, hash string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := encodeState(f.st)
	sum := sha256.Sum256(b)
	return f.st.Commands, len(f.st.Lists), hex.EncodeToString(sum[:])
}

// encodeState is deterministic: encoding/json sorts map keys.
func encodeState(st kvState) ([]byte, error) { return json.Marshal(st) }

// writeState writes what encodeState returns, a key at a time.
func writeState(w io.Writer, st kvState) error {
	keys := make([]string, 0, len(st.Lists))
	for k := range st.Lists {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	bw := bufio.NewWriter(w)
	bw.WriteString(`{"lists":{`)
	for i, k := range keys {
		kb, err := json.Marshal(k)
		if err != nil {
			return err
		}
		lb, err := json.Marshal(st.Lists[k])
		if err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(kb)
		bw.WriteByte(':')
		bw.Write(lb)
	}
	fmt.Fprintf(bw, `},"commands":%d}`, st.Commands)
	return bw.Flush()
}

// readState reads a snapshot to its end and checks what Apply would
// guarantee.
func readState(r io.Reader) (kvState, error) {
	var st kvState
	dec := json.NewDecoder(r)
	if err := dec.Decode(&st); err != nil {
		return kvState{}, fmt.Errorf("kv: snapshot: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return kvState{}, errors.New("kv: snapshot: data after the state")
	}
	if st.Lists == nil {
		st.Lists = map[string][]string{}
	}
	var n uint64
	for k, l := range st.Lists {
		if k == "" || len(k) > maxKeyLen {
			return kvState{}, fmt.Errorf("kv: snapshot: bad key %q", k)
		}
		n += uint64(len(l))
	}
	if n > st.Commands {
		return kvState{}, fmt.Errorf("kv: snapshot: %d values but only %d commands", n, st.Commands)
	}
	return st, nil
}
