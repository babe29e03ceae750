package adapter

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

// TestResetMembership replaces a membership of 1, 2 and 3 (2 by
// configuration only) with 1 and 4: the snapshot taken after must hold
// exactly their addresses, every other member removed on purpose, and the
// applied index and term of the recovery.
func TestResetMembership(t *testing.T) {
	a := New(Config{FSM: &listFSM{}})
	conf := raft.Configuration{Servers: []raft.Server{
		{ID: ServerID(1), Address: "h1:1", Suffrage: raft.Voter},
		{ID: ServerID(2), Address: "h2:1", Suffrage: raft.Voter},
		{ID: ServerID(3), Address: "h3:1", Suffrage: raft.Nonvoter},
	}}
	a.ApplyBatch([]*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(conf)},
		cmd(2, EncodePeerMeta(PeerMeta{ID: 1, Host: "h1", RaftPort: 1, ConfigPort: 11})),
		cmd(3, EncodePeerMeta(PeerMeta{ID: 3, Host: "h3", RaftPort: 1})),
		cmd(4, EncodeProposal([]byte("x"))),
	})
	a.ResetMembership([]PeerMeta{{ID: 1, Host: "new1", RaftPort: 5, ConfigPort: 11}, {ID: 4, Host: "h4", RaftPort: 1}}, 9, 3)
	if got := a.AppliedIndex(); got != 9 {
		t.Errorf("AppliedIndex %d, want 9", got)
	}
	snapshot := persist(t, a)
	r := bufio.NewReader(bytes.NewReader(snapshot))
	h, err := ReadSnapshotHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	index, term, st := h.Index, h.Term, h.Membership
	if index != 9 || term != 3 || string(data) != "x" {
		t.Errorf("snapshot index %d term %d data %q, want 9, 3, x", index, term, data)
	}
	wantPeers := []PeerMeta{{ID: 1, Host: "new1", RaftPort: 5, ConfigPort: 11}, {ID: 4, Host: "h4", RaftPort: 1}}
	if !slices.Equal(st.Peers, wantPeers) {
		t.Errorf("peers %+v, want %+v", st.Peers, wantPeers)
	}
	if !slices.Equal(st.Removed, []uint64{2, 3}) {
		t.Errorf("removed %v, want [2 3]", st.Removed)
	}
	if want := []Server{{ID: 1, Voter: true}, {ID: 4, Voter: true}}; !slices.Equal(st.Servers, want) {
		t.Errorf("servers %+v, want %+v", st.Servers, want)
	}
	// An older index never moves the applied index back.
	a.ResetMembership(wantPeers, 5, 1)
	if got := a.AppliedIndex(); got != 9 {
		t.Errorf("AppliedIndex after a reset to an older index: %d, want 9", got)
	}
	if got := slices.Sorted(maps.Keys(a.Peers())); !slices.Equal(got, []uint64{1, 4}) {
		t.Errorf("Peers %v, want [1 4]", got)
	}
}
