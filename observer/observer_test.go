package observer

import (
	"reflect"
	"sync"
	"testing"
	"time"
)

// drain returns everything currently buffered in ch without blocking.
func drain(ch chan Observation) []Observation {
	var got []Observation
	for {
		select {
		case ob := <-ch:
			got = append(got, ob)
		default:
			return got
		}
	}
}

func onlyLeader(ob Observation) bool {
	_, ok := ob.(LeaderChanged)
	return ok
}

var allEvents = []Observation{
	LeaderChanged{LeaderID: 1, Term: 2},
	StateChanged{From: Follower, To: Candidate},
	PeerAdded{ID: 3, Voter: true},
	PeerRemoved{ID: 3},
	PeerPromoted{ID: 4},
	SnapshotTaken{Index: 10, Term: 2},
	SnapshotRestored{Index: 10, Term: 2},
	EntryApplied{Index: 11, Count: 3},
	HeartbeatFailed{ID: 5, LastContact: time.Unix(100, 0)},
	HeartbeatResumed{ID: 5},
}

func TestFiltering(t *testing.T) {
	tests := []struct {
		name   string
		filter FilterFn
		want   []Observation
	}{
		{
			name:   "nil filter accepts everything",
			filter: nil,
			want:   allEvents,
		},
		{
			name:   "type filter",
			filter: onlyLeader,
			want:   []Observation{LeaderChanged{LeaderID: 1, Term: 2}},
		},
		{
			name: "field filter",
			filter: func(ob Observation) bool {
				sc, ok := ob.(StateChanged)
				return ok && sc.To == Candidate
			},
			want: []Observation{StateChanged{From: Follower, To: Candidate}},
		},
		{
			name:   "reject all",
			filter: func(Observation) bool { return false },
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan Observation, len(allEvents))
			o := New(ch, tt.filter)
			var r Registry
			r.Register(o)
			for _, ob := range allEvents {
				r.Notify(ob)
			}
			if got := drain(ch); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if got := o.Dropped(); got != 0 {
				t.Errorf("Dropped() = %d, want 0", got)
			}
		})
	}
}

func TestDropsWhenFull(t *testing.T) {
	tests := []struct {
		name        string
		buffer      int
		sent        int
		filter      FilterFn
		wantGot     int
		wantDropped uint64
	}{
		{name: "fits", buffer: 4, sent: 4, wantGot: 4, wantDropped: 0},
		{name: "overflow", buffer: 2, sent: 5, wantGot: 2, wantDropped: 3},
		{name: "unbuffered without reader", buffer: 0, sent: 3, wantGot: 0, wantDropped: 3},
		{
			name:   "filtered out are not drops",
			buffer: 1, sent: 5,
			filter:  func(Observation) bool { return false },
			wantGot: 0, wantDropped: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan Observation, tt.buffer)
			o := New(ch, tt.filter)
			var r Registry
			r.Register(o)
			for i := range tt.sent {
				r.Notify(EntryApplied{Index: uint64(i + 1), Count: 1})
			}
			if got := len(drain(ch)); got != tt.wantGot {
				t.Errorf("received %d observations, want %d", got, tt.wantGot)
			}
			if got := o.Dropped(); got != tt.wantDropped {
				t.Errorf("Dropped() = %d, want %d", got, tt.wantDropped)
			}
		})
	}
}

func TestFullObserverDoesNotAffectOthers(t *testing.T) {
	full := make(chan Observation) // unbuffered, nobody reads
	roomy := make(chan Observation, 8)
	of, or := New(full, nil), New(roomy, nil)
	var r Registry
	r.Register(of)
	r.Register(or)
	for i := range 5 {
		r.Notify(EntryApplied{Index: uint64(i + 1), Count: 1})
	}
	if got := len(drain(roomy)); got != 5 {
		t.Errorf("roomy observer got %d observations, want 5", got)
	}
	if got := of.Dropped(); got != 5 {
		t.Errorf("full observer Dropped() = %d, want 5", got)
	}
	if got := or.Dropped(); got != 0 {
		t.Errorf("roomy observer Dropped() = %d, want 0", got)
	}
}

