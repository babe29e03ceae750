// Command bench compares canoe with raw hashicorp/raft and dragonboat: three
// (or -nodes) nodes of each in one process, over TCP on 127.0.0.1, on disk.
//
// Each trial of each cell runs in a fresh child process (this binary with
// -child) on a fresh cluster and fresh data directories, so that memory,
// CPU and peak RSS belong to one implementation alone. Implementations are
// interleaved in a rotating order, and each cell reports medians over the
// trials plus the median of per-trial ratios against raw hashicorp/raft.
//
//	go run . [-window 3s] [-warmup 500ms] [-trials 5] [-clients 1,16,64,256]
//	         [-ops write,read] [-payloads 64,1024] [-read-payloads 64]
//	         [-impls canoe-leader,canoe-follower,canoe-bolt,raft,raft-wal,dragonboat]
//	         [-nodes 3] [-json FILE] [-cpuprofile PREFIX] [-memprofile PREFIX] [-cells=true]
//	         [-extras=true] [-extra-trials 3] [-snapshot-mib 256]
//	         [-stream-snapshot-mib 256] [-only-stream-snapshot]
//	         [-dir DIR] [-db-election-rtt 100]
//	go run . -soak 30m [-soak-clients 8] [-soak-keys 10000] [-soak-payload 256]
//	         [-soak-sample 10s] [-nodes 3] [-json FILE] [-plot FILE.svg,FILE.png] [-dir DIR]
//
// A cell is an operation, a number of concurrent clients and a payload
// size. write cells propose -payloads bytes and wait until the entry is
// committed and applied on the proposing node. read cells first write 1024
// keys of -read-payloads bytes, then each read is linearizable: canoe
// calls ReadBarrier on its node and reads its map; raw raft calls
// VerifyLeader().Error() on the leader and reads its map (as Consul does);
// dragonboat calls SyncRead on the leader.
//
// canoe-leader and canoe-follower use canoe's default log store (raft-wal)
// and operate on the leader and on a follower (which forwards proposals and
// asks the leader for read indexes); canoe-bolt is canoe on raft-boltdb/v2;
// canoe-secret (not in the default list) is canoe-leader with a
// ClusterSecret, for the cost of the authenticated, sealed transport;
// raft is raw hashicorp/raft on raft-boltdb/v2 (the baseline of the
// ratios), raft-wal the same on raft-wal. The extras measure failover (a
// canoe leader's process killed with SIGKILL, LAN profile; a graceful canoe
// Stop; raw raft's Shutdown with its default timeouts; dragonboat's Close),
// join-to-voter, the install of a snapshot of -snapshot-mib MiB on a new
// node (canoe and raw raft), and canoe's snapshot and install of a
// -stream-snapshot-mib MiB state with a StreamingFSM and with a []byte FSM,
// with the rise of the peak RSS (streaminstall.go).
//
// -soak runs instead a canoe cluster of -nodes processes (LAN profile,
// default snapshot policy) for the given duration, writing through every
// node with ProposeResult: -soak-clients clients per node set random keys
// among -soak-keys to -soak-payload bytes. Every -soak-sample it records
// each node's RSS, Go heap, data directory size and writes/s, prints a
// table, and draws them in each -plot file (.svg or .png; default: the
// -json file's name with .svg, or soak.svg). The summary covers the
// settled part of the run: its last two thirds.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

const resultPrefix = "RESULT "

type options struct {
	window, warmup time.Duration
	trials         int
	clients        []int
	ops            []string
	payloads       []int
	readPayloads   []int
	impls          []string
	nodes          int
	jsonFile       string
	cpuProfile     string
	memProfile     string
	cells, extras  bool
	extraTrials    int
	dir            string
	dbElection     uint64
	snapshotMiB    int
	streamMiB      int
	onlyStream     bool
	soak           soakOptions
}

