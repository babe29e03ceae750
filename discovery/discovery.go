package discovery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// defaultBroadcastWait bounds UpdateMeta's and Leave's wait for a broadcast
// when ctx has no deadline (memberlist would otherwise wait forever).
const defaultBroadcastWait = 5 * time.Second

// Discovery is this node's membership in a gossip cluster. Create it with
// New; its methods are safe for concurrent use.
type Discovery struct {
	name      string
	clusterID uint64
	logger    hclog.Logger
	ml        *memberlist.Memberlist
	events    *eventQueue
	wg        sync.WaitGroup // the event queue's goroutine

	advertise string // gossip host:port; fixed once memberlist is created

	metaMu    sync.Mutex // guards meta, metaBytes
	meta      Meta
	metaBytes []byte

	// members mirrors memberlist's live peers (not this node), kept by the
	// event delegate. memberlist.Members hands out pointers into its node
	// table that it later rewrites without a lock held by the reader, so
	// reading them races with incoming updates.
	membersMu sync.Mutex // guards members
	members   map[string]Member

	// opMu is held for reading by Join, UpdateMeta and Leave while they
	// use ml, and for writing by Shutdown (memberlist panics on Leave
	// after Shutdown).
	opMu    sync.RWMutex
	shut    bool        // guarded by opMu
	leaveMu sync.Mutex  // serializes Leave
	left    atomic.Bool // Leave was called

	shutdownOnce sync.Once
	shutdownErr  error

	rejectMu sync.Mutex        // guards rejected
	rejected map[string]string // peer name -> last refusal logged at WARN
}

// New validates cfg, creates the memberlist instance and starts it: it
// listens at once, but knows only itself until Join. Errors from validation
// are all reported together and match ErrInvalidConfig.
func New(cfg Config) (*Discovery, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	metaBytes, err := cfg.Meta.Encode()
	if err != nil { // checked by withDefaults; kept for safety
		return nil, fmt.Errorf("%w: Meta: %w", ErrInvalidConfig, err)
	}

	d := &Discovery{
		name:      cfg.Name,
		clusterID: cfg.ClusterID,
		logger:    cfg.Logger.Named("discovery"),
		events:    newEventQueue(),
		meta:      cfg.Meta,
		metaBytes: metaBytes,
		rejected:  make(map[string]string),
		members:   make(map[string]Member),
	}

	mc := cfg.Profile.memberlistConfig()
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	mc.SecretKey = cfg.SecretKey
	if !cfg.noLabel {
		mc.Label = label(cfg.ClusterID)
	}
	mc.Logger = log.New(&memberlistLog{w: d.logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})}, "", 0)
	g := delegate{d: d}
	mc.Delegate = g
	mc.Events = g
	mc.Alive = g
	mc.Merge = g
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}

	d.wg.Go(d.events.run)
	ml, err := memberlist.Create(mc)
	if err != nil {
		d.events.close()
		d.wg.Wait()
		return nil, fmt.Errorf("discovery: start memberlist: %w", err)
	}
	d.ml = ml
	d.advertise = ml.LocalNode().Address() // only changes on setAlive, which ran in Create
	d.logger.Debug("started", "name", d.name, "addr", d.AdvertiseAddr(),
		"cluster", d.clusterID, "profile", cfg.Profile, "encrypted", cfg.SecretKey != nil)
	return d, nil
}

// memberlistLog passes memberlist's log lines on, with the level of those
// that report expected events lowered: a member that restarts (or pauses)
// refutes the suspicion the others raised while it was away, and the alive
// messages of its previous run that still circulate.
type memberlistLog struct{ w io.Writer }

var expectedMemberlistWarnings = []string{
	"[WARN] memberlist: Refuting a suspect message",
	"[WARN] memberlist: Refuting an alive message",
}

