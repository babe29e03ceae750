package adapter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/observer"
)

// listFSM appends every applied proposal; "fail" fails, "panic" panics.
type listFSM struct{ items []string }

func (f *listFSM) Apply(d []byte) error {
	switch string(d) {
	case "fail":
		return errors.New("asked to fail")
	case "panic":
		panic("asked to panic")
	}
	f.items = append(f.items, string(d))
	return nil
}

func (f *listFSM) Snapshot() ([]byte, error) { return []byte(strings.Join(f.items, ",")), nil }

func (f *listFSM) Restore(d []byte) error {
	f.items = nil
	if len(d) > 0 {
		f.items = strings.Split(string(d), ",")
	}
	return nil
}

func cmd(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func TestEntryRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		items [][]byte
	}{
		{"single", [][]byte{[]byte("a")}},
		{"single empty", [][]byte{{}}},
		{"batch", [][]byte{[]byte("a"), []byte("bb"), {}, bytes.Repeat([]byte("c"), 300)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeProposals(EncodeBatch(tt.items))
			if err != nil {
				t.Fatalf("DecodeProposals: %v", err)
			}
			if !slices.EqualFunc(got, tt.items, bytes.Equal) {
				t.Fatalf("got %q, want %q", got, tt.items)
			}
		})
	}
}

func TestDecodeProposalsRejectsMalformed(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"unknown kind", []byte{9, 1, 2}},
		{"meta kind", EncodePeerMeta(PeerMeta{ID: 1})},
		{"batch without count", []byte{byte(KindBatch)}},
		{"batch zero count", []byte{byte(KindBatch), 0}},
		{"batch count too large", []byte{byte(KindBatch), 200, 1}},
		{"batch item truncated", []byte{byte(KindBatch), 2, 5, 'a'}},
		{"batch trailing bytes", append(EncodeBatch([][]byte{[]byte("a"), []byte("b")}), 7)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeProposals(tt.data); !errors.Is(err, ErrMalformedEntry) {
				t.Fatalf("got %v, want ErrMalformedEntry", err)
			}
		})
	}
}

func FuzzDecodeProposals(f *testing.F) {
	f.Add(EncodeProposal([]byte("x")))
	f.Add(EncodeBatch([][]byte{[]byte("a"), []byte("bc")}))
	f.Add([]byte{byte(KindBatch), 255, 255, 255, 255, 15})
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := DecodeProposals(data)
		if err != nil {
			return
		}
		if len(items) > 1 && !bytes.Equal(EncodeBatch(items), data) {
			t.Fatalf("accepted batch does not re-encode to its input")
		}
	})
}

func TestApplyBatchResultsPerProposal(t *testing.T) {
	fsm := &listFSM{}
	var reg observer.Registry
	ch := make(chan observer.Observation, 8)
	reg.Register(observer.New(ch, nil))
	a := New(Config{FSM: fsm, Notifier: &reg})
	out := a.ApplyBatch([]*raft.Log{
		cmd(1, EncodeBatch([][]byte{[]byte("a"), []byte("fail"), []byte("panic"), []byte("b")})),
		cmd(2, []byte{42}),
		cmd(3, EncodePeerMeta(PeerMeta{ID: 7, Host: "h", RaftPort: 1})),
	})
	res := out[0].(*Result)
	if res.Index != 1 || len(res.Errs) != 4 || res.Errs[0] != nil || res.Errs[3] != nil {
		t.Fatalf("batch result %+v, want 4 results with errors only for items 1 and 2", res)
	}
	if res.Errs[1] == nil || res.Errs[1].Error() != "asked to fail" {
		t.Fatalf("item 1: got %v, want the FSM's own error", res.Errs[1])
	}
	var pe *PanicError
	if !errors.As(res.Errs[2], &pe) || !strings.Contains(fmt.Sprint(res.Errs[2]), "panic") {
		t.Fatalf("item 2: got %v, want a recovered panic", res.Errs[2])
	}
	if bad := out[1].(*Result); len(bad.Errs) != 1 || !errors.Is(bad.Errs[0], ErrMalformedEntry) {
		t.Fatalf("unknown kind: got %+v, want ErrMalformedEntry", bad)
	}
	if got := fsm.items; !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("FSM holds %q, want [a b]", got)
	}
	if m, ok := a.Peer(7); !ok || m.Host != "h" {
		t.Fatalf("peer meta not recorded: %+v %v", m, ok)
	}
	if got := a.AppliedIndex(); got != 3 {
		t.Fatalf("AppliedIndex %d, want 3", got)
	}
	if o := <-ch; o != (observer.EntryApplied{Index: 1, Count: 4}) {
		t.Fatalf("observation %#v, want EntryApplied{1, 4}", o)
	}
}