func main() {
	var o options
	var clients, ops, payloads, readPayloads, implList, child, node string
	flag.DurationVar(&o.window, "window", 3*time.Second, "measuring window per trial")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "warm-up before the window")
	flag.IntVar(&o.trials, "trials", 5, "trials per cell")
	flag.StringVar(&clients, "clients", "1,16,64,256", "concurrent clients (comma list)")
	flag.StringVar(&ops, "ops", opWrite+","+opRead, "operations of the cells (comma list of "+opWrite+","+opRead+")")
	flag.StringVar(&payloads, "payloads", "64,1024", "payload sizes of the write cells in bytes (comma list)")
	flag.StringVar(&readPayloads, "read-payloads", "64", "value sizes of the keys the read cells read, in bytes (comma list)")
	flag.StringVar(&implList, "impls", "canoe-leader,canoe-follower,canoe-bolt,raft,raft-wal,dragonboat", "implementations (comma list of "+implNames()+")")
	flag.IntVar(&o.nodes, "nodes", 3, "nodes per cluster")
	flag.StringVar(&o.jsonFile, "json", "", "also write the JSON lines to this file")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of each measuring window to PREFIX.<impl>.<op>.c<clients>.p<payload>.t<trial>")
	flag.StringVar(&o.memProfile, "memprofile", "", "write allocation profiles at the start and end of each measuring window to PREFIX.<impl>.<op>.c<clients>.p<payload>.t<trial>{.base,} (compare with go tool pprof -sample_index=alloc_objects -diff_base)")
	flag.BoolVar(&o.cells, "cells", true, "measure the cells: -ops x -clients x payloads")
	flag.BoolVar(&o.extras, "extras", true, "also measure failover, join-to-voter and the snapshot installs (-snapshot-mib, -stream-snapshot-mib)")
	flag.IntVar(&o.snapshotMiB, "snapshot-mib", 256, "state size for the snapshot-install measurement (0: skip it)")
	flag.IntVar(&o.streamMiB, "stream-snapshot-mib", 256, "state size for the snapshot and install measurement of canoe's StreamingFSM and []byte paths (0: skip it)")
	flag.BoolVar(&o.onlyStream, "only-stream-snapshot", false, "of the extras, run only the -stream-snapshot-mib measurement")
	flag.IntVar(&o.extraTrials, "extra-trials", 3, "trials of each extra measurement")
	flag.StringVar(&o.dir, "dir", "", "parent of the temporary data dirs (default: the system temp dir)")
	flag.Uint64Var(&o.dbElection, "db-election-rtt", 100, "dragonboat ElectionRTT (x RTTMillisecond 1 ms); 10 makes it re-elect constantly on a busy 2-core machine")
	flag.DurationVar(&o.soak.duration, "soak", 0, "run the soak for this long instead of the cells and extras (0: no soak)")
	flag.IntVar(&o.soak.clients, "soak-clients", 8, "soak: clients writing through each node")
	flag.IntVar(&o.soak.keys, "soak-keys", 10000, "soak: number of distinct keys written")
	flag.IntVar(&o.soak.payload, "soak-payload", 256, "soak: bytes per value")
	flag.DurationVar(&o.soak.sample, "soak-sample", 10*time.Second, "soak: sampling period")
	flag.StringVar(&o.soak.plot, "plot", "", "soak: plot files, .svg or .png (comma list; default: the -json name with .svg, or soak.svg)")
	flag.StringVar(&child, "child", "", "internal: run one trial described by this JSON spec")
	flag.StringVar(&node, "node", "", "internal: run one canoe node described by this JSON spec until killed")
	flag.Parse()

	if node != "" {
		var sp nodeSpec
		if err := json.Unmarshal([]byte(node), &sp); err != nil {
			fatalf("bad -node spec: %v", err)
		}
		fatalf("node: %v", runNode(sp)) // runNode returns only on failure
	}

	if child != "" {
		var sp spec
		if err := json.Unmarshal([]byte(child), &sp); err != nil {
			fmt.Fprintln(os.Stderr, "bad -child spec:", err)
			os.Exit(2)
		}
		b, _ := json.Marshal(runChild(sp))
		fmt.Printf("%s%s\n", resultPrefix, b)
		return
	}

	var err error
	if o.clients, err = intList(clients); err != nil {
		fatalf("-clients: %v", err)
	}
	if o.payloads, err = intList(payloads); err != nil {
		fatalf("-payloads: %v", err)
	}
	if o.readPayloads, err = intList(readPayloads); err != nil {
		fatalf("-read-payloads: %v", err)
	}
	for _, op := range strings.Split(ops, ",") {
		op = strings.TrimSpace(op)
		if op != opWrite && op != opRead {
			fatalf("-ops: unknown %q (have %s,%s)", op, opWrite, opRead)
		}
		if !slices.Contains(o.ops, op) {
			o.ops = append(o.ops, op)
		}
	}
	for _, name := range strings.Split(implList, ",") {
		name = strings.TrimSpace(name)
		if _, ok := impls[name]; !ok {
			fatalf("-impls: unknown %q (have %s)", name, implNames())
		}
		o.impls = append(o.impls, name)
	}
	if o.trials < 1 || o.nodes < 1 {
		fatalf("-trials and -nodes must be positive")
	}
	var jsonOut io.Writer = io.Discard
	if o.jsonFile != "" {
		f, err := os.Create(o.jsonFile)
		if err != nil {
			fatalf("-json: %v", err)
		}
		defer f.Close()
		jsonOut = f
	}
	if o.soak.duration > 0 {
		if err := runSoak(o, jsonOut); err != nil {
			fatalf("soak: %v", err)
		}
		return
	}
	began := time.Now()
	fmt.Printf("# canoe comparative benchmark: %d nodes, window %v, warm-up %v, %d trials, impls %s\n",
		o.nodes, o.window, o.warmup, o.trials, strings.Join(o.impls, ","))
	fmt.Printf("# machine: %s; dragonboat ElectionRTT %d, HeartbeatRTT 1, RTTMillisecond 1\n", machineInfo(), o.dbElection)
	var m matrix
	if o.cells {
		m = runMatrix(o, jsonOut)
	}
	var ext []result
	if o.extras {
		ext = runExtras(o, jsonOut)
	}
	if len(m.cells) > 0 {
		fmt.Println()
		printTable(os.Stdout, o, m.cells)
		fmt.Println()
		printComparisons(os.Stdout, o, m)
		if slices.Contains(o.ops, opRead) && slices.Contains(o.ops, opWrite) {
			fmt.Println()
			printReadsWrites(os.Stdout, o, m)
		}
	}
	if len(ext) > 0 {
		fmt.Println()
		printExtras(os.Stdout, ext)
	}
	fmt.Printf("\n# total time %v; load average now %s\n", time.Since(began).Round(time.Second), loadAvg())
}

func fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, f+"\n", a...)
	os.Exit(2)
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// runSpec runs sp in a child process and returns its result.
func runSpec(sp spec, timeout time.Duration) result {
	fail := func(err error) result {
		return result{Kind: sp.Kind, Op: sp.Op, Impl: sp.Impl, Nodes: sp.Nodes, Clients: sp.Clients, Payload: sp.Payload, Trial: sp.Trial, Err: err.Error()}
	}
	dir, err := os.MkdirTemp(sp.Dir, "canoe-bench-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	sp.Dir = dir
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	b, _ := json.Marshal(sp)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-child", string(b))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	runErr := cmd.Run()
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), resultPrefix); ok {
			var r result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return fail(err)
			}
			return r
		}
	}
	if runErr == nil {
		runErr = fmt.Errorf("child printed no result")
	}
	return fail(fmt.Errorf("child: %w", runErr))
}

func emit(w io.Writer, prefix string, v any) {
	b, _ := json.Marshal(v)
	fmt.Printf("%s %s\n", prefix, b)
	fmt.Fprintf(w, "%s\n", b)
}

func machineInfo() string {
	return fmt.Sprintf("%d CPUs, load average %s", numCPU(), loadAvg())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
