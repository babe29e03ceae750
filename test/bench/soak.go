package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/canoe-raft/canoe/canoe"
)

// The soak runs a canoe cluster of one process per node (-node children)
// under a steady write load through every node, with a bounded key space,
// and samples each node's memory and disk use: with the state bounded, both
// should level off (the log is compacted at each snapshot).

// soakOptions are the -soak flags.
type soakOptions struct {
	duration, sample       time.Duration
	clients, keys, payload int
	plot                   string
}

// soakLoad is the load a soak node runs (part of its nodeSpec).
type soakLoad struct {
	Clients int           `json:"clients"`
	Keys    int           `json:"keys"`
	Payload int           `json:"payload"`
	Stat    time.Duration `json:"stat"` // how often to print a STAT line
}

// soakNode runs load on n until the process is killed: load.Clients
// goroutines set random keys with ProposeResult, and a STAT line reports
// the counts every load.Stat.
func soakNode(n *canoe.Node, load soakLoad, say func(string, ...any)) {
	var writes, fails atomic.Int64
	for c := range load.Clients {
		go func() { // runs until the process is killed
			value := make([]byte, load.Payload)
			for i := range value {
				value[i] = byte(c + i)
			}
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := n.ProposeResult(ctx, kvEntry(rand.Uint64N(uint64(load.Keys)), value))
				cancel()
				if err != nil || len(res) != 8 {
					fails.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				writes.Add(1)
			}
		}()
	}
	for {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		say("%s %d %d %d %d", nodeStat, time.Now().UnixNano(), writes.Load(), fails.Load(), ms.HeapInuse)
		time.Sleep(load.Stat)
	}
}

// soakSample is one node's state at one sampling time (a SOAK JSON line).
type soakSample struct {
	Sec       float64 `json:"t_s"` // since the cluster formed
	Node      int     `json:"node"`
	Leader    bool    `json:"leader"`
	RSSMiB    float64 `json:"rss_mib"`
	HeapMiB   float64 `json:"go_heap_inuse_mib"`
	DiskMiB   float64 `json:"data_dir_mib"` // allocated blocks, as du counts
	Writes    int64   `json:"writes"`       // acknowledged since the start
	Fails     int64   `json:"failed_writes"`
	WritesSec float64 `json:"writes_per_s"` // since the previous sample
}

