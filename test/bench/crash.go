package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/canoe-raft/canoe/canoe"
)

// The crash measurement runs each canoe node in its own process (this
// binary with -node), so that the leader can be killed with SIGKILL: a real
// crash, not a graceful Stop. Every node proposes 64 bytes in a loop and
// prints each acknowledgement with its start and end (Unix nanoseconds);
// failover is the time from the kill to the end of the first acknowledged
// proposal that started after it. The soak (soak.go) runs its nodes the
// same way, with a different load.

// nodeSpec is what a -node child runs.
type nodeSpec struct {
	Dir       string    `json:"dir"`
	Bootstrap bool      `json:"bootstrap,omitempty"`
	Join      string    `json:"join,omitempty"` // URL of a member's HTTP API
	Soak      *soakLoad `json:"soak,omitempty"` // nil: the crash measurement's trickle of writes
}

// Lines a -node child prints.
const (
	nodeReady  = "READY"  // READY <config port>
	nodeLeader = "LEADER" // LEADER <voters>: voters while this node leads; 0: not leader
	nodeAck    = "ACK"    // ACK <start ns> <end ns>
	nodeStat   = "STAT"   // STAT <unix ns> <writes> <failed writes> <Go heap in use, bytes> (soak)
)

// runNode runs one canoe node until killed; it returns only why it could
// not.
func runNode(sp nodeSpec) error {
	cfg := canoeConfig(sp.Dir)
	cfg.Timing = canoe.LANProfile()
	cfg.BootstrapNode = sp.Bootstrap
	if sp.Join != "" {
		cfg.BootstrapPeers = []string{sp.Join}
	}
	if sp.Soak != nil {
		cfg.FSM = &canoeKVResult{}
	}
	n, err := canoe.NewNode(cfg)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	say := func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, f+"\n", a...)
		out.Flush()
	}
	say("%s %d", nodeReady, n.Self().ConfigPort)
	go func() { // runs until the process is killed
		said := 0
		for {
			voters := 0
			if n.IsLeader() {
				for _, p := range n.Peers() {
					if p.Voter {
						voters++
					}
				}
			}
			if voters != said {
				said = voters
				say("%s %d", nodeLeader, voters)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if sp.Soak != nil {
		soakNode(n, *sp.Soak, say) // never returns
	}
	data := make([]byte, 64)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		s := time.Now()
		err := n.ProposeContext(ctx, data)
		cancel()
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		say("%s %d %d", nodeAck, s.UnixNano(), time.Now().UnixNano())
		time.Sleep(5 * time.Millisecond) // a trickle: the point is availability, not load
	}
}

// nodeProc is a running -node child.
type nodeProc struct {
	cmd   *exec.Cmd
	port  chan int
	mu    sync.Mutex // guards the fields below
	voter int        // voters it leads; 0 when not leader
	acks  [][2]int64
	stat  nodeStats // the last STAT line
	done  chan struct{}
}

// nodeStats is what a soak node's STAT line says.
type nodeStats struct {
	at            time.Time
	writes, fails int64
	heap          int64
}

func startNodeProc(ctx context.Context, sp nodeSpec) (*nodeProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(sp)
	cmd := exec.CommandContext(ctx, exe, "-node", string(b))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &nodeProc{cmd: cmd, port: make(chan int, 1), done: make(chan struct{})}
	go p.read(stdout)
	return p, nil
}

func (p *nodeProc) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		a, _ := strconv.ParseInt(f[1], 10, 64)
		p.mu.Lock()
		switch f[0] {
		case nodeReady:
			p.port <- int(a)
		case nodeLeader:
			p.voter = int(a)
		case nodeAck:
			if len(f) == 3 {
				b, _ := strconv.ParseInt(f[2], 10, 64)
				p.acks = append(p.acks, [2]int64{a, b})
			}
		case nodeStat:
			if len(f) == 5 {
				var v [3]int64
				for i := range v {
					v[i], _ = strconv.ParseInt(f[i+2], 10, 64)
				}
				p.stat = nodeStats{at: time.Unix(0, a), writes: v[0], fails: v[1], heap: v[2]}
			}
		}
		p.mu.Unlock()
	}
}

