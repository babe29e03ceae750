package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

type cellKey struct {
	op               string
	impl             string
	clients, payload int
}

// cellSummary is the JSON line printed per cell.
type cellSummary struct {
	Op          string    `json:"op"`
	Impl        string    `json:"impl"`
	Nodes       int       `json:"nodes"`
	Clients     int       `json:"clients"`
	Payload     int       `json:"payload"`
	Trials      int       `json:"trials"`
	Failed      int       `json:"failed_trials"`
	OpsPerSec   float64   `json:"ops_per_s"`
	P50us       float64   `json:"p50_us"`
	P99us       float64   `json:"p99_us"`
	Ratio       float64   `json:"ratio_vs_raw"`
	P50Ratio    float64   `json:"p50_ratio_vs_raw"`
	P99Ratio    float64   `json:"p99_ratio_vs_raw"`
	AllocsPerOp float64   `json:"allocs_per_op"`
	BytesPerOp  float64   `json:"bytes_per_op"`
	CPUPer1k    float64   `json:"cpu_s_per_1k_ops"`
	PeakRSSMiB  float64   `json:"peak_rss_mib"`
	Errors      int64     `json:"failed_ops"`
	NewTerms    uint64    `json:"new_terms_in_windows"`
	TrialOps    []float64 `json:"trial_ops_per_s"`
	FirstError  string    `json:"first_error,omitempty"`
}

// matrix is what the cells measured: every trial's result and each cell's
// summary, in the order of the table.
type matrix struct {
	results map[cellKey][]result
	cells   []cellSummary
}

func numCPU() int { return runtime.NumCPU() }

// cellOps lists the operations measured and the payloads of each.
func cellOps(o options) (ops []string, payloads map[string][]int) {
	payloads = map[string][]int{opWrite: o.payloads, opRead: o.readPayloads}
	return o.ops, payloads
}

// runMatrix runs every cell's trials, implementations in rotating order,
// and returns the results and summaries.
func runMatrix(o options, jsonOut io.Writer) matrix {
	m := matrix{results: map[cellKey][]result{}}
	timeout := o.warmup + o.window + 2*time.Minute
	ops, payloads := cellOps(o)
	for t := range o.trials {
		probeDir := o.dir
		if probeDir == "" {
			probeDir = os.TempDir()
		}
		fs, ferr := fsyncProbe(probeDir)
		rtt, terr := tcpProbe()
		fmt.Printf("PROBE trial=%d fsync_4k_median=%v (err %v) tcp_rtt_median=%v (err %v) load=%s\n",
			t+1, fs.Round(time.Microsecond), ferr, rtt.Round(time.Microsecond), terr, loadAvg())
		cell := 0
		for _, op := range ops {
			for _, clients := range o.clients {
				for _, payload := range payloads[op] {
					order := rotate(o.impls, t+cell)
					cell++
					for _, name := range order {
						sp := spec{Kind: "cell", Op: op, Impl: name, Nodes: o.nodes, Clients: clients, Payload: payload,
							Trial: t + 1, Warmup: o.warmup, Window: o.window, Dir: o.dir, DBElection: o.dbElection}
						suffix := fmt.Sprintf(".%s.%s.c%d.p%d.t%d", name, op, clients, payload, t+1)
						if o.cpuProfile != "" {
							sp.CPUProfile = o.cpuProfile + suffix
						}
						if o.memProfile != "" {
							sp.MemProfile = o.memProfile + suffix
						}
						r := runSpec(sp, timeout)
						emit(jsonOut, "TRIAL", r)
						k := cellKey{op, name, clients, payload}
						m.results[k] = append(m.results[k], r)
					}
				}
			}
		}
	}
	for _, op := range ops {
		for _, clients := range o.clients {
			for _, payload := range payloads[op] {
				raw := m.results[cellKey{op, rawName, clients, payload}]
				for _, name := range o.impls {
					s := summarize(o, m.results[cellKey{op, name, clients, payload}], raw)
					s.Op, s.Impl, s.Clients, s.Payload = op, name, clients, payload
					emit(jsonOut, "CELL", s)
					m.cells = append(m.cells, s)
				}
			}
		}
	}
	return m
}

func rotate[T any](xs []T, k int) []T {
	k %= len(xs)
	return append(slices.Clone(xs[k:]), xs[:k]...)
}