func (l *memberlistLog) Write(p []byte) (int, error) {
	for _, prefix := range expectedMemberlistWarnings {
		if bytes.HasPrefix(p, []byte(prefix)) {
			q := append([]byte("[INFO]"), p[len("[WARN]"):]...)
			if _, err := l.w.Write(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return l.w.Write(p)
}

// Join contacts each seed (gossip host:port, optionally "name/host:port") and
// merges state with it; it returns how many seeds accepted. It fails with a
// *JoinError (matching ErrJoinFailed) only if none did; the error gives the
// likely cause when it can tell (unreachable seed, SecretKey or ClusterID
// mismatch). Seeds are tried one after another; ctx is checked between
// them, and each attempt is bounded by the profile's TCP timeout (1 s Local,
// 10 s LAN). JoinError.Refused tells a join that asking again cannot fix
// (see there). Join fails with ErrLeft after Leave and ErrShutdown after
// Shutdown.
func (d *Discovery) Join(ctx context.Context, seeds []string) (int, error) {
	d.opMu.RLock()
	defer d.opMu.RUnlock()
	if err := d.usable(); err != nil {
		return 0, err
	}
	if len(seeds) == 0 {
		return 0, &JoinError{Err: errors.New("no seeds given")}
	}
	joined := 0
	refused := true // every seed turned this node away
	var errs []error
	for _, seed := range seeds {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			refused = false
			break
		}
		n, err := d.ml.Join([]string{seed})
		joined += n
		if err != nil {
			errs = append(errs, flatten(err)...)
			if _, r := joinHint(err, seed); !r {
				refused = false
			}
		}
	}
	if joined > 0 {
		if len(errs) > 0 {
			d.logger.Warn("some seeds could not be joined", "joined", joined, "error", errors.Join(errs...))
		}
		return joined, nil
	}
	err := errors.Join(errs...)
	hint, _ := joinHint(err, seeds...)
	return 0, &JoinError{Seeds: slices.Clone(seeds), Hint: hint, Err: err, Refused: refused}
}

// Events returns the channel of membership changes of other members (the
// local node's own changes are not reported). No event is dropped: they
// queue, unbounded, until read, so keep reading. The channel is closed by
// Shutdown, which discards events not yet read. Every call returns the same
// channel.
func (d *Discovery) Events() <-chan Event {
	return d.events.out
}

// Members returns the members not known to be dead or left, including this
// node (unless it has left), sorted by name. Their State is Alive (see
// Suspect). It reflects every event already delivered by Events.
func (d *Discovery) Members() []Member {
	d.membersMu.Lock()
	out := make([]Member, 0, len(d.members)+1)
	for _, m := range d.members {
		out = append(out, m)
	}
	d.membersMu.Unlock()
	if !d.left.Load() {
		out = append(out, d.LocalMember())
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// LocalMember returns this node as others see it; State is Left after
// Leave.
func (d *Discovery) LocalMember() Member {
	d.metaMu.Lock()
	meta := d.meta
	d.metaMu.Unlock()
	state := Alive
	if d.left.Load() {
		state = Left
	}
	return Member{Name: d.name, Addr: d.advertise, Meta: meta, State: state}
}

// AdvertiseAddr returns the gossip host:port peers use to reach this node,
// with the port resolved when BindPort was 0. Give it to others as a seed.
func (d *Discovery) AdvertiseAddr() string {
	return d.advertise
}

// UpdateMeta applies fn to a copy of the local Meta and gossips the result.
// fn must not change ID or ClusterID; if it does, or the result does not
// encode, nothing changes and the error says why. The new Meta is in effect
// locally at once; UpdateMeta then waits until it was broadcast (bounded by
// ctx's deadline, or 5 s without one) and returns an error if that wait
// ended first, though the update still spreads. It fails with ErrLeft after
// Leave and ErrShutdown after Shutdown.
func (d *Discovery) UpdateMeta(ctx context.Context, fn func(*Meta)) error {
	d.opMu.RLock()
	defer d.opMu.RUnlock()
	if err := d.usable(); err != nil {
		return err
	}
	wait, err := broadcastWait(ctx)
	if err != nil {
		return fmt.Errorf("discovery: update meta: %w", err)
	}
	if err := d.setMeta(fn); err != nil {
		return err
	}
	if err := d.ml.UpdateNode(wait); err != nil {
		return fmt.Errorf("discovery: update meta: not yet broadcast: %w", err)
	}
	return nil
}

// setMeta changes the local Meta; memberlist reads it through NodeMeta.
func (d *Discovery) setMeta(fn func(*Meta)) error {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	m := d.meta
	fn(&m)
	if m.ID != d.meta.ID || m.ClusterID != d.meta.ClusterID {
		return fmt.Errorf("discovery: update meta: %w: ID and ClusterID cannot change", ErrInvalidMeta)
	}
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("discovery: update meta: %w", err)
	}
	d.meta, d.metaBytes = m, b
	return nil
}

// Leave leaves the cluster gracefully: it sets Meta.Leaving and waits until
// that is broadcast (so that peers report EventLeave, not EventFailed), then
// broadcasts memberlist's leave and waits for it to go out. Both waits share
// ctx's deadline (5 s in all without one; the flag gets at most half); a
// leave broadcast that is not out in time is an error, but the node has
// left either way. Afterwards the node still answers
// gossip until Shutdown, which the caller must call; it cannot join again
// (create a new Discovery). Calling Leave again returns nil; after
// Shutdown it returns ErrShutdown.
func (d *Discovery) Leave(ctx context.Context) error {
	d.opMu.RLock()
	defer d.opMu.RUnlock()
	d.leaveMu.Lock()
	defer d.leaveMu.Unlock()
	if d.shut {
		return ErrShutdown
	}
	if d.left.Load() {
		return nil
	}
	wait, err := broadcastWait(ctx)
	if err != nil {
		return fmt.Errorf("discovery: leave: %w", err)
	}
	if err := d.setMeta(func(m *Meta) { m.Leaving = true }); err != nil {
		return fmt.Errorf("discovery: leave: %w", err)
	}
	// The leave broadcast replaces a queued metadata broadcast about the
	// same node, so the Leaving flag must be out before Leave is called.
	start := time.Now()
	if err := d.ml.UpdateNode(wait / 2); err != nil {
		d.logger.Warn("leaving flag not yet broadcast; peers may report a failure instead of a leave", "error", err)
	}
	d.left.Store(true)
	rest := max(wait-time.Since(start), time.Millisecond) // 0 would wait forever
	if err := d.ml.Leave(rest); err != nil {
		return fmt.Errorf("discovery: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip without leaving (peers will report EventFailed
// unless Leave was called first), waits for the goroutines this package
// started and closes the Events channel. memberlist's own goroutines stop
// shortly after; it does not wait for them. Idempotent; it waits for a
// Join, UpdateMeta or Leave in progress.
func (d *Discovery) Shutdown() error {
	d.shutdownOnce.Do(func() {
		d.opMu.Lock()
		d.shut = true
		d.opMu.Unlock()
		if err := d.ml.Shutdown(); err != nil {
			d.shutdownErr = fmt.Errorf("discovery: shutdown: %w", err)
		}
		d.events.close()
		d.wg.Wait()
	})
	return d.shutdownErr
}

// usable reports whether memberlist may still be used; opMu must be held.
func (d *Discovery) usable() error {
	if d.shut {
		return ErrShutdown
	}
	if d.left.Load() {
		return ErrLeft
	}
	return nil
}

// broadcastWait turns ctx into a memberlist timeout: the time to ctx's
// deadline, at most defaultBroadcastWait, never 0 (memberlist's "forever").
func broadcastWait(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	wait := defaultBroadcastWait
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return 0, context.DeadlineExceeded
		}
		wait = min(wait, left)
	}
	return wait, nil
}
