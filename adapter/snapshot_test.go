package adapter

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// streamFSM is listFSM with streamed snapshots. It counts the calls of
// each snapshot method, and the []byte ones fail: the adapter must not use
// them for a StreamingFSM.
type streamFSM struct {
	listFSM
	streams, restores int
	writeErr          error // what the snapshot writer returns
	panicRestore      bool
}

func (f *streamFSM) Snapshot() ([]byte, error) {
	return nil, errors.New("Snapshot called on a StreamingFSM")
}
func (f *streamFSM) Restore([]byte) error { return errors.New("Restore called on a StreamingFSM") }

func (f *streamFSM) SnapshotStream() (func(io.Writer) error, error) {
	f.streams++
	items := slices.Clone(f.items) // captured now; written later
	return func(w io.Writer) error {
		if f.writeErr != nil {
			return f.writeErr
		}
		_, err := io.WriteString(w, strings.Join(items, ","))
		return err
	}, nil
}

func (f *streamFSM) RestoreStream(r io.Reader) error {
	f.restores++
	if f.panicRestore {
		panic("asked to panic")
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return f.listFSM.Restore(b)
}

// oldSnapshot was written by canoe before StreamingFSM existed (adapter
// TestSnapshotRoundTrip's state plus a configuration entry at index 4,
// term 2): format v1, whose user bytes ("a,b") run to the end.
const oldSnapshot = "CNS\x01\x04\x02n{\"peers\":[{\"id\":5,\"host\":\"h\",\"raft_port\":9,\"config_port\":10}],\"removed\":[6],\"servers\":[{\"id\":5,\"voter\":true}]}a,b"

// oldState applies what oldSnapshot holds.
func oldState(a *Adapter) {
	a.ApplyBatch([]*raft.Log{
		cmd(1, EncodeBatch([][]byte{[]byte("a"), []byte("b")})),
		cmd(2, EncodePeerMeta(PeerMeta{ID: 5, Host: "h", RaftPort: 9, ConfigPort: 10})),
		cmd(3, EncodePeerForget(6)),
		{Index: 4, Term: 2, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{
			Servers: []raft.Server{{Suffrage: raft.Voter, ID: "5", Address: "h:9"}}})},
	})
}

func persist(t *testing.T, a *Adapter) []byte {
	t.Helper()
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return sink.Bytes()
}

// TestSnapshotFormatUnchanged: both kinds of FSM write the format earlier
// releases wrote, byte for byte.
func TestSnapshotFormatUnchanged(t *testing.T) {
	for name, fsm := range map[string]FSM{"[]byte": &listFSM{}, "streaming": &streamFSM{}} {
		t.Run(name, func(t *testing.T) {
			a := New(Config{FSM: fsm})
			oldState(a)
			if got := persist(t, a); string(got) != oldSnapshot {
				t.Fatalf("snapshot\n got %q\nwant %q", got, oldSnapshot)
			}
		})
	}
}

// TestOldSnapshotRestores: a snapshot written before this release restores
// into either kind of FSM, with canoe's state.
func TestOldSnapshotRestores(t *testing.T) {
	for name, mk := range map[string]func() (FSM, *listFSM){
		"[]byte":    func() (FSM, *listFSM) { f := &listFSM{}; return f, f },
		"streaming": func() (FSM, *listFSM) { f := &streamFSM{}; return f, &f.listFSM },
	} {
		t.Run(name, func(t *testing.T) {
			fsm, list := mk()
			a := New(Config{FSM: fsm})
			if err := a.Restore(io.NopCloser(strings.NewReader(oldSnapshot))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if !slices.Equal(list.items, []string{"a", "b"}) {
				t.Fatalf("restored %q, want [a b]", list.items)
			}
			if a.AppliedIndex() != 4 || !a.Removed(6) {
				t.Fatalf("applied %d removed(6) %v, want 4 true", a.AppliedIndex(), a.Removed(6))
			}
			if m, ok := a.Peer(5); !ok || m.ConfigPort != 10 {
				t.Fatalf("peer 5: %+v %v", m, ok)
			}
		})
	}
}

// TestStreamingSnapshotCapturesAtSnapshot: the writer runs after later
// Applies and still writes the state captured by Snapshot, with its index.
func TestStreamingSnapshotCapturesAtSnapshot(t *testing.T) {
	fsm := &streamFSM{}
	a := New(Config{FSM: fsm})
	a.ApplyBatch([]*raft.Log{cmd(1, EncodeProposal([]byte("a")))})
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	a.ApplyBatch([]*raft.Log{cmd(2, EncodeProposal([]byte("later")))})
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	dst := &streamFSM{}
	b := New(Config{FSM: dst})
	if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dst.items, []string{"a"}) || b.AppliedIndex() != 1 {
		t.Fatalf("restored %q at %d, want [a] at 1", dst.items, b.AppliedIndex())
	}
	if fsm.streams != 1 || dst.restores != 1 {
		t.Fatalf("SnapshotStream called %d times, RestoreStream %d, want 1 and 1", fsm.streams, dst.restores)
	}
}