func summarize(o options, rs, raw []result) cellSummary {
	s := cellSummary{Nodes: o.nodes, Trials: len(rs)}
	var ops, p50, p99, ratio, p50r, p99r, allocs, bytes, cpu, rss []float64
	for _, r := range rs {
		s.Errors += r.Errors
		s.NewTerms += r.NewTerms
		if s.FirstError == "" && r.FirstError != "" {
			s.FirstError = r.FirstError
		}
		if r.Err != "" {
			s.Failed++
			if s.FirstError == "" {
				s.FirstError = r.Err
			}
			continue
		}
		ops, p50, p99 = append(ops, r.OpsPerSec), append(p50, r.P50us), append(p99, r.P99us)
		allocs, bytes, cpu, rss = append(allocs, r.AllocsPerOp), append(bytes, r.BytesPerOp), append(cpu, r.CPUPer1k), append(rss, r.PeakRSSMiB)
		for _, w := range raw {
			if w.Trial == r.Trial && w.Err == "" {
				ratio = append(ratio, r.OpsPerSec/w.OpsPerSec)
				p50r, p99r = append(p50r, r.P50us/w.P50us), append(p99r, r.P99us/w.P99us)
			}
		}
	}
	s.TrialOps = ops
	s.OpsPerSec, s.P50us, s.P99us = median(ops), median(p50), median(p99)
	s.Ratio, s.P50Ratio, s.P99Ratio = median(ratio), median(p50r), median(p99r)
	s.AllocsPerOp, s.BytesPerOp, s.CPUPer1k, s.PeakRSSMiB = median(allocs), median(bytes), median(cpu), median(rss)
	return s
}

func fmtLat(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2f ms", us/1000)
	}
	return fmt.Sprintf("%.0f µs", us)
}

