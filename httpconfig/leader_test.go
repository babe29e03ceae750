package httpconfig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// fakeLeadership records TransferLeadership calls and answers leader, err.
type fakeLeadership struct {
	mu     sync.Mutex // guards calls
	calls  []uint64
	leader uint64
	err    error
}

func (f *fakeLeadership) TransferLeadership(_ context.Context, to uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, to)
	return f.leader, f.err
}

func (f *fakeLeadership) called() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.calls...)
}

// TestLeaderTransfer covers POST /leader/transfer through the Client
// (signed) and raw requests: the target in the body, the new leader in
// the answer, the node's errors as statuses, and bad input refused before
// the node is asked.
func TestLeaderTransfer(t *testing.T) {
	f := &fakeLeadership{leader: 5}
	base, c := startAPI(t, Config{Leadership: f, Secret: testSecret, ClusterID: testClusterID}, false, testSecret)
	ctx := context.Background()
	for _, to := range []uint64{0, 7} {
		got, err := c.TransferLeadership(ctx, base, to)
		if err != nil || got != 5 {
			t.Errorf("TransferLeadership(%d) = %d, %v; want 5, nil", to, got, err)
		}
	}
	if got := f.called(); fmt.Sprint(got) != "[0 7]" {
		t.Errorf("node was asked to transfer to %v, want [0 7]", got)
	}

	for _, tc := range []struct {
		err    error
		code   int
		leader uint64
	}{
		{&NotLeaderError{LeaderID: 3}, http.StatusMisdirectedRequest, 3},
		{fmt.Errorf("%w: 9 is not a member", ErrPeerNotFound), http.StatusNotFound, 0},
		{fmt.Errorf("%w: 9 is a non-voter", ErrInvalid), http.StatusBadRequest, 0},
		{fmt.Errorf("%w: not running", ErrNoLeader), http.StatusServiceUnavailable, 0},
	} {
		f.mu.Lock()
		f.err = tc.err
		f.mu.Unlock()
		_, err := c.TransferLeadership(ctx, base, 9)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != tc.code || se.LeaderID != tc.leader || se.Foreign {
			t.Errorf("node error %v: client got %v, want status %d with leader %d", tc.err, err, tc.code, tc.leader)
		}
	}

	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	h := NewHandler(Config{Leadership: f})
	before := len(f.called())
	for _, tc := range []struct {
		req  request
		code int
	}{
		{request{method: "POST", path: PathLeaderTransfer, body: `{"id":"x"}`}, 400},
		{request{method: "POST", path: PathLeaderTransfer, body: `{"to":2}`}, 400},
		{request{method: "POST", path: PathLeaderTransfer, body: `{"id":2} {}`}, 400},
		{request{method: "POST", path: PathLeaderTransfer, body: `[`}, 400},
		{request{method: "GET", path: PathLeaderTransfer}, 405},
	} {
		rec := serve(h, tc.req)
		if rec.Code != tc.code {
			t.Errorf("%s %s %q: status %d, want %d", tc.req.method, tc.req.path, tc.req.body, rec.Code, tc.code)
		}
		errorMessage(t, rec)
	}
	if got := len(f.called()); got != before {
		t.Errorf("bad requests reached the node %d times", got-before)
	}
	if rec := serve(h, request{method: "POST", path: PathLeaderTransfer, body: " \n"}); rec.Code != 200 {
		t.Errorf("POST with a blank body: status %d, want 200", rec.Code)
	}
	if rec := serve(NewHandler(Config{}), request{method: "POST", path: PathLeaderTransfer}); rec.Code != 404 {
		t.Errorf("POST %s without Leadership: status %d, want 404", PathLeaderTransfer, rec.Code)
	}
	authed := NewHandler(Config{Leadership: f, Secret: testSecret, ClusterID: testClusterID})
	if rec := serve(authed, request{method: "POST", path: PathLeaderTransfer}); rec.Code != 401 {
		t.Errorf("unsigned POST %s: status %d, want 401", PathLeaderTransfer, rec.Code)
	}
}