func TestRemovalIsRecordedUntilAddedAgain(t *testing.T) {
	a := New(Config{FSM: &listFSM{}})
	a.ApplyBatch([]*raft.Log{cmd(1, EncodePeerMeta(PeerMeta{ID: 4, Host: "h", RaftPort: 1})), cmd(2, EncodePeerForget(4))})
	if _, ok := a.Peer(4); ok || !a.Removed(4) {
		t.Fatalf("after forget: meta kept %v, removed %v; want no meta and removed", ok, a.Removed(4))
	}
	a.ApplyBatch([]*raft.Log{cmd(3, EncodePeerMeta(PeerMeta{ID: 4, Host: "h", RaftPort: 1}))})
	if a.Removed(4) {
		t.Fatal("a member added again is still marked removed")
	}
}

func TestReplayOfAppliedEntriesIsSkipped(t *testing.T) {
	fsm := &listFSM{}
	a := New(Config{FSM: fsm})
	a.ApplyBatch([]*raft.Log{cmd(1, EncodeProposal([]byte("a"))), cmd(2, EncodeProposal([]byte("b")))})
	// Raft restarted in the same process replays from index 1.
	a.ApplyBatch([]*raft.Log{cmd(1, EncodeProposal([]byte("a")))})
	a.ApplyBatch([]*raft.Log{cmd(2, EncodeProposal([]byte("b"))), cmd(3, EncodeProposal([]byte("c")))})
	if got := fsm.items; !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("FSM holds %q, want [a b c]", got)
	}
	if got := a.AppliedIndex(); got != 3 {
		t.Fatalf("AppliedIndex %d, want 3", got)
	}
}

func TestConfigurationObservations(t *testing.T) {
	var reg observer.Registry
	ch := make(chan observer.Observation, 8)
	reg.Register(observer.New(ch, nil))
	a := New(Config{FSM: &listFSM{}, Notifier: &reg})
	conf := func(index uint64, servers ...raft.Server) *raft.Log {
		return &raft.Log{Index: index, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{Servers: servers})}
	}
	s := func(id uint64, voter bool) raft.Server {
		suffrage := raft.Nonvoter
		if voter {
			suffrage = raft.Voter
		}
		return raft.Server{ID: ServerID(id), Address: "x:1", Suffrage: suffrage}
	}
	a.ApplyBatch([]*raft.Log{conf(1, s(1, true))})
	a.ApplyBatch([]*raft.Log{conf(2, s(1, true), s(2, false))})
	a.ApplyBatch([]*raft.Log{conf(3, s(1, true), s(2, true))})
	a.ApplyBatch([]*raft.Log{conf(4, s(2, true))})
	want := []observer.Observation{
		observer.PeerAdded{ID: 1, Voter: true},
		observer.PeerAdded{ID: 2, Voter: false},
		observer.PeerPromoted{ID: 2},
		observer.PeerRemoved{ID: 1},
	}
	for i, w := range want {
		if got := <-ch; got != w {
			t.Fatalf("observation %d: got %#v, want %#v", i, got, w)
		}
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestSnapshotRoundTrip(t *testing.T) {
	src := New(Config{FSM: &listFSM{}})
	src.ApplyBatch([]*raft.Log{
		cmd(1, EncodeBatch([][]byte{[]byte("a"), []byte("b")})),
		cmd(2, EncodePeerMeta(PeerMeta{ID: 5, Host: "h", RaftPort: 9, ConfigPort: 10})),
		cmd(3, EncodePeerForget(6)),
	})
	snapshot := persist(t, src)
	dstFSM := &listFSM{items: []string{"stale"}}
	dst := New(Config{FSM: dstFSM})
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snapshot))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !slices.Equal(dstFSM.items, []string{"a", "b"}) {
		t.Fatalf("restored FSM %q, want [a b]", dstFSM.items)
	}
	if m, ok := dst.Peer(5); !ok || m.ConfigPort != 10 {
		t.Fatalf("restored peer meta %+v %v", m, ok)
	}
	if got := dst.AppliedIndex(); got != 3 {
		t.Fatalf("restored AppliedIndex %d, want 3", got)
	}
	if !dst.Removed(6) || dst.Removed(5) {
		t.Fatalf("restored removals: 6 %v (want true), 5 %v (want false)", dst.Removed(6), dst.Removed(5))
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("CNS"), []byte("XXXX\x01\x01\x00"), []byte("CNS\x01\x05\x01\x09{}")} {
		a := New(Config{FSM: &listFSM{}})
		if err := a.Restore(io.NopCloser(bytes.NewReader(data))); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("Restore(%q): got %v, want ErrBadSnapshot", data, err)
		}
	}
}