// kill sends SIGKILL and reaps the process once its output is read (Wait
// closes the pipe).
func (p *nodeProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd.Wait()
}

// startNodeProcs starts nodes -node children with data under dir/n<i>:
// node 0 founds the cluster, the others join through its HTTP API once it
// is ready; each runs load (nil: the crash measurement's). It returns the
// children started so far, also with an error: the caller kills them.
func startNodeProcs(ctx context.Context, dir string, nodes int, load *soakLoad) ([]*nodeProc, error) {
	var procs []*nodeProc
	join := ""
	for i := range nodes {
		sp := nodeSpec{Dir: filepath.Join(dir, fmt.Sprintf("n%d", i)), Bootstrap: i == 0, Join: join, Soak: load}
		p, err := startNodeProc(ctx, sp)
		if err != nil {
			return procs, err
		}
		procs = append(procs, p)
		select {
		case port := <-p.port:
			if i == 0 {
				join = fmt.Sprintf("http://127.0.0.1:%d", port)
			}
		case <-p.done:
			return procs, fmt.Errorf("node %d exited before it was ready", i)
		case <-ctx.Done():
			return procs, fmt.Errorf("node %d: not ready: %w", i, ctx.Err())
		}
	}
	return procs, nil
}

func killAll(procs []*nodeProc) {
	for _, p := range procs {
		p.kill()
	}
}

// runCrash starts nodes canoe processes, kills the leader with SIGKILL
// and measures the time to the first write acknowledged by a survivor that
// was proposed after the kill.
func runCrash(o options, trial int) result {
	r := result{Kind: "crash", Impl: "canoe (LAN profile)", Nodes: o.nodes, Trial: trial}
	if err := crashTrial(o, &r); err != nil {
		r.Err = err.Error()
	}
	return r
}

func crashTrial(o options, r *result) error {
	dir, err := os.MkdirTemp(o.dir, "canoe-bench-crash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	procs, err := startNodeProcs(ctx, dir, o.nodes, nil)
	defer killAll(procs)
	if err != nil {
		return err
	}
	// Wait until some node leads all voters and every node has written.
	var leader *nodeProc
	err = waitFor(30*time.Second, func() bool {
		leader = nil
		for _, p := range procs {
			p.mu.Lock()
			if p.voter == o.nodes && len(p.acks) > 0 {
				leader = p
			}
			if len(p.acks) == 0 {
				p.mu.Unlock()
				return false
			}
			p.mu.Unlock()
		}
		return leader != nil
	})
	if err != nil {
		return fmt.Errorf("cluster did not form with every node writing: %w", err)
	}
	time.Sleep(200 * time.Millisecond)
	leader = nil
	for _, p := range procs { // the leader may have changed meanwhile
		p.mu.Lock()
		if p.voter == o.nodes {
			leader = p
		}
		p.mu.Unlock()
	}
	if leader == nil {
		return errors.New("no leader leads every node")
	}
	t0 := time.Now()
	leader.kill()
	// Only proposals started once the process is certainly gone count:
	// one started just before could still be acknowledged by it.
	dead := time.Now()
	r.StopMs = float64(dead.Sub(t0).Microseconds()) / 1e3
	r.How = "SIGKILL of the leader's process; survivors keep proposing"
	firstAck := func() (first int64) {
		for _, p := range procs {
			if p == leader {
				continue
			}
			p.mu.Lock()
			for _, a := range p.acks {
				if a[0] > dead.UnixNano() && (first == 0 || a[1] < first) {
					first = a[1]
				}
			}
			p.mu.Unlock()
		}
		return first
	}
	if err := waitFor(30*time.Second, func() bool { return firstAck() != 0 }); err != nil {
		return errors.New("no survivor acknowledged a write within 30s of the kill")
	}
	time.Sleep(100 * time.Millisecond) // let the other survivors' lines arrive
	r.FailoverMs = float64(firstAck()-t0.UnixNano()) / 1e6
	return nil
}
