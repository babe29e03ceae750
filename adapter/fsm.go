package adapter

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/observer"
)

// FSM is the user's state machine as the adapter sees it. canoe's public FSM
// (whose methods take canoe.LogData and canoe.SnapshotData) is bridged to it
// by a shim in package canoe.
type FSM interface {
	// Apply applies one committed proposal. It must be deterministic: every
	// node applies the same proposals in the same order and must reach the
	// same state and the same error.
	Apply(data []byte) error
	// Snapshot returns the whole state. Apply is not called while it runs.
	Snapshot() ([]byte, error)
	// Restore replaces the whole state with a snapshot's.
	Restore(data []byte) error
}

// StreamingFSM is implemented by an FSM whose snapshots are streams: the
// adapter then calls these instead of Snapshot and Restore, and never holds
// the whole state in memory.
type StreamingFSM interface {
	// SnapshotStream captures the state; Apply is not called while it
	// runs. The returned function writes the captured state to w while
	// later Applies go on; the adapter calls it at most once.
	SnapshotStream() (func(w io.Writer) error, error)
	// RestoreStream replaces the whole state with the one read from r,
	// which ends where the state ends.
	RestoreStream(r io.Reader) error
}

// ResultFSM is an FSM whose Apply answers the proposer with a value. The
// adapter calls ApplyResult instead of Apply when the FSM implements it.
type ResultFSM interface {
	ApplyResult(data []byte) ([]byte, error)
}

// Notifier receives observations. Notify must never block; Active reports
// cheaply whether anyone listens, so hot paths can skip building events.
type Notifier interface {
	Active() bool
	Notify(observer.Observation)
}

// Config configures an Adapter.
type Config struct {
	FSM FSM // required
	// Stream, when set, is the FSM as a StreamingFSM: snapshots stream. Nil:
	// FSM's own, if it is one.
	Stream   StreamingFSM
	Notifier Notifier     // nil: no observations
	Logger   hclog.Logger // nil: hclog.NewNullLogger()
	// ConfigurationApplied, when set, is called on raft's FSM goroutine after
	// a committed membership configuration is applied. It must not block.
	ConfigurationApplied func(servers []raft.Server)
	// ApplyObserved, when set, is called with the time each raft entry took
	// to apply and the number of proposals it held. It must not block.
	ApplyObserved func(d time.Duration, proposals int)
	// Owns, when set, reports whether session is this node's: the results
	// of its proposals are handed to Delivered. It must be fast.
	Owns func(session uint64) bool
	// Delivered, when set, is called on raft's FSM goroutine after each
	// tagged entry is applied, with the results of the proposals of the
	// sessions Owns accepts. It must not block. The results' values are the
	// FSM's own and may be kept.
	Delivered func(Delivery)
	// Restored, when set, is called after a snapshot replaced the state, with
	// the index the state now reflects. It must not block.
	Restored func(index uint64)
}

// Delivery is what applying one tagged entry produced for this node.
type Delivery struct {
	Index   uint64
	Term    uint64       // the entry's term
	Batch   Tag          // the batch's tag: the leader that wrote it
	Results []ItemResult // the results of this node's proposals, in entry order
}

// ItemResult is the outcome of applying one proposal.
type ItemResult struct {
	Tag   Tag
	Value []byte // what ApplyResult answered; nil for a plain FSM
	Err   error  // what the FSM returned, or a recovered panic
}

// Result is the response to one untagged raft log entry (an entry written
// before proposals were tagged): the FSM's error for each proposal it held,
// in order (nil where Apply succeeded).
type Result struct {
	Index uint64
	Errs  []error
}

// PanicError is the error reported for a proposal whose Apply panicked (the
// panic is recovered so that the node keeps running).
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("FSM.Apply panicked: %v", e.Value) }

// Adapter makes a canoe FSM a raft.FSM and raft.BatchingFSM. Besides the
// user's state it keeps what every node must agree on for canoe itself: the
// members' addresses, the last applied configuration and the applied index.
type Adapter struct {
	fsm      FSM
	stream   StreamingFSM // fsm as a StreamingFSM; nil if it is not one
	result   ResultFSM    // fsm, when it answers with values
	owns     func(uint64) bool
	deliver  func(Delivery)
	restored func(uint64)
	notify   Notifier
	logger   hclog.Logger
	onConfig func([]raft.Server)
	onApply  func(time.Duration, int)

	applied atomic.Uint64 // index of the last entry whose effects the FSM holds

	// applyMu serializes everything that runs the user's FSM or moves
	// applied: ApplyBatch, ReplayCommitted, Snapshot, WriteState, Restore
	// and ResetMembership. Raft calls ApplyBatch, Snapshot and Restore from
	// its one FSM goroutine; ReplayCommitted runs on the goroutine that
	// starts the node, while raft may already apply the same entries, and
	// WriteState on a Backup's. Taken before mu, never while holding it.
	applyMu sync.Mutex

	mu       sync.Mutex // guards advanced, peers, removed, servers, configAt, lastTerm
	advanced chan struct{}
	peers    map[uint64]PeerMeta
	removed  map[uint64]bool // members removed on purpose (not to be re-added by discovery)
	servers  map[uint64]raft.ServerSuffrage
	configAt uint64 // an index at which servers is the configuration in effect (see CommittedConfiguration)
	lastTerm uint64
}

