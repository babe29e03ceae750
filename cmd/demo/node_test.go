package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// buildDemo compiles this program once per test run.
var buildDemo = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "canoe-demo-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "demo")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildDemo(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// proc is one "demo node" process.
type proc struct {
	id   int
	args []string
	log  string
	kv   string // the demo HTTP base URL
	api  string // the canoe API base URL
	data string // -data
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *proc) start(t *testing.T, bin string) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), "CANOE_V=false")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
}

// interrupt sends SIGINT and waits, at most within, for a clean exit.
func (p *proc) interrupt(t *testing.T, within time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("node %d exited with %v after SIGINT", p.id, p.err)
		}
	case <-time.After(within):
		t.Fatalf("node %d still running %v after SIGINT", p.id, within)
	}
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func TestNodeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildDemo()
	if err != nil {
		t.Fatal(err)
	}
	procs := nodeProcs(t, 3, func(id int, ports [][3]int) []string {
		if id == 1 {
			return []string{"-bootstrap"}
		}
		if id == 3 {
			// Join through node 1's gossip address; node 2 uses its API.
			return []string{"-join", "127.0.0.1:" + strconv.Itoa(ports[0][2])}
		}
		return []string{"-join", "http://127.0.0.1:" + strconv.Itoa(ports[0][1])}
	})
	procs[0].start(t, bin)
	testutil.WaitFor(t, 20*time.Second, "node 1 to lead", func() bool {
		code, body := do(t, "GET", procs[0].kv+"/api/cluster", "")
		return code == 200 && jsonLeader(body) == "1"
	})
	procs[1].start(t, bin)
	procs[2].start(t, bin)
	waitVoters(t, procs[0], 3)

	if code, body := do(t, "PUT", procs[1].kv+"/kv/color", "blue"); code != 204 {
		t.Fatalf("PUT on node 2: %d %s", code, body)
	}
	for _, p := range procs {
		testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("node %d to serve color", p.id), func() bool {
			code, body := do(t, "GET", p.kv+"/kv/color", "")
			return code == 200 && body == "blue"
		})
	}

	// kill -9 the leader.
	_, body := do(t, "GET", procs[2].kv+"/api/cluster", "")
	leader, _ := strconv.Atoi(jsonLeader(body))
	if leader < 1 || leader > 3 {
		t.Fatalf("no leader in %s", body)
	}
	victim := procs[leader-1]
	victim.kill()
	var survivors []*proc
	for _, p := range procs {
		if p != victim {
			survivors = append(survivors, p)
		}
	}
	start := time.Now()
	testutil.WaitFor(t, 10*time.Second, "a write on a survivor after the leader died", func() bool {
		code, _ := do(t, "PUT", survivors[0].kv+"/kv/shape", "circle")
		return code == 204
	})
	t.Logf("writes resumed %v after killing leader %d", time.Since(start).Round(time.Millisecond), victim.id)
	for _, p := range survivors {
		if code, body := do(t, "GET", p.kv+"/kv/shape?consistent=true", ""); code != 200 || body != "circle" {
			t.Fatalf("consistent GET on survivor %d: %d %q", p.id, code, body)
		}
	}
	if code, body := do(t, "PUT", survivors[1].kv+"/kv/size", "large"); code != 204 {
		t.Fatalf("PUT on survivor %d: %d %s", survivors[1].id, code, body)
	}

	// Restart it on its data: it comes back and catches up.
	victim.start(t, bin)
	testutil.WaitFor(t, 20*time.Second, "the restarted node to catch up", func() bool {
		c1, b1 := do(t, "GET", victim.kv+"/kv/shape", "")
		c2, b2 := do(t, "GET", victim.kv+"/kv/size", "")
		return c1 == 200 && b1 == "circle" && c2 == 200 && b2 == "large"
	})
	if code, body := do(t, "GET", victim.kv+"/kv/color", ""); code != 200 || body != "blue" {
		t.Fatalf("restarted node lost color: %d %q", code, body)
	}

	// Ctrl-C stops each process cleanly.
	for _, p := range procs {
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("node %d exited with %v after SIGINT", p.id, p.err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("node %d still running 20s after SIGINT", p.id)
		}
	}
}

func decodeView(body string) clusterView {
	var v clusterView
	_ = json.Unmarshal([]byte(body), &v)
	return v
}

func jsonLeader(body string) string { return decodeView(body).LeaderID }

// nodeProcs prepares n "demo node" processes on 127.0.0.1 with free ports
// (raft, API, gossip) and a demo HTTP port each; extra gives each node's
// cluster-forming flags. Every process is killed at the end of the test.
func nodeProcs(t *testing.T, n int, extra func(id int, ports [][3]int) []string) []*proc {
	t.Helper()
	dir := t.TempDir()
	ports := make([][3]int, n)
	for i := range ports {
		ports[i] = [3]int{freePort(t), freePort(t), freePort(t)}
	}
	var procs []*proc
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
		if t.Failed() {
			for _, p := range procs {
				b, _ := os.ReadFile(p.log)
				t.Logf("--- node %d log ---\n%s", p.id, b)
			}
		}
	})
	for id := 1; id <= n; id++ {
		httpPort := freePort(t)
		data := filepath.Join(dir, "node"+strconv.Itoa(id))
		args := []string{"node", "-id", strconv.Itoa(id), "-bind", "127.0.0.1",
			"-raft-port", strconv.Itoa(ports[id-1][0]), "-config-port", strconv.Itoa(ports[id-1][1]),
			"-gossip-port", strconv.Itoa(ports[id-1][2]),
			"-http", "127.0.0.1:" + strconv.Itoa(httpPort),
			"-data", data}
		procs = append(procs, &proc{id: id, args: append(args, extra(id, ports)...),
			log:  filepath.Join(dir, fmt.Sprintf("node%d.log", id)),
			kv:   "http://127.0.0.1:" + strconv.Itoa(httpPort),
			api:  "http://127.0.0.1:" + strconv.Itoa(ports[id-1][1]),
			data: data})
	}
	return procs
}

