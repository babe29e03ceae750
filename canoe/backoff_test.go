package canoe

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffPacesRetries(t *testing.T) {
	args := InitializationBackoffArgs{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second, RandomizationFactor: .5}
	// Expected wait before each retry, before randomization.
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		errTransient := errors.New("transient")
		err := retry(t.Context(), args, func() error {
			at = append(at, time.Now())
			if len(at) > len(want) {
				return nil
			}
			return errTransient
		})
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		for i, w := range want {
			got := at[i+1].Sub(at[i])
			lo, hi := w*time.Millisecond/2, w*time.Millisecond*3/2
			if got < lo || got > hi {
				t.Errorf("wait %d: got %v, want %v +-50%%", i+1, got, w*time.Millisecond)
			}
		}
	})
}

func TestBackoffStops(t *testing.T) {
	args := *DefaultInitializationBackoffArgs
	synctest.Test(t, func(t *testing.T) {
		errBad := errors.New("bad")
		calls := 0
		err := retry(t.Context(), args, func() error { calls++; return permanent(errBad) })
		if !errors.Is(err, errBad) || !isPermanent(err) || calls != 1 {
			t.Errorf("permanent failure: got %v after %d calls, want errBad after 1", err, calls)
		}

		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		start := time.Now()
		calls = 0
		errTransient := errors.New("transient")
		err = retry(ctx, args, func() error { calls++; return errTransient })
		if err != errTransient || ctx.Err() == nil {
			t.Errorf("retry until ctx ends: got %v (ctx %v), want the last attempt's error after ctx ended", err, ctx.Err())
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("retry returned after %v, want when ctx ended (3s)", d)
		}
		if calls < 3 || calls > 5 {
			t.Errorf("%d attempts in 3s with the default backoff, want 3-5", calls)
		}
	})
}