var (
	_ raft.FSM         = (*Adapter)(nil)
	_ raft.BatchingFSM = (*Adapter)(nil)
)

// New returns an Adapter for cfg.
func New(cfg Config) *Adapter {
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	stream := cfg.Stream
	if stream == nil {
		stream, _ = cfg.FSM.(StreamingFSM)
	}
	result, _ := cfg.FSM.(ResultFSM)
	return &Adapter{
		fsm:      cfg.FSM,
		stream:   stream,
		result:   result,
		owns:     cfg.Owns,
		deliver:  cfg.Delivered,
		restored: cfg.Restored,
		notify:   cfg.Notifier,
		logger:   logger,
		onConfig: cfg.ConfigurationApplied,
		onApply:  cfg.ApplyObserved,
		advanced: make(chan struct{}),
		peers:    make(map[uint64]PeerMeta),
		removed:  make(map[uint64]bool),
		servers:  make(map[uint64]raft.ServerSuffrage),
	}
}

// Apply implements raft.FSM.
func (a *Adapter) Apply(l *raft.Log) interface{} {
	return a.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM. Raft calls it on its FSM goroutine
// with committed LogCommand and LogConfiguration entries, in order.
func (a *Adapter) ApplyBatch(logs []*raft.Log) []interface{} {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	out := make([]interface{}, len(logs))
	for i, l := range logs {
		if l.Index <= a.applied.Load() {
			// Raft replays the log after a restart in the same process; the
			// FSM already holds these entries' effects (a restored snapshot
			// resets the applied index, so nothing newer is skipped).
			out[i] = &Result{Index: l.Index}
			continue
		}
		switch l.Type {
		case raft.LogCommand:
			out[i] = a.applyCommand(l)
		case raft.LogConfiguration:
			a.applyConfiguration(l)
		}
	}
	if len(logs) == 0 {
		return out
	}
	last := logs[len(logs)-1]
	if last.Index <= a.applied.Load() {
		return out // a replay the FSM already holds
	}
	a.mu.Lock()
	a.lastTerm = last.Term
	a.applied.Store(last.Index)
	close(a.advanced)
	a.advanced = make(chan struct{})
	a.mu.Unlock()
	return out
}

// ReplayCommitted applies logs, a run of consecutive log entries the
// caller knows to be committed, as raft would hand them to ApplyBatch: it
// passes on LogCommand and LogConfiguration entries and drops the rest
// (no-ops, barriers), which raft never gives the FSM. Entries the FSM
// already holds are skipped, and so are these entries when raft delivers
// them later: each entry is applied once. It may run while raft applies
// entries; the two are serialized (applyMu).
func (a *Adapter) ReplayCommitted(logs []*raft.Log) {
	send := make([]*raft.Log, 0, len(logs))
	for _, l := range logs {
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			send = append(send, l)
		}
	}
	if len(send) > 0 {
		a.ApplyBatch(send)
	}
}

func (a *Adapter) applyCommand(l *raft.Log) interface{} {
	if len(l.Data) == 0 {
		return a.malformed(l, fmt.Errorf("%w: empty", ErrMalformedEntry))
	}
	switch Kind(l.Data[0]) {
	case KindTagged:
		t, err := DecodeTagged(l.Data)
		if err != nil {
			return a.malformed(l, err)
		}
		a.applyTagged(l.Index, l.Term, t)
		return nil
	case KindProposal, KindBatch:
		items, err := DecodeProposals(l.Data)
		if err != nil {
			return a.malformed(l, err)
		}
		start := time.Now()
		res := &Result{Index: l.Index, Errs: make([]error, len(items))}
		for i, it := range items {
			_, res.Errs[i] = a.applyOne(l.Index, it)
		}
		if a.onApply != nil {
			a.onApply(time.Since(start), len(items))
		}
		if a.notify != nil && a.notify.Active() {
			a.notify.Notify(observer.EntryApplied{Index: l.Index, Count: len(items)})
		}
		return res
	case KindPeerMeta:
		m, err := decodePeerMeta(l.Data[1:])
		if err != nil {
			return a.malformed(l, err)
		}
		a.mu.Lock()
		a.peers[m.ID] = m
		delete(a.removed, m.ID) // added again on purpose
		a.mu.Unlock()
		return &Result{Index: l.Index}
	case KindPeerForget:
		id, err := decodePeerForget(l.Data[1:])
		if err != nil {
			return a.malformed(l, err)
		}
		a.mu.Lock()
		delete(a.peers, id)
		a.removed[id] = true
		a.mu.Unlock()
		return &Result{Index: l.Index}
	default:
		return a.malformed(l, fmt.Errorf("%w: unknown kind %d", ErrMalformedEntry, l.Data[0]))
	}
}