func TestRegisterUnregister(t *testing.T) {
	tests := []struct {
		name    string
		ops     func(r *Registry, a, b *Observer)
		wantLen int
		wantA   int // observations a receives from one Notify
		wantB   int
	}{
		{
			name:    "empty",
			ops:     func(r *Registry, a, b *Observer) {},
			wantLen: 0,
		},
		{
			name:    "both registered",
			ops:     func(r *Registry, a, b *Observer) { r.Register(a); r.Register(b) },
			wantLen: 2, wantA: 1, wantB: 1,
		},
		{
			name:    "double register delivers once",
			ops:     func(r *Registry, a, b *Observer) { r.Register(a); r.Register(a) },
			wantLen: 1, wantA: 1,
		},
		{
			name: "unregister stops delivery",
			ops: func(r *Registry, a, b *Observer) {
				r.Register(a)
				r.Register(b)
				r.Unregister(a)
			},
			wantLen: 1, wantB: 1,
		},
		{
			name: "unregister is idempotent",
			ops: func(r *Registry, a, b *Observer) {
				r.Register(a)
				r.Register(b)
				r.Unregister(b)
				r.Unregister(b)
			},
			wantLen: 1, wantA: 1,
		},
		{
			name: "unregister nil and unknown",
			ops: func(r *Registry, a, b *Observer) {
				r.Register(a)
				r.Unregister(nil)
				r.Unregister(b)
			},
			wantLen: 1, wantA: 1,
		},
		{
			name: "re-register after unregister",
			ops: func(r *Registry, a, b *Observer) {
				r.Register(a)
				r.Unregister(a)
				r.Register(a)
			},
			wantLen: 1, wantA: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cha, chb := make(chan Observation, 4), make(chan Observation, 4)
			a, b := New(cha, nil), New(chb, nil)
			var r Registry
			tt.ops(&r, a, b)
			if got := r.Len(); got != tt.wantLen {
				t.Errorf("Len() = %d, want %d", got, tt.wantLen)
			}
			if got, want := r.Active(), tt.wantLen > 0; got != want {
				t.Errorf("Active() = %v, want %v", got, want)
			}
			r.Notify(PeerRemoved{ID: 7})
			if got := len(drain(cha)); got != tt.wantA {
				t.Errorf("a received %d, want %d", got, tt.wantA)
			}
			if got := len(drain(chb)); got != tt.wantB {
				t.Errorf("b received %d, want %d", got, tt.wantB)
			}
		})
	}
}

func TestPanickingFilter(t *testing.T) {
	tests := []struct {
		name  string
		value any
	}{
		{name: "string", value: "boom"},
		{name: "error", value: errTest{}},
		{name: "nil", value: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := New(make(chan Observation, 4), func(Observation) bool { panic(tt.value) })
			goodCh := make(chan Observation, 4)
			good := New(goodCh, nil)
			var r Registry
			r.Register(bad) // registered first: its panic must not stop delivery to good
			r.Register(good)
			r.Notify(HeartbeatResumed{ID: 1})
			r.Notify(HeartbeatResumed{ID: 2})
			if got := bad.Dropped(); got != 2 {
				t.Errorf("panicking observer Dropped() = %d, want 2", got)
			}
			if got := len(drain(goodCh)); got != 2 {
				t.Errorf("good observer received %d, want 2", got)
			}
		})
	}
}

type errTest struct{}

func (errTest) Error() string { return "test error" }

func TestClosedChannelCountsAsDrop(t *testing.T) {
	ch := make(chan Observation, 1)
	o := New(ch, nil)
	var r Registry
	r.Register(o)
	close(ch)
	r.Notify(PeerPromoted{ID: 1})
	if got := o.Dropped(); got != 1 {
		t.Errorf("Dropped() = %d, want 1", got)
	}
}

func TestMisusePanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{name: "New with nil channel", f: func() { New(nil, nil) }},
		{name: "Register nil", f: func() { var r Registry; r.Register(nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("got no panic, want one")
				}
			}()
			tt.f()
		})
	}
}

func TestUniqueIDs(t *testing.T) {
	seen := make(map[uint64]bool)
	for range 100 {
		id := New(make(chan Observation), nil).ID()
		if id == 0 {
			t.Fatalf("got id 0, want nonzero")
		}
		if seen[id] {
			t.Fatalf("got duplicate id %d", id)
		}
		seen[id] = true
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		s    State
		want string
	}{
		{Follower, "follower"},
		{Candidate, "candidate"},
		{Leader, "leader"},
		{Shutdown, "shutdown"},
		{State(42), "state(42)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.s.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConcurrent exercises Notify against Register and Unregister; its value
// is mostly under -race. Each persistent observer must see every observation
// exactly once, since it stays registered throughout.
func TestConcurrent(t *testing.T) {
	const (
		notifiers = 4
		perNotify = 500
		churners  = 4
		churns    = 200
	)
	var r Registry
	stableCh := make(chan Observation, notifiers*perNotify)
	stable := New(stableCh, nil)
	r.Register(stable)

	var wg sync.WaitGroup
	for n := range notifiers {
		wg.Go(func() {
			for i := range perNotify {
				if r.Active() {
					r.Notify(EntryApplied{Index: uint64(n*perNotify + i), Count: 1})
				}
			}
		})
	}
	for range churners {
		wg.Go(func() {
			ch := make(chan Observation, 1)
			for range churns {
				o := New(ch, onlyLeader)
				r.Register(o)
				_ = r.Len()
				_ = o.Dropped()
				r.Unregister(o)
				drain(ch)
			}
		})
	}
	wg.Wait()

	if got, want := len(drain(stableCh)), notifiers*perNotify; got != want {
		t.Errorf("stable observer received %d, want %d", got, want)
	}
	if got := stable.Dropped(); got != 0 {
		t.Errorf("stable observer Dropped() = %d, want 0", got)
	}
	if got := r.Len(); got != 1 {
		t.Errorf("Len() = %d, want 1", got)
	}
}