// waitVoters waits until p's dashboard shows want voters and a leader.
// (Reachability is not required: after an -expect formation canoe does not
// know the other followers' API ports; see the report.)
func waitVoters(t *testing.T, p *proc, want int) {
	t.Helper()
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last GET /api/cluster on node %d: %s", p.id, last)
		}
	}()
	testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("%d voters and a leader", want), func() bool {
		code, body := do(t, "GET", p.kv+"/api/cluster", "")
		last = body
		if code != 200 {
			return false
		}
		v := decodeView(body)
		voters := 0
		for _, n := range v.Nodes {
			if n.Voter {
				voters++
			}
		}
		return voters == want && v.LeaderID != ""
	})
}

// TestNodeProcessesExpect forms a cluster with no founder: three processes
// started with -expect 3 find each other by gossip. As in the README, every
// node is given the same seeds, its own address among them.
func TestNodeProcessesExpect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildDemo()
	if err != nil {
		t.Fatal(err)
	}
	procs := nodeProcs(t, 3, func(id int, ports [][3]int) []string {
		var seeds []string
		for _, p := range ports {
			seeds = append(seeds, "127.0.0.1:"+strconv.Itoa(p[2]))
		}
		return []string{"-expect", "3", "-join", strings.Join(seeds, ",")}
	})
	for _, p := range procs {
		p.start(t, bin)
	}
	waitVoters(t, procs[2], 3)
	if code, body := do(t, "PUT", procs[0].kv+"/kv/formed", "by-gossip"); code != 204 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	for _, p := range procs {
		if code, body := do(t, "GET", p.kv+"/kv/formed?consistent=true", ""); code != 200 || body != "by-gossip" {
			t.Fatalf("GET on node %d: %d %q", p.id, code, body)
		}
	}
}

// TestNodeProcessesReadReplica: a -nonvoter node joins as a read replica:
// the dashboard's /api/cluster marks it, it serves consistent reads, and a
// POST /peers/promote on another member's canoe API makes it a voter.
func TestNodeProcessesReadReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildDemo()
	if err != nil {
		t.Fatal(err)
	}
	procs := nodeProcs(t, 3, func(id int, ports [][3]int) []string {
		switch id {
		case 1:
			return []string{"-bootstrap"}
		case 2:
			return []string{"-join", "http://127.0.0.1:" + strconv.Itoa(ports[0][1])}
		}
		return []string{"-join", "http://127.0.0.1:" + strconv.Itoa(ports[0][1]), "-nonvoter"}
	})
	procs[0].start(t, bin)
	testutil.WaitFor(t, 20*time.Second, "node 1 to lead", func() bool {
		code, body := do(t, "GET", procs[0].kv+"/api/cluster", "")
		return code == 200 && jsonLeader(body) == "1"
	})
	procs[1].start(t, bin)
	procs[2].start(t, bin)
	waitVoters(t, procs[0], 2)
	replicaShown := func(p *proc) (bool, string) {
		code, body := do(t, "GET", p.kv+"/api/cluster", "")
		if code != 200 {
			return false, body
		}
		for _, n := range decodeView(body).Nodes {
			if n.ID == "3" {
				return !n.Voter && n.Replica, body
			}
		}
		return false, body
	}
	for _, p := range procs {
		testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("node %d's dashboard to show node 3 as a read replica", p.id), func() bool {
			ok, _ := replicaShown(p)
			return ok
		})
	}
	if code, body := do(t, "PUT", procs[0].kv+"/kv/color", "green"); code != 204 {
		t.Fatalf("PUT on node 1: %d %s", code, body)
	}
	if code, body := do(t, "GET", procs[2].kv+"/kv/color?consistent=true", ""); code != 200 || body != "green" {
		t.Fatalf("consistent GET on the replica: %d %q", code, body)
	}
	if code, body := do(t, "POST", procs[1].api+"/peers/promote", `{"id":3}`); code != 200 {
		t.Fatalf("POST /peers/promote on node 2: %d %s", code, body)
	}
	waitVoters(t, procs[0], 3)
	if ok, body := replicaShown(procs[0]); ok {
		t.Fatalf("node 3 still shown as a read replica after its promotion: %s", body)
	}
}

// TestNodeInterruptWhileJoining: the first Ctrl-C ends a node that is
// still trying to join, at once.
func TestNodeInterruptWhileJoining(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildDemo()
	if err != nil {
		t.Fatal(err)
	}
	dead := freePort(t) // nothing listens there
	procs := nodeProcs(t, 1, func(int, [][3]int) []string {
		return []string{"-join", "http://127.0.0.1:" + strconv.Itoa(dead)}
	})
	p := procs[0]
	p.start(t, bin)
	testutil.WaitFor(t, 20*time.Second, "a failed join attempt in the log", func() bool {
		b, _ := os.ReadFile(p.log)
		return strings.Contains(string(b), "join attempt failed")
	})
	begin := time.Now()
	p.interrupt(t, 5*time.Second)
	t.Logf("exited %v after SIGINT", time.Since(begin).Round(time.Millisecond))
}
