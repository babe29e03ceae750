package transport

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// answering is a raft.Transport that answers every AppendEntries and
// InstallSnapshot with resp (a copy), or with err.
type answering struct {
	raft.Transport
	success bool
	term    uint64
	lastLog uint64 // what the follower claims about itself
	err     error
}

func (a *answering) AppendEntries(_ raft.ServerID, _ raft.ServerAddress, _ *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	resp.Success, resp.Term, resp.LastLog = a.success, a.term, a.lastLog
	return a.err
}

func (a *answering) InstallSnapshot(_ raft.ServerID, _ raft.ServerAddress, _ *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, _ io.Reader) error {
	resp.Success, resp.Term = a.success, a.term
	return a.err
}

// TestProgressRecordsWhatTheAnswerProves: Matched moves only with an
// accepted AppendEntries or InstallSnapshot of the leader's term, never
// with what a follower claims (LastLog), and every answer, refusals
// included, counts for LastAnswer and AnsweredWithin.
func TestProgressRecordsWhatTheAnswerProves(t *testing.T) {
	const term = 5
	entries := func(from, to uint64) []*raft.Log {
		var l []*raft.Log
		for i := from; i <= to; i++ {
			l = append(l, &raft.Log{Index: i, Term: term})
		}
		return l
	}
	for _, tc := range []struct {
		name     string
		answer   answering
		req      raft.AppendEntriesRequest
		snapshot uint64 // > 0: an InstallSnapshot of this index instead
		matched  uint64 // 0: none known
		answered bool
	}{
		{"entries accepted", answering{success: true, term: term}, raft.AppendEntriesRequest{Term: term, PrevLogEntry: 3, Entries: entries(4, 9)}, 0, 9, true},
		{"probe accepted", answering{success: true, term: term}, raft.AppendEntriesRequest{Term: term, PrevLogEntry: 7}, 0, 7, true},
		{"heartbeat", answering{success: true, term: term, lastLog: 1000}, raft.AppendEntriesRequest{Term: term}, 0, 0, true},
		{"refused, claims more", answering{success: false, term: term, lastLog: 1000}, raft.AppendEntriesRequest{Term: term, PrevLogEntry: 3, Entries: entries(4, 9)}, 0, 0, true},
		{"newer term", answering{success: true, term: term + 1}, raft.AppendEntriesRequest{Term: term, PrevLogEntry: 3, Entries: entries(4, 9)}, 0, 0, true},
		{"no answer", answering{success: true, term: term, err: errors.New("unreachable")}, raft.AppendEntriesRequest{Term: term, PrevLogEntry: 3, Entries: entries(4, 9)}, 0, 0, false},
		{"snapshot installed", answering{success: true, term: term}, raft.AppendEntriesRequest{}, 40, 40, true},
		{"snapshot refused", answering{success: false, term: term}, raft.AppendEntriesRequest{}, 40, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewProgress(&tc.answer)
			var err error
			if tc.snapshot > 0 {
				err = p.InstallSnapshot("f", "f", &raft.InstallSnapshotRequest{Term: term, LastLogIndex: tc.snapshot}, &raft.InstallSnapshotResponse{}, nil)
			} else {
				err = p.AppendEntries("f", "f", &tc.req, &raft.AppendEntriesResponse{})
			}
			if err != tc.answer.err {
				t.Fatalf("error %v, want %v", err, tc.answer.err)
			}
			if n, ok := p.Matched("f"); n != tc.matched || ok != (tc.matched > 0) {
				t.Errorf("Matched = %d, %v; want %d", n, ok, tc.matched)
			}
			if _, ok := p.LastAnswer("f"); ok != tc.answered {
				t.Errorf("LastAnswer known = %v, want %v", ok, tc.answered)
			}
			if got := p.AnsweredWithin("f", time.Minute); got != tc.answered {
				t.Errorf("AnsweredWithin(1m) = %v, want %v", got, tc.answered)
			}
			if p.AnsweredWithin("f", 0) {
				t.Error("AnsweredWithin(0) = true")
			}
			p.Reset()
			if _, ok := p.Matched("f"); ok {
				t.Error("Matched known after Reset")
			}
			if _, ok := p.LastAnswer("f"); ok != tc.answered {
				t.Error("Reset forgot the last answer")
			}
		})
	}
}
