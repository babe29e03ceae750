package canoe

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// backoff paces the attempts of a retry loop by InitializationBackoffArgs:
// the first wait is InitialInterval, each next one Multiplier times longer
// up to MaxInterval, each randomized by +-RandomizationFactor. It does not
// apply MaxElapsedTime: the caller's context does.
type backoff struct {
	args InitializationBackoffArgs // defaulted (see withDefaults)
	next time.Duration             // the next wait before jitter
}

func newBackoff(args InitializationBackoffArgs) *backoff {
	return &backoff{args: args, next: args.InitialInterval}
}

// wait blocks for the next interval, or until ctx ends; it returns ctx's
// cause then.
func (b *backoff) wait(ctx context.Context) error {
	d := jitter(b.next, b.args.RandomizationFactor)
	b.next = min(time.Duration(float64(b.next)*b.args.Multiplier), b.args.MaxInterval)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// jitter randomizes d by +-factor.
func jitter(d time.Duration, factor float64) time.Duration {
	if factor <= 0 || d <= 0 {
		return d
	}
	delta := factor * float64(d)
	return time.Duration(float64(d) - delta + rand.Float64()*2*delta)
}

// retry calls attempt until it returns nil or a permanent error (see
// permanent), or ctx ends, waiting between attempts as args says. It
// returns attempt's last error: nil on success; a permanent error; or,
// when ctx ended, the error of the last attempt (the caller tells the cases
// apart with isPermanent and ctx.Err).
func retry(ctx context.Context, args InitializationBackoffArgs, attempt func() error) error {
	b := newBackoff(args)
	for {
		err := attempt()
		if err == nil || isPermanent(err) {
			return err
		}
		if b.wait(ctx) != nil {
			return err
		}
	}
}

// permanentError marks the error of an attempt that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent marks err as one that retrying cannot fix.
func permanent(err error) error { return &permanentError{err} }

// isPermanent reports whether err, or an error it wraps, was marked by
// permanent.
func isPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}
