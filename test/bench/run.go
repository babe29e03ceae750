package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// spec is what a child process runs: one trial of one cell, or one extra
// measurement.
type spec struct {
	Kind       string        `json:"kind"`         // "cell", "failover", "join", "snapshot" or "stream-snapshot"
	Op         string        `json:"op,omitempty"` // cells: opWrite or opRead
	Impl       string        `json:"impl"`
	Nodes      int           `json:"nodes"`
	Clients    int           `json:"clients,omitempty"`
	Payload    int           `json:"payload,omitempty"`
	Trial      int           `json:"trial"`
	Warmup     time.Duration `json:"warmup,omitempty"`
	Window     time.Duration `json:"window,omitempty"`
	Dir        string        `json:"dir"`
	CPUProfile string        `json:"cpuprofile,omitempty"`
	MemProfile string        `json:"memprofile,omitempty"` // allocations: MemProfile.base at the window's start, MemProfile at its end
	DBElection uint64        `json:"db_election_rtt,omitempty"`
	// RaftDefaults gives raw raft raft.DefaultConfig()'s timeouts.
	RaftDefaults bool `json:"raft_defaults,omitempty"`
	// Streaming makes a "stream-snapshot" trial use a StreamingFSM.
	Streaming bool `json:"streaming,omitempty"`
}