// runSoak runs the soak described by o and prints its summary.
func runSoak(o options, jsonOut io.Writer) error {
	so := o.soak
	if so.clients < 1 || so.keys < 1 || so.payload < 0 || so.sample <= 0 {
		return fmt.Errorf("-soak-clients and -soak-keys must be positive, -soak-payload not negative, -soak-sample positive")
	}
	plotFiles := strings.Split(so.plot, ",")
	if so.plot == "" {
		plotFiles = []string{"soak.svg"}
		if o.jsonFile != "" {
			plotFiles = []string{strings.TrimSuffix(o.jsonFile, filepath.Ext(o.jsonFile)) + ".svg"}
		}
	}
	for _, f := range plotFiles {
		if ext := filepath.Ext(f); ext != ".svg" && ext != ".png" {
			return fmt.Errorf("-plot %s: want .svg or .png files", f)
		}
	}
	fmt.Printf("# canoe soak: %d nodes (one process each, LAN profile, default snapshot policy), %v, %d clients per node, %d keys of %d B, sampled every %v\n",
		o.nodes, so.duration, so.clients, so.keys, so.payload, so.sample)
	fmt.Printf("# machine: %s\n", machineInfo())
	dir, err := os.MkdirTemp(o.dir, "canoe-bench-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), so.duration+5*time.Minute)
	defer cancel()
	load := &soakLoad{Clients: so.clients, Keys: so.keys, Payload: so.payload, Stat: min(time.Second, so.sample)}
	procs, err := startNodeProcs(ctx, dir, o.nodes, load)
	defer killAll(procs)
	if err != nil {
		return err
	}
	if err := waitFor(time.Minute, func() bool { return leaderOf(procs) >= 0 && allStats(procs) }); err != nil {
		return fmt.Errorf("no node came to lead all %d voters, or a node never reported: %w", o.nodes, err)
	}
	t0 := time.Now()
	prev := make([]nodeStats, len(procs)) // the STAT lines at the previous sample (at t0 for the first)
	for i, p := range procs {
		p.mu.Lock()
		prev[i] = p.stat
		p.mu.Unlock()
	}
	var samples []soakSample
	tick := time.NewTicker(so.sample)
	defer tick.Stop()
	for now := range tick.C {
		leader := leaderOf(procs)
		for i, p := range procs {
			select {
			case <-p.done:
				return fmt.Errorf("node %d exited during the soak", i)
			default:
			}
			p.mu.Lock()
			st := p.stat
			p.mu.Unlock()
			s := soakSample{
				Sec: now.Sub(t0).Seconds(), Node: i, Leader: i == leader,
				RSSMiB: float64(procStatusBytes(strconv.Itoa(p.cmd.Process.Pid), "VmRSS")) / (1 << 20), HeapMiB: float64(st.heap) / (1 << 20),
				DiskMiB: float64(diskUsage(filepath.Join(dir, fmt.Sprintf("n%d", i)))) / (1 << 20),
				Writes:  st.writes, Fails: st.fails,
			}
			if dt := st.at.Sub(prev[i].at).Seconds(); !prev[i].at.IsZero() && dt > 0 {
				s.WritesSec = float64(st.writes-prev[i].writes) / dt
			}
			prev[i] = st
			emit(jsonOut, "SOAK", s)
			samples = append(samples, s)
		}
		if now.Sub(t0) >= so.duration {
			break
		}
	}
	fmt.Printf("# load average now %s\n\n", loadAvg())
	printSoak(os.Stdout, jsonOut, o, samples)
	for _, f := range plotFiles {
		if err := plotSoak(f, o, samples); err != nil {
			return fmt.Errorf("plot %s: %w", f, err)
		}
		fmt.Printf("\nplot: %s\n", f)
	}
	return nil
}

// leaderOf returns the index of the node that leads every voter, or -1.
func leaderOf(procs []*nodeProc) int {
	for i, p := range procs {
		p.mu.Lock()
		v := p.voter
		p.mu.Unlock()
		if v == len(procs) {
			return i
		}
	}
	return -1
}

// allStats reports whether every node has printed a STAT line.
func allStats(procs []*nodeProc) bool {
	for _, p := range procs {
		p.mu.Lock()
		at := p.stat.at
		p.mu.Unlock()
		if at.IsZero() {
			return false
		}
	}
	return true
}

// procStatusBytes returns a "VmXXX:" field (in kB there) of
// /proc/<pid>/status, pid "self" for this process, in bytes; 0 if unknown.
func procStatusBytes(pid, field string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest) // "<n> kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// diskUsage returns the bytes allocated to the files under dir (what du
// counts). Files removed during the walk are skipped.
func diskUsage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

// soakSummary is one node's figures over the settled part of the soak (a
// SOAKSUM JSON line).
type soakSummary struct {
	Node      int     `json:"node"`
	Leader    bool    `json:"leader_at_end"`
	From      float64 `json:"settled_from_s"`
	RSSMin    float64 `json:"rss_min_mib"`
	RSSMax    float64 `json:"rss_max_mib"`
	RSSRatio  float64 `json:"rss_max_over_min"`
	HeapMin   float64 `json:"go_heap_inuse_min_mib"`
	HeapMax   float64 `json:"go_heap_inuse_max_mib"`
	DiskMin   float64 `json:"data_dir_min_mib"`
	DiskMax   float64 `json:"data_dir_max_mib"`
	Disk      float64 `json:"data_dir_end_mib"`
	WritesSec float64 `json:"writes_per_s"`
	Fails     int64   `json:"failed_writes"`
}

// summarizeSoak summarizes each node's samples from the end of the first
// third of the run on.
func summarizeSoak(o options, samples []soakSample) []soakSummary {
	from := o.soak.duration.Seconds() / 3
	out := make([]soakSummary, o.nodes)
	first, last := make([]soakSample, o.nodes), make([]soakSample, o.nodes)
	for i := range out {
		out[i] = soakSummary{Node: i, From: from, RSSMin: -1, HeapMin: -1, DiskMin: -1}
	}
	lo := func(p *float64, v float64) {
		if *p < 0 || v < *p {
			*p = v
		}
	}
	for _, s := range samples {
		if s.Sec < from {
			continue
		}
		m := &out[s.Node]
		if first[s.Node].Sec == 0 {
			first[s.Node] = s
		}
		last[s.Node] = s
		lo(&m.RSSMin, s.RSSMiB)
		m.RSSMax = max(m.RSSMax, s.RSSMiB)
		lo(&m.HeapMin, s.HeapMiB)
		m.HeapMax = max(m.HeapMax, s.HeapMiB)
		lo(&m.DiskMin, s.DiskMiB)
		m.DiskMax = max(m.DiskMax, s.DiskMiB)
		m.Disk, m.Leader = s.DiskMiB, s.Leader
	}
	for i := range out {
		if out[i].RSSMin > 0 {
			out[i].RSSRatio = out[i].RSSMax / out[i].RSSMin
		}
		if dt := last[i].Sec - first[i].Sec; dt > 0 {
			out[i].WritesSec = float64(last[i].Writes-first[i].Writes) / dt
		}
		out[i].Fails = last[i].Fails - first[i].Fails
	}
	return out
}

func printSoak(w io.Writer, jsonOut io.Writer, o options, samples []soakSample) {
	sums := summarizeSoak(o, samples)
	for _, s := range sums {
		emit(jsonOut, "SOAKSUM", s)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Soak: %d nodes, %v; settled part: from %.0f s on (the last two thirds). Data dir: raft log, snapshots and metadata, as du counts.\n\n",
		o.nodes, o.soak.duration, o.soak.duration.Seconds()/3)
	fmt.Fprintln(w, "| node | RSS min-max MiB | RSS max/min | Go heap in use min-max MiB | data dir min-max MiB (at end) | writes/s | failed writes |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, s := range sums {
		name := fmt.Sprint(s.Node)
		if s.Leader {
			name += " (leader)"
		}
		fmt.Fprintf(w, "| %s | %.0f-%.0f | %.2f | %.0f-%.0f | %.0f-%.0f (%.0f) | %.0f | %d |\n",
			name, s.RSSMin, s.RSSMax, s.RSSRatio, s.HeapMin, s.HeapMax, s.DiskMin, s.DiskMax, s.Disk, s.WritesSec, s.Fails)
	}
}