// TestStreamingFailures: a failing writer cancels the sink, and a failing
// or panicking RestoreStream is an error that leaves canoe's state alone.
func TestStreamingFailures(t *testing.T) {
	fsm := &streamFSM{writeErr: errors.New("disk on fire")}
	a := New(Config{FSM: fsm})
	a.ApplyBatch([]*raft.Log{cmd(1, EncodeProposal([]byte("a")))})
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err == nil || !strings.Contains(err.Error(), "disk on fire") || !sink.cancelled {
		t.Fatalf("Persist with a failing writer: err %v, cancelled %v; want the writer's error and a cancelled sink", err, sink.cancelled)
	}

	dst := &streamFSM{panicRestore: true}
	b := New(Config{FSM: dst})
	err = b.Restore(io.NopCloser(strings.NewReader(oldSnapshot)))
	if err == nil || !strings.Contains(err.Error(), "FSM.RestoreStream panicked") {
		t.Fatalf("Restore with a panicking RestoreStream: %v", err)
	}
	if b.AppliedIndex() != 0 || len(b.Peers()) != 0 {
		t.Fatalf("a failed restore moved canoe's state: applied %d, peers %v", b.AppliedIndex(), b.Peers())
	}
}

// TestRestoreReader: the v2 snapshot NewRestoreReader builds states its
// size up front, takes index and term at the first Read, and restores.
func TestRestoreReader(t *testing.T) {
	m := Membership{Peers: []PeerMeta{{ID: 9, Host: "x", RaftPort: 1}}, Servers: []Server{{ID: 9, Voter: true}}}
	calls := 0
	r, size, err := NewRestoreReader(m, strings.NewReader("p,q,r"), 5, func() (uint64, uint64) {
		calls++
		return 1 << 40, 7
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Fatal("position called before the first Read")
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size || calls != 1 {
		t.Fatalf("read %d bytes, size said %d; position called %d times", len(b), size, calls)
	}
	h, err := ReadSnapshotHeader(bufio.NewReader(bytes.NewReader(b)))
	if err != nil || h.Version != 2 || h.Index != 1<<40 || h.Term != 7 || h.Len != size-5 {
		t.Fatalf("header %+v, %v", h, err)
	}
	fsm := &streamFSM{}
	a := New(Config{FSM: fsm})
	if err := a.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fsm.items, []string{"p", "q", "r"}) || a.AppliedIndex() != 1<<40 {
		t.Fatalf("restored %q at %d", fsm.items, a.AppliedIndex())
	}
	if got, ok := a.Peer(9); !ok || got.Host != "x" {
		t.Fatalf("membership not restored: %+v", a.Membership())
	}
}

func TestReadSnapshotHeaderRejects(t *testing.T) {
	for name, data := range map[string]string{
		"empty":               "",
		"unknown version":     "CNS\x03",
		"v2 truncated":        "CNS\x02\x00\x00",
		"membership too long": "CNS\x01\x01\x01\xff\xff\xff\xff\x0f",
		"membership not json": "CNS\x01\x01\x01\x02{x",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadSnapshotHeader(bufio.NewReader(strings.NewReader(data))); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("got %v, want ErrBadSnapshot", err)
			}
		})
	}
}