// malformed answers an entry canoe cannot decode. Every node sees the same
// bytes and so answers the same way; the node keeps running.
func (a *Adapter) malformed(l *raft.Log, err error) interface{} {
	a.logger.Error("skipping undecodable log entry", "index", l.Index, "error", err)
	return &Result{Index: l.Index, Errs: []error{err}}
}

// applyTagged applies a tagged batch and hands this node's results over.
func (a *Adapter) applyTagged(index, term uint64, t Tagged) {
	start := time.Now()
	n := 0
	var results []ItemResult
	for _, g := range t.Groups {
		mine := a.owns != nil && a.owns(g.Session)
		for i, it := range g.Items {
			v, err := a.applyOne(index, it)
			if mine {
				results = append(results, ItemResult{Tag: Tag{Session: g.Session, Seq: g.Seqs[i]}, Value: v, Err: err})
			}
		}
		n += len(g.Items)
	}
	if a.onApply != nil {
		a.onApply(time.Since(start), n)
	}
	if a.notify != nil && a.notify.Active() {
		a.notify.Notify(observer.EntryApplied{Index: index, Count: n})
	}
	if a.deliver != nil && (results != nil || a.owns != nil && a.owns(t.Batch.Session)) {
		a.deliver(Delivery{Index: index, Term: term, Batch: t.Batch, Results: results})
	}
}

// applyOne runs the FSM on one proposal, turning a panic into an error.
func (a *Adapter) applyOne(index uint64, data []byte) (v []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			a.logger.Error("FSM.Apply panicked; the proposal is reported as failed", "index", index, "panic", r)
			v, err = nil, &PanicError{Value: r}
		}
	}()
	if a.result != nil {
		return a.result.ApplyResult(data)
	}
	return nil, a.fsm.Apply(data)
}

func (a *Adapter) applyConfiguration(l *raft.Log) {
	cfg, err := decodeConfiguration(l.Data)
	if err != nil {
		a.logger.Error("skipping undecodable configuration entry", "index", l.Index, "error", err)
		return
	}
	next := make(map[uint64]raft.ServerSuffrage, len(cfg.Servers))
	var events []observer.Observation
	a.mu.Lock()
	for _, s := range cfg.Servers {
		id, err := ParseServerID(s.ID)
		if err != nil {
			a.logger.Warn("configuration holds a server canoe did not add", "server", s.ID)
			continue
		}
		next[id] = s.Suffrage
		prev, had := a.servers[id]
		switch {
		case !had:
			events = append(events, observer.PeerAdded{ID: id, Voter: s.Suffrage == raft.Voter})
		case prev != raft.Voter && s.Suffrage == raft.Voter:
			events = append(events, observer.PeerPromoted{ID: id})
		}
	}
	for id := range a.servers {
		if _, ok := next[id]; !ok {
			events = append(events, observer.PeerRemoved{ID: id})
			delete(a.peers, id)
		}
	}
	a.servers = next
	a.configAt = l.Index
	a.mu.Unlock()

	if a.notify != nil {
		for _, e := range events {
			a.notify.Notify(e)
		}
	}
	if a.onConfig != nil {
		a.onConfig(cfg.Servers)
	}
}

func decodeConfiguration(data []byte) (cfg raft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: configuration: %v", ErrMalformedEntry, r)
		}
	}()
	return raft.DecodeConfiguration(data), nil
}

// AppliedIndex returns the index of the last raft entry whose effects the
// FSM holds (raft's own AppliedIndex only says what was queued for it).
// Raft entries that never reach the FSM (no-ops, barriers) do not move it.
func (a *Adapter) AppliedIndex() uint64 { return a.applied.Load() }

// Advanced returns a channel closed the next time AppliedIndex moves.
func (a *Adapter) Advanced() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.advanced
}

// CommittedConfiguration returns the newest committed membership
// configuration the FSM holds, each member's suffrage by ID, and an index at
// which that configuration is in effect: the index of its configuration
// entry, or the index of the snapshot it was restored from. Entries reach
// the FSM only once committed, so unlike raft's latest configuration this
// one is never undone. Before any configuration it returns an empty map and
// 0. The map is a copy.
func (a *Adapter) CommittedConfiguration() (map[uint64]raft.ServerSuffrage, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[uint64]raft.ServerSuffrage, len(a.servers))
	for id, s := range a.servers {
		out[id] = s
	}
	return out, a.configAt
}

// Peer returns the replicated addresses of member id.
func (a *Adapter) Peer(id uint64) (PeerMeta, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.peers[id]
	return m, ok
}

// Removed reports whether member id was removed on purpose (a peer-forget
// entry) and not added again since.
func (a *Adapter) Removed(id uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.removed[id]
}

// Peers returns a copy of every member's replicated addresses.
func (a *Adapter) Peers() map[uint64]PeerMeta {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[uint64]PeerMeta, len(a.peers))
	for id, m := range a.peers {
		out[id] = m
	}
	return out
}