// result is what one child reports.
type result struct {
	Kind    string `json:"kind"`
	Op      string `json:"op,omitempty"`
	Impl    string `json:"impl"`
	Nodes   int    `json:"nodes"`
	Clients int    `json:"clients,omitempty"`
	Payload int    `json:"payload,omitempty"`
	Trial   int    `json:"trial"`
	Err     string `json:"error,omitempty"` // the trial failed

	// cells
	Ops         int64   `json:"ops,omitempty"`
	OpsPerSec   float64 `json:"ops_per_s,omitempty"`
	P50us       float64 `json:"p50_us,omitempty"`
	P99us       float64 `json:"p99_us,omitempty"`
	Errors      int64   `json:"errors,omitempty"` // failed operations
	FirstError  string  `json:"first_error,omitempty"`
	AllocsPerOp float64 `json:"allocs_per_op,omitempty"`
	BytesPerOp  float64 `json:"bytes_per_op,omitempty"`
	CPUPer1k    float64 `json:"cpu_s_per_1k_ops,omitempty"`
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`
	StartSec    float64 `json:"cluster_start_s,omitempty"`
	NewTerms    uint64  `json:"new_terms_in_window,omitempty"` // elections seen by the proposing node

	// extras
	How        string  `json:"how,omitempty"`
	StopMs     float64 `json:"stop_ms,omitempty"`
	FailoverMs float64 `json:"failover_ms,omitempty"`
	StartedMs  float64 `json:"join_start_returned_ms,omitempty"`
	VoterMs    float64 `json:"join_to_voter_ms,omitempty"`
	BuildMs    float64 `json:"state_build_ms,omitempty"` // committing the entry that builds the state
	SnapshotMs float64 `json:"snapshot_ms,omitempty"`    // until the leader's snapshot is on disk
	InstallMs  float64 `json:"install_ms,omitempty"`     // new node started -> FSM holds the state
	// stream-snapshot: the rise of the peak RSS during each phase, MiB
	SnapshotRSSMiB float64 `json:"snapshot_rss_rise_mib,omitempty"`
	InstallRSSMiB  float64 `json:"install_rss_rise_mib,omitempty"`
}

// runChild runs sp in this process.
func runChild(sp spec) result {
	r := result{Kind: sp.Kind, Op: sp.Op, Impl: sp.Impl, Nodes: sp.Nodes, Clients: sp.Clients, Payload: sp.Payload, Trial: sp.Trial}
	if sp.MemProfile != "" {
		runtime.MemProfileRate = 4096 // finer than the default 512 KiB, for counts of small allocations
	}
	mk, ok := impls[sp.Impl]
	if !ok {
		r.Err = "unknown impl " + sp.Impl
		return r
	}
	im := mk(sp.Nodes)
	if ri, ok := im.(*raftImpl); ok {
		ri.defaultTiming = sp.RaftDefaults
	}
	if et, ok := im.(electionTuner); ok && sp.DBElection > 0 {
		et.setElectionRTT(sp.DBElection)
	}
	var err error
	switch sp.Kind {
	case "cell":
		err = runCell(im, sp, &r)
	case "failover":
		err = runFailover(im, sp, &r)
	case "join":
		err = runJoin(im, sp, &r)
	case "snapshot":
		err = runSnapshotInstall(im, sp, &r)
	case "stream-snapshot":
		err = runStreamInstall(im, sp, &r)
	default:
		err = fmt.Errorf("unknown kind %q", sp.Kind)
	}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// The operations of the cells.
const (
	opWrite = "write" // propose sp.Payload bytes and wait until committed and applied
	opRead  = "read"  // a linearizable read of one of readKeys keys of sp.Payload bytes
)

// readKeys is how many keys the read cells write before the warm-up and
// then read.
const readKeys = 1024

// runCell starts a fresh cluster, runs sp.Clients clients that loop
// operation-and-wait through a warm-up and then a measuring window, and
// records the latency of every operation completed inside the window.
func runCell(im impl, sp spec, r *result) error {
	var op func(ctx context.Context, client int, buf []byte, i uint64) error
	switch sp.Op {
	case opWrite, "":
		op = func(ctx context.Context, _ int, buf []byte, _ uint64) error { return im.propose(ctx, buf) }
	case opRead:
		rd, ok := im.(reader)
		if !ok {
			return fmt.Errorf("%s does not serve the read cells", sp.Impl)
		}
		rd.useKV()
		op = func(ctx context.Context, client int, _ []byte, i uint64) error {
			key := (uint64(client)*7919 + i) % readKeys
			v, err := rd.read(ctx, key)
			if err == nil && len(v) != sp.Payload {
				err = fmt.Errorf("read of key %d: %d bytes, want %d", key, len(v), sp.Payload)
			}
			return err
		}
	default:
		return fmt.Errorf("unknown op %q", sp.Op)
	}
	t0 := time.Now()
	if err := im.start(sp.Dir); err != nil {
		im.stop()
		return fmt.Errorf("start: %w", err)
	}
	defer im.stop()
	r.StartSec = time.Since(t0).Seconds()
	if sp.Op == opRead {
		if err := loadKeys(im, sp.Payload); err != nil {
			return fmt.Errorf("writing the keys to read: %w", err)
		}
	}

	var (
		stop, measuring atomic.Bool
		errCount        atomic.Int64
		firstErr        atomic.Value
		wg              sync.WaitGroup
		lat             = make([][]time.Duration, sp.Clients)
	)
	for c := range sp.Clients {
		buf := make([]byte, sp.Payload)
		rand.Read(buf)
		lat[c] = make([]time.Duration, 0, 1<<14)
		wg.Go(func() {
			for i := uint64(0); !stop.Load(); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				s := time.Now()
				err := op(ctx, c, buf, i)
				d := time.Since(s)
				cancel()
				if err != nil {
					if errCount.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
					time.Sleep(time.Millisecond)
					continue
				}
				if measuring.Load() {
					lat[c] = append(lat[c], d)
				}
			}
		})
	}
	time.Sleep(sp.Warmup)

	var m0, m1 runtime.MemStats
	if sp.MemProfile != "" {
		writeAllocs(sp.MemProfile + ".base")
	}
	if sp.CPUProfile != "" {
		f, err := os.Create(sp.CPUProfile)
		if err == nil {
			defer f.Close()
			pprof.StartCPUProfile(f)
		}
	}
	runtime.ReadMemStats(&m0)
	cpu0, _ := rusage()
	errs0 := errCount.Load()
	var term0 uint64
	if tm, ok := im.(termer); ok {
		term0 = tm.term()
	}
	start := time.Now()
	measuring.Store(true)
	time.Sleep(sp.Window)
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu1, _ := rusage()
	runtime.ReadMemStats(&m1)
	errs1 := errCount.Load()
	if tm, ok := im.(termer); ok {
		r.NewTerms = tm.term() - term0
	}
	if sp.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if sp.MemProfile != "" {
		writeAllocs(sp.MemProfile)
	}
	stop.Store(true)
	wg.Wait()

	all := slices.Concat(lat...)
	slices.Sort(all)
	ops := int64(len(all))
	r.Ops = ops
	r.Errors = errs1 - errs0
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	if ops == 0 {
		return errors.New("no operation completed in the window")
	}
	r.OpsPerSec = float64(ops) / elapsed.Seconds()
	r.P50us = float64(percentile(all, 0.50)) / 1e3
	r.P99us = float64(percentile(all, 0.99)) / 1e3
	r.AllocsPerOp = float64(m1.Mallocs-m0.Mallocs) / float64(ops)
	r.BytesPerOp = float64(m1.TotalAlloc-m0.TotalAlloc) / float64(ops)
	r.CPUPer1k = (cpu1 - cpu0).Seconds() / float64(ops) * 1000
	_, rss := rusage()
	r.PeakRSSMiB = float64(rss) / (1 << 20)
	return nil
}

// loadKeys writes readKeys keys of size bytes through im's target node, 16
// at a time; a failed write is retried (a set is idempotent) for up to 30 s.
func loadKeys(im impl, size int) error {
	var (
		next     atomic.Uint64
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	for range 16 {
		wg.Go(func() {
			value := make([]byte, size)
			rand.Read(value)
			for k := next.Add(1) - 1; k < readKeys; k = next.Add(1) - 1 {
				deadline := time.Now().Add(30 * time.Second)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					err := im.propose(ctx, kvEntry(k, value))
					cancel()
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						firstErr.CompareAndSwap(nil, fmt.Errorf("key %d: %w", k, err))
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

// writeAllocs writes the allocation profile so far to file.
func writeAllocs(file string) {
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memprofile:", err)
		return
	}
	defer f.Close()
	pprof.Lookup("allocs").WriteTo(f, 0)
}

// runFailover starts a cluster, makes a few proposals, stops the leader and
// measures the time from the stop call to the first write acknowledged by
// the survivors (written after the stop returned).
func runFailover(im impl, sp spec, r *result) error {
	fi, ok := im.(failoverImpl)
	if !ok {
		return fmt.Errorf("%s cannot stop its leader", sp.Impl)
	}
	if err := im.start(sp.Dir); err != nil {
		im.stop()
		return fmt.Errorf("start: %w", err)
	}
	defer im.stop()
	data := make([]byte, 64)
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := im.propose(ctx, data)
		cancel()
		if err != nil {
			return fmt.Errorf("warm-up proposal: %w", err)
		}
	}
	t0 := time.Now()
	how, err := fi.stopLeader()
	r.StopMs = float64(time.Since(t0).Microseconds()) / 1e3
	r.How = how
	if err != nil {
		return fmt.Errorf("stop leader: %w", err)
	}
	deadline := t0.Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		err := fi.proposeSurvivor(ctx, data)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no write acknowledged within 30s: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
	r.FailoverMs = float64(time.Since(t0).Microseconds()) / 1e3
	return nil
}

// runJoin starts a canoe cluster and measures a further node joining by URL
// until the leader counts it as a voter.
func runJoin(im impl, sp spec, r *result) error {
	c, ok := im.(*canoeImpl)
	if !ok {
		return fmt.Errorf("join is measured for canoe only, not %s", sp.Impl)
	}
	if err := im.start(sp.Dir); err != nil {
		im.stop()
		return fmt.Errorf("start: %w", err)
	}
	defer im.stop()
	started, voter, err := c.joinToVoter(sp.Dir)
	r.How = "NewNode+Start with BootstrapPeers http://<leader config port>, until leader's Peers() shows it Voter"
	r.StartedMs = float64(started.Microseconds()) / 1e3
	r.VoterMs = float64(voter.Microseconds()) / 1e3
	return err
}