func printTable(w io.Writer, o options, cells []cellSummary) {
	fmt.Fprintf(w, "Medians over %d trials; %d nodes in one process; window %v; ratio = median of per-trial ops/s ratios vs raw hashicorp/raft;\n", o.trials, o.nodes, o.window)
	fmt.Fprintf(w, "allocs/op, B/op and CPU cover all %d nodes and the clients; peak RSS is the child process hosting that cluster.\n", o.nodes)
	fmt.Fprintf(w, "write: propose payload bytes, wait until committed and applied; read: a linearizable read of one of %d keys holding payload bytes.\n\n", readKeys)
	fmt.Fprintln(w, "| impl | op | clients | payload | ops/s | p50 | p99 | ratio vs raw | allocs/op | B/op | CPU s/1k ops | peak RSS MiB |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range cells {
		if c.Failed == c.Trials {
			fmt.Fprintf(w, "| %s | %s | %d | %d | FAILED: %s | | | | | | | |\n", c.Impl, c.Op, c.Clients, c.Payload, oneLine(c.FirstError))
			continue
		}
		ratio := fmt.Sprintf("%.2f", c.Ratio)
		if c.Ratio == 0 {
			ratio = "n/a"
		}
		note := ""
		if c.Failed > 0 {
			note = fmt.Sprintf(" (%d/%d trials failed)", c.Failed, c.Trials)
		}
		if c.NewTerms > 0 {
			note += fmt.Sprintf(" (%d elections)", c.NewTerms)
		}
		if c.Errors > 0 {
			note += fmt.Sprintf(" (%d failed ops)", c.Errors)
		}
		fmt.Fprintf(w, "| %s%s | %s | %d | %d | %.0f | %s | %s | %s | %.0f | %.0f | %.3f | %.0f |\n",
			c.Impl, note, c.Op, c.Clients, c.Payload, c.OpsPerSec, fmtLat(c.P50us), fmtLat(c.P99us), ratio,
			c.AllocsPerOp, c.BytesPerOp, c.CPUPer1k, c.PeakRSSMiB)
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// runExtras measures, -extra-trials times each: canoe's snapshot and
// install with a StreamingFSM and a []byte FSM (-stream-snapshot-mib; the
// only one with -only-stream-snapshot), failover (canoe's leader crashed
// and stopped, raw raft, dragonboat), canoe's join-to-voter, and the
// snapshot install on a new node (-snapshot-mib; canoe and raw raft).
func runExtras(o options, jsonOut io.Writer) []result {
	var out []result
	timeout := 2 * time.Minute
	has := func(name string) bool { return slices.Contains(o.impls, name) }
	add := func(r result) {
		emit(jsonOut, "EXTRA", r)
		out = append(out, r)
	}
	canoe := has("canoe-leader") || has("canoe-follower")
	for t := range o.extraTrials {
		trial := t + 1
		if canoe && o.streamMiB > 0 {
			for _, streaming := range rotate([]bool{true, false}, t) {
				add(runSpec(spec{Kind: "stream-snapshot", Impl: "canoe-bolt", Nodes: 1, Trial: trial, Dir: o.dir,
					Payload: o.streamMiB << 20, Streaming: streaming}, time.Hour))
			}
		}
		if o.onlyStream {
			continue
		}
		var runs []func()
		if canoe {
			// A crash: the leader's process is killed (LAN profile, the
			// default); and a graceful Stop, which hands leadership over.
			runs = append(runs,
				func() { add(runCrash(o, trial)) },
				func() {
					add(runSpec(spec{Kind: "failover", Impl: "canoe-leader", Nodes: o.nodes, Trial: trial, Dir: o.dir}, timeout))
				})
		}
		if has("raft") {
			runs = append(runs, func() {
				add(runSpec(spec{Kind: "failover", Impl: "raft", Nodes: o.nodes, Trial: trial, Dir: o.dir, RaftDefaults: true}, timeout))
			})
		}
		if has("dragonboat") {
			runs = append(runs, func() {
				add(runSpec(spec{Kind: "failover", Impl: "dragonboat", Nodes: o.nodes, Trial: trial, Dir: o.dir, DBElection: o.dbElection}, timeout))
			})
		}
		for _, run := range rotate(runs, t) {
			run()
		}
		if canoe {
			add(runSpec(spec{Kind: "join", Impl: "canoe-leader", Nodes: o.nodes, Trial: trial, Dir: o.dir}, timeout))
		}
		if o.snapshotMiB > 0 {
			var names []string
			if canoe {
				names = append(names, "canoe-leader")
			}
			if has("raft") {
				names = append(names, "raft")
			}
			for _, name := range rotate(names, t) {
				add(runSpec(spec{Kind: "snapshot", Impl: name, Nodes: o.nodes, Trial: trial, Dir: o.dir, Payload: o.snapshotMiB << 20}, 10*time.Minute))
			}
		}
	}
	return out
}

func printExtras(w io.Writer, rs []result) {
	type key struct{ kind, impl string }
	var keys []key
	groups := map[key][]result{}
	for _, r := range rs {
		k := key{r.Kind, r.Impl}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	fmt.Fprintln(w, "| measurement | impl | trials ok | median | all trials (ms) | how |")
	fmt.Fprintln(w, "|---|---|---:|---:|---|---|")
	for _, k := range keys {
		var vals []float64
		var all []string
		how, firstErr := "", ""
		for _, r := range groups[k] {
			if r.How != "" {
				how = r.How
			}
			if r.Err != "" {
				all = append(all, "failed")
				if firstErr == "" {
					firstErr = r.Err
				}
				continue
			}
			v := r.FailoverMs
			switch k.kind {
			case "join":
				v = r.VoterMs
				all = append(all, fmt.Sprintf("%.0f (Start %.0f)", r.VoterMs, r.StartedMs))
			case "snapshot":
				v = r.InstallMs
				all = append(all, fmt.Sprintf("%.0f (build %.0f, snapshot %.0f)", r.InstallMs, r.BuildMs, r.SnapshotMs))
			case "stream-snapshot":
				v = r.InstallMs
				all = append(all, fmt.Sprintf("%.0f (peak RSS +%.0f MiB; snapshot %.0f ms, peak RSS +%.0f MiB)",
					r.InstallMs, r.InstallRSSMiB, r.SnapshotMs, r.SnapshotRSSMiB))
			default:
				all = append(all, fmt.Sprintf("%.0f (stop %.0f)", r.FailoverMs, r.StopMs))
			}
			vals = append(vals, v)
		}
		name := "failover: leader stopped in-process -> first ack on survivors"
		switch k.kind {
		case "crash":
			name = "failover: leader process killed -> first ack on survivors"
		case "join":
			name = "join by URL -> voter"
		case "snapshot":
			name = fmt.Sprintf("snapshot install of %d MiB on a new node", groups[k][0].Payload>>20)
		case "stream-snapshot":
			name = fmt.Sprintf("snapshot and install of %d MiB, rise of the peak RSS", groups[k][0].Payload>>20)
		}
		if firstErr != "" {
			how += "; error: " + oneLine(firstErr)
		}
		fmt.Fprintf(w, "| %s | %s | %d/%d | %.0f ms | %s | %s |\n", name, k.impl, len(vals), len(groups[k]), median(vals), strings.Join(all, ", "), how)
	}
}