func FuzzRestore(f *testing.F) {
	src := New(Config{FSM: &listFSM{}})
	src.ApplyBatch([]*raft.Log{cmd(1, EncodeProposal([]byte("a")))})
	snap, _ := src.Snapshot()
	var sink memSink
	_ = snap.Persist(&sink)
	f.Add(sink.Bytes())
	f.Add([]byte("CNS\x01"))
	f.Add([]byte(oldSnapshot))
	f.Add([]byte("CNS\x02\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x01\x02{}a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fsm := range []FSM{&listFSM{}, &streamFSM{}} {
			a := New(Config{FSM: fsm})
			_ = a.Restore(io.NopCloser(bytes.NewReader(data))) // must not panic
		}
	})
}

func TestTranslate(t *testing.T) {
	var tr Translator
	if o, ok := tr.Translate(raft.Observation{Data: raft.LeaderObservation{LeaderID: "7"}}); !ok || o != (observer.LeaderChanged{LeaderID: 7}) {
		t.Fatalf("leader: got %#v", o)
	}
	tr.Translate(raft.Observation{Data: raft.Candidate})
	if o, _ := tr.Translate(raft.Observation{Data: raft.Leader}); o != (observer.StateChanged{From: observer.Candidate, To: observer.Leader}) {
		t.Fatalf("state: got %#v", o)
	}
	if _, ok := tr.Translate(raft.Observation{Data: raft.RequestVoteRequest{}}); ok {
		t.Fatal("vote requests should not be translated")
	}
}

func TestCommittedConfiguration(t *testing.T) {
	a := New(Config{FSM: &listFSM{}})
	if servers, at := a.CommittedConfiguration(); len(servers) != 0 || at != 0 {
		t.Fatalf("before any configuration: got %v at %d, want none at 0", servers, at)
	}
	conf := &raft.Log{Index: 2, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{
		{ID: ServerID(1), Address: "x:1", Suffrage: raft.Voter},
		{ID: ServerID(2), Address: "x:2", Suffrage: raft.Nonvoter},
	}})}
	a.ApplyBatch([]*raft.Log{cmd(1, EncodeProposal([]byte("a"))), conf, cmd(3, EncodeProposal([]byte("b")))})
	want := map[uint64]raft.ServerSuffrage{1: raft.Voter, 2: raft.Nonvoter}
	servers, at := a.CommittedConfiguration()
	if !maps.Equal(servers, want) || at != 2 {
		t.Fatalf("after the configuration entry: got %v at %d, want %v at 2", servers, at, want)
	}
	servers[3] = raft.Voter // a copy: changing it changes nothing
	snapshot := persist(t, a)
	dst := New(Config{FSM: &listFSM{}})
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snapshot))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	// A snapshot's configuration is in effect at the snapshot's index.
	if servers, at := dst.CommittedConfiguration(); !maps.Equal(servers, want) || at != 3 {
		t.Fatalf("after Restore: got %v at %d, want %v at 3", servers, at, want)
	}
}

func TestPeerMetaNonVoter(t *testing.T) {
	a := New(Config{FSM: &listFSM{}})
	// An entry written before NonVoter existed.
	old := append([]byte{byte(KindPeerMeta)}, `{"id":4,"host":"h","raft_port":1,"config_port":2}`...)
	a.ApplyBatch([]*raft.Log{cmd(1, old), cmd(2, EncodePeerMeta(PeerMeta{ID: 5, Host: "h", RaftPort: 3, NonVoter: true}))})
	if m, ok := a.Peer(4); !ok || m.NonVoter || m.ConfigPort != 2 {
		t.Fatalf("old entry: got %+v %v, want ConfigPort 2 and NonVoter false", m, ok)
	}
	if m, ok := a.Peer(5); !ok || !m.NonVoter {
		t.Fatalf("got %+v %v, want NonVoter true", m, ok)
	}
	if b := EncodePeerMeta(PeerMeta{ID: 4, Host: "h", RaftPort: 1}); strings.Contains(string(b), "nonvoter") {
		t.Fatalf("a voter-to-be's entry %q names nonvoter; older nodes must read it as before", b)
	}
	snapshot := persist(t, a)
	dst := New(Config{FSM: &listFSM{}})
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snapshot))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if m, ok := dst.Peer(5); !ok || !m.NonVoter {
		t.Fatalf("restored: got %+v %v, want NonVoter true", m, ok)
	}
	if m, ok := dst.Peer(4); !ok || m.NonVoter {
		t.Fatalf("restored: got %+v %v, want NonVoter false", m, ok)
	}
}
