package snapshotpolicy

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestDefault(t *testing.T) {
	want := Config{Interval: 2 * time.Minute, MinCommittedLogs: 8192, MaxRetainedSnapshots: 2}
	if got := Default(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v, want nil", err)
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{name: "zero", in: Config{}, want: Default()},
		{
			name: "all set",
			in:   Config{Interval: time.Second, MinCommittedLogs: 10, MaxRetainedSnapshots: 5},
			want: Config{Interval: time.Second, MinCommittedLogs: 10, MaxRetainedSnapshots: 5},
		},
		{
			name: "disabled keeps negative interval",
			in:   Config{Interval: -1},
			want: Config{Interval: -1, MinCommittedLogs: 8192, MaxRetainedSnapshots: 2},
		},
		{
			name: "partial",
			in:   Config{MinCommittedLogs: 100},
			want: Config{Interval: 2 * time.Minute, MinCommittedLogs: 100, MaxRetainedSnapshots: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if got := in.WithDefaults(); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if in != tt.in {
				t.Errorf("receiver changed to %+v, want %+v", in, tt.in)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		in       Config
		wantErrs []string // substrings, one per expected problem; nil = valid
	}{
		{name: "zero", in: Config{}},
		{name: "default", in: Default()},
		{name: "disabled", in: Config{Interval: -time.Second}},
		{name: "minimum interval", in: Config{Interval: 5 * time.Millisecond}},
		{name: "interval too low", in: Config{Interval: 4 * time.Millisecond}, wantErrs: []string{"Interval 4ms"}},
		{name: "interval 1ns", in: Config{Interval: 1}, wantErrs: []string{"Interval 1ns"}},
		{name: "negative retain", in: Config{MaxRetainedSnapshots: -1}, wantErrs: []string{"MaxRetainedSnapshots is -1"}},
		{
			name:     "all problems at once",
			in:       Config{Interval: time.Millisecond, MaxRetainedSnapshots: -3},
			wantErrs: []string{"Interval 1ms", "MaxRetainedSnapshots is -3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			err := in.Validate()
			if in != tt.in {
				t.Errorf("receiver changed to %+v, want %+v", in, tt.in)
			}
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want %d problems", len(tt.wantErrs))
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("errors.Is(%v, ErrInvalidConfig) = false, want true", err)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("got %T, want an errors.Join result", err)
			}
			if got, want := len(joined.Unwrap()), len(tt.wantErrs); got != want {
				t.Errorf("got %d problems (%v), want %d", got, err, want)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestRetain(t *testing.T) {
	tests := []struct {
		in   int
		want int
	}{
		{in: 0, want: 2},
		{in: 1, want: 1},
		{in: 7, want: 7},
		{in: -4, want: 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("MaxRetainedSnapshots=%d", tt.in), func(t *testing.T) {
			if got := (Config{MaxRetainedSnapshots: tt.in}).Retain(); got != tt.want {
				t.Errorf("Retain() with MaxRetainedSnapshots=%d: got %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name          string
		in            Config
		wantInterval  time.Duration
		wantThreshold uint64
		wantTrailing  uint64
	}{
		{
			name:         "default",
			in:           Config{},
			wantInterval: 2 * time.Minute, wantThreshold: 8192, wantTrailing: 8192,
		},
		{
			name:         "enabled",
			in:           Config{Interval: 30 * time.Second, MinCommittedLogs: 100, MaxRetainedSnapshots: 3},
			wantInterval: 30 * time.Second, wantThreshold: 100, wantTrailing: 100,
		},
		{
			name:         "disabled",
			in:           Config{Interval: -1, MinCommittedLogs: 50},
			wantInterval: DisabledInterval, wantThreshold: math.MaxUint64, wantTrailing: 50,
		},
		{
			name:         "disabled with defaults",
			in:           Config{Interval: -time.Hour},
			wantInterval: DisabledInterval, wantThreshold: math.MaxUint64, wantTrailing: 8192,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := raft.DefaultConfig()
			rc.LocalID = "n1"
			rc.HeartbeatTimeout = 123 * time.Millisecond
			rc.ElectionTimeout = 456 * time.Millisecond
			rc.LeaderLeaseTimeout = 100 * time.Millisecond
			tt.in.Apply(rc)
			if rc.SnapshotInterval != tt.wantInterval {
				t.Errorf("SnapshotInterval: got %v, want %v", rc.SnapshotInterval, tt.wantInterval)
			}
			if rc.SnapshotThreshold != tt.wantThreshold {
				t.Errorf("SnapshotThreshold: got %d, want %d", rc.SnapshotThreshold, tt.wantThreshold)
			}
			if rc.TrailingLogs != tt.wantTrailing {
				t.Errorf("TrailingLogs: got %d, want %d", rc.TrailingLogs, tt.wantTrailing)
			}
			if rc.HeartbeatTimeout != 123*time.Millisecond || rc.ElectionTimeout != 456*time.Millisecond {
				t.Errorf("timeouts: got %v/%v, want 123ms/456ms (untouched)", rc.HeartbeatTimeout, rc.ElectionTimeout)
			}
			if err := raft.ValidateConfig(rc); err != nil {
				t.Errorf("raft.ValidateConfig: got %v, want nil", err)
			}

			cur := raft.ReloadableConfig{
				TrailingLogs: 1, SnapshotInterval: time.Second, SnapshotThreshold: 1,
				HeartbeatTimeout: 123 * time.Millisecond, ElectionTimeout: 456 * time.Millisecond,
			}
			want := raft.ReloadableConfig{
				TrailingLogs: tt.wantTrailing, SnapshotInterval: tt.wantInterval, SnapshotThreshold: tt.wantThreshold,
				HeartbeatTimeout: 123 * time.Millisecond, ElectionTimeout: 456 * time.Millisecond,
			}
			if got := tt.in.Reloadable(cur); got != want {
				t.Errorf("Reloadable: got %+v, want %+v", got, want)
			}
		})
	}
}
