package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// The operator command as a user runs it: the canoe binary against "demo
// node" processes.

// binDir is where buildBins put the binaries; "" before it ran.
var binDir atomic.Value

// buildBins compiles the canoe and demo commands once per test run.
var buildBins = sync.OnceValues(func() (dir string, err error) {
	dir, err = os.MkdirTemp("", "canoe-cli-bin-")
	if err != nil {
		return "", err
	}
	binDir.Store(dir)
	for _, pkg := range []string{".", "../demo"} {
		out, err := exec.Command("go", "build", "-o", dir, pkg).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, ok := binDir.Load().(string); ok {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

const testSecret = "0123456789abcdef" // 16 bytes

// demoNode is one "demo node" process.
type demoNode struct {
	id                     int
	raft, api, gossip, kvP int
	data, log              string
	args                   []string
	cmd                    *exec.Cmd
	done                   chan struct{}
	waitErr                error
}

func (n *demoNode) apiURL() string { return "http://127.0.0.1:" + strconv.Itoa(n.api) }
func (n *demoNode) kvURL() string  { return "http://127.0.0.1:" + strconv.Itoa(n.kvP) }

func (n *demoNode) start(t *testing.T, bin string) {
	t.Helper()
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(filepath.Join(bin, "demo"), n.args...)
	n.cmd.Stdout, n.cmd.Stderr = f, f
	n.cmd.Env = append(os.Environ(), "CANOE_SECRET="+testSecret)
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	n.done = done
	cmd := n.cmd
	go func() {
		n.waitErr = cmd.Wait()
		f.Close()
		close(done)
	}()
}

// stop sends sig and waits for the process to exit.
func (n *demoNode) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		t.Fatalf("node %d still running 30s after %v", n.id, sig)
	}
	n.cmd = nil
}

func (n *demoNode) logText() string {
	b, _ := os.ReadFile(n.log)
	return string(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newDemoNode prepares node id with free ports and a data dir under dir;
// extra are its cluster-forming flags.
func newDemoNode(t *testing.T, dir string, id int, extra ...string) *demoNode {
	n := &demoNode{id: id, raft: freePort(t), api: freePort(t), gossip: freePort(t), kvP: freePort(t),
		data: filepath.Join(dir, fmt.Sprintf("node%d", id)), log: filepath.Join(dir, fmt.Sprintf("node%d.log", id))}
	n.args = append([]string{"node", "-id", strconv.Itoa(id), "-bind", "127.0.0.1",
		"-raft-port", strconv.Itoa(n.raft), "-config-port", strconv.Itoa(n.api), "-gossip-port", strconv.Itoa(n.gossip),
		"-http", "127.0.0.1:" + strconv.Itoa(n.kvP), "-data", n.data}, extra...)
	return n
}

// result is one run of the canoe binary.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// canoeCmd runs the canoe binary with env (added to a clean environment)
// and args.
func canoeCmd(t *testing.T, bin string, env map[string]string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "canoe"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run canoe %v: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// expect checks r's exit code and that its stdout and stderr contain the
// given strings.
func expect(t *testing.T, what string, r result, code int, stdout, stderr []string) {
	t.Helper()
	ok := r.code == code
	for _, s := range stdout {
		ok = ok && strings.Contains(r.stdout, s)
	}
	for _, s := range stderr {
		ok = ok && strings.Contains(r.stderr, s)
	}
	if !ok {
		t.Errorf("%s: want exit %d, stdout with %q, stderr with %q; got %v", what, code, stdout, stderr, r)
	}
}

// peers runs "canoe peers -json" at addr and decodes it.
func peers(t *testing.T, bin string, env map[string]string) (peersOutput, result) {
	t.Helper()
	r := canoeCmd(t, bin, env, "peers", "-json")
	var out peersOutput
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("peers -json printed no JSON: %v\n%v", err, r)
		}
	}
	return out, r
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// nodeEnv is the environment that points canoe at n, with the secret.
func nodeEnv(n *demoNode) map[string]string {
	return map[string]string{"CANOE_ADDR": n.apiURL(), "CANOE_SECRET": testSecret}
}

// startCluster starts three "demo node" processes with the test secret in
// dir (node 1 founds the cluster, the others join through its API), waits
// until all three are voters, and returns them with the membership as
// node 3 shows it. Every process is killed at the end of the test, and
// their logs shown if it failed.
func startCluster(t *testing.T, bin, dir string) ([]*demoNode, peersOutput) {
	t.Helper()
	n1 := newDemoNode(t, dir, 1, "-bootstrap")
	join := []string{"-join", n1.apiURL()}
	nodes := []*demoNode{n1, newDemoNode(t, dir, 2, join...), newDemoNode(t, dir, 3, join...)}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.cmd != nil {
				_ = n.cmd.Process.Kill()
				<-n.done
			}
		}
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("--- node %d log ---\n%s", n.id, n.logText())
			}
		}
	})
	n1.start(t, bin)
	testutil.WaitFor(t, 20*time.Second, "node 1 to lead", func() bool {
		out, r := peers(t, bin, nodeEnv(n1))
		return r.code == 0 && out.LeaderID == 1
	})
	nodes[1].start(t, bin)
	nodes[2].start(t, bin)
	var view peersOutput
	testutil.WaitFor(t, 30*time.Second, "three voters", func() bool {
		out, r := peers(t, bin, nodeEnv(nodes[2]))
		voters := 0
		for _, m := range out.Members {
			if m.Suffrage == "voter" {
				voters++
			}
		}
		view = out
		return r.code == 0 && voters == 3
	})
	return nodes, view
}

// TestOperatorCommand runs every subcommand of canoe against three demo
// node processes with a cluster secret: peers, status, transfer and
// remove with their output and errors (wrong or missing secret, an
// unreachable node, a server that is not canoe, bad command lines), then a
// loss of quorum recovered with "canoe recover" and a restart, and a lost
// node coming back with an empty data directory.
func TestOperatorCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildBins()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nodes, view := startCluster(t, bin, dir)
	n1 := nodes[0]
	env := nodeEnv

	// peers, asked at a follower: the leader's view, with last contacts.
	if view.ViewOf != view.LeaderID {
		t.Errorf("peers at a follower shows node %d's view, want the leader's (%d)", view.ViewOf, view.LeaderID)
	}
	for _, m := range view.Members {
		n := nodes[m.ID-1]
		if m.RaftAddress != "127.0.0.1:"+strconv.Itoa(n.raft) || m.APIAddress != "127.0.0.1:"+strconv.Itoa(n.api) {
			t.Errorf("peers: member %d at raft %s, API %s; want ports %d and %d", m.ID, m.RaftAddress, m.APIAddress, n.raft, n.api)
		}
		if (m.ID == view.LeaderID) != m.Leader || (m.LastContactMs == nil) != m.Leader {
			t.Errorf("peers: member %+v: want the leader flagged and last contacts for the followers only", m)
		}
	}
	r := canoeCmd(t, bin, env(nodes[1]), "peers")
	t.Logf("canoe peers:\n%s", r.stdout)
	expect(t, "peers", r, 0, []string{"ID  RAFT ADDRESS", "LAST CONTACT", "127.0.0.1:" + strconv.Itoa(n1.raft)}, nil)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 4 || strings.Count(r.stdout, " * ") != 1 {
		t.Errorf("peers: want a header, three rows and one leader mark:\n%s", r.stdout)
	}
	r = canoeCmd(t, bin, env(nodes[1]), "status")
	t.Logf("canoe status:\n%s", r.stdout)
	expect(t, "status", r, 0, []string{"node           2", "state          Follower", "members        3 (3 voters)"}, nil)
	r = canoeCmd(t, bin, env(nodes[1]), "status", "-json")
	var st struct {
		ID       uint64 `json:"id"`
		LeaderID uint64 `json:"leader_id"`
		Members  []any  `json:"members"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.ID != 2 || st.LeaderID == 0 || len(st.Members) != 3 {
		t.Errorf("status -json: %+v (%v)\n%v", st, err, r)
	}

	// Errors.
	noSecret := map[string]string{"CANOE_ADDR": n1.apiURL()}
	expect(t, "without the secret", canoeCmd(t, bin, noSecret, "peers"), 1, nil, []string{"requires a signed request", "CANOE_SECRET"})
	wrong := map[string]string{"CANOE_ADDR": n1.apiURL(), "CANOE_SECRET": "fedcba9876543210"}
	expect(t, "with a wrong secret", canoeCmd(t, bin, wrong, "status"), 1, nil, []string{"refused the signature", "bad signature", "CANOE_SECRET"})
	expect(t, "with a wrong cluster ID", canoeCmd(t, bin, env(n1), "status", "-cluster-id", "7"), 1, nil, []string{"refused the signature"})
	expect(t, "unreachable", canoeCmd(t, bin, env(n1), "peers", "-addr", "127.0.0.1:"+strconv.Itoa(freePort(t))), 1, nil, []string{"cannot reach a canoe node", "connection refused"})
	expect(t, "the demo's KV port", canoeCmd(t, bin, env(n1), "status", "-addr", n1.kvURL()), 1, nil, []string{"is not a canoe node's API", "404"})
	foreign := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>hello</html>")
	}), ReadHeaderTimeout: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = foreign.Serve(ln) }()
	t.Cleanup(func() { foreign.Close() })
	expect(t, "a web server", canoeCmd(t, bin, env(n1), "peers", "-addr", "http://"+ln.Addr().String()), 1, nil, []string{"is not a canoe node's API", "<html>hello</html>"})
	for _, bad := range [][]string{
		{"bogus"}, {}, {"remove"}, {"remove", "abc"}, {"remove", "0"}, {"remove", "1", "2"}, {"transfer", "-to", "x"},
		{"peers", "extra"}, {"peers", "-addr", "ftp://h:1"}, {"status", "-nope"}, {"status", "-secret", "short"},
		{"recover"}, {"recover", "-data", dir}, {"recover", "-data", dir, "-members", "1@h"},
	} {
		expect(t, fmt.Sprintf("canoe %q", bad), canoeCmd(t, bin, env(n1), bad...), 2, nil, nil)
	}
	expect(t, "help", canoeCmd(t, bin, nil, "help"), 0, []string{"peers", "status", "transfer", "remove", "recover"}, nil)
	expect(t, "remove -h", canoeCmd(t, bin, nil, "remove", "-h"), 0, nil, []string{"-addr", "CANOE_SECRET"})

	// transfer: asked at a follower, it finds the leader; then to a named voter.
	before := view.LeaderID
	r = canoeCmd(t, bin, env(nodes[(before)%3]), "transfer", "-json")
	var moved transferOutput
	if err := json.Unmarshal([]byte(r.stdout), &moved); r.code != 0 || err != nil || moved.PreviousLeaderID != before || moved.LeaderID == 0 || moved.LeaderID == before {
		t.Fatalf("transfer -json at a follower: %+v (%v)\n%v", moved, err, r)
	}
	target := 1
	if moved.LeaderID == 1 {
		target = 2
	}
	expect(t, "transfer -to", canoeCmd(t, bin, env(n1), "transfer", "-to", strconv.Itoa(target)), 0,
		[]string{fmt.Sprintf("leadership moved from %d to %d", moved.LeaderID, target)}, nil)
	expect(t, "transfer to its leader", canoeCmd(t, bin, env(n1), "transfer", "-to", strconv.Itoa(target)), 0, []string{"already leads"}, nil)
	expect(t, "transfer to a stranger", canoeCmd(t, bin, env(n1), "transfer", "-to", "99"), 1, nil, []string{"99 is not a member"})

	// remove: a stranger, then node 3.
	expect(t, "remove a stranger", canoeCmd(t, bin, env(n1), "remove", "99"), 1, nil, []string{"99 is not a member"})
	expect(t, "remove 3", canoeCmd(t, bin, env(nodes[1]), "remove", "3"), 0, []string{"removed member 3"}, nil)
	out, r := peers(t, bin, env(n1))
	if r.code != 0 || len(out.Members) != 2 {
		t.Fatalf("after remove 3: %+v\n%v", out, r)
	}
	nodes[2].stop(t, syscall.SIGKILL)

	// Quorum loss: node 2 is gone for good, with its data.
	if code, body := httpDo(t, "PUT", n1.kvURL()+"/kv/kept", "acknowledged"); code != 204 {
		t.Fatalf("PUT before the loss: %d %s", code, body)
	}
	nodes[1].stop(t, syscall.SIGKILL)
	if err := os.RemoveAll(nodes[1].data); err != nil {
		t.Fatal(err)
	}
	member := "1@127.0.0.1:" + strconv.Itoa(n1.raft)
	expect(t, "recover on a running node", canoeCmd(t, bin, nil, "recover", "-data", n1.data, "-members", member), 1, nil, []string{"in use", "stop the node first"})
	n1.stop(t, syscall.SIGINT)
	expect(t, "recover without this node", canoeCmd(t, bin, nil, "recover", "-data", n1.data, "-members", "2@127.0.0.1:"+strconv.Itoa(nodes[1].raft)), 2, nil, []string{"not among the members"})
	expect(t, "recover on an empty directory", canoeCmd(t, bin, nil, "recover", "-data", t.TempDir(), "-members", member), 1, nil, []string{"holds no node state"})
	r = canoeCmd(t, bin, nil, "recover", "-data", n1.data, "-members", member, "-json")
	var req recoverOutput
	if err := json.Unmarshal([]byte(r.stdout), &req); r.code != 0 || err != nil || req.Request != filepath.Join(n1.data, "recover.json") || len(req.Members) != 1 {
		t.Fatalf("recover -json: %+v (%v)\n%v", req, err, r)
	}
	expect(t, "recover", canoeCmd(t, bin, nil, "recover", "-data", n1.data, "-members", member), 0, []string{"recover.json", "member 1 at " + member[2:], "start the node"}, nil)

	n1.start(t, bin)
	testutil.WaitFor(t, 20*time.Second, "the recovered node to lead alone", func() bool {
		out, r := peers(t, bin, env(n1))
		return r.code == 0 && out.LeaderID == 1 && len(out.Members) == 1
	})
	if !strings.Contains(n1.logText(), "recovered the cluster") {
		t.Errorf("the recovered node logged nothing about the recovery")
	}
	if _, err := os.Stat(filepath.Join(n1.data, "recover.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("recover.json is still there after the start (%v)", err)
	}
	if code, body := httpDo(t, "GET", n1.kvURL()+"/kv/kept", ""); code != 200 || body != "acknowledged" {
		t.Errorf("after the recovery: GET kept = %d %q, want the acknowledged write", code, body)
	}
	if code, body := httpDo(t, "PUT", n1.kvURL()+"/kv/after", "recovery"); code != 204 {
		t.Errorf("PUT after the recovery: %d %s", code, body)
	}

	// Node 2 comes back as the README says: an empty data dir, joining.
	nodes[1].start(t, bin)
	testutil.WaitFor(t, 30*time.Second, "node 2 to be a voter again", func() bool {
		out, r := peers(t, bin, env(n1))
		return r.code == 0 && len(out.Members) == 2 && out.Members[1].Suffrage == "voter"
	})
	testutil.WaitFor(t, 10*time.Second, "node 2 to hold both writes", func() bool {
		c1, b1 := httpDo(t, "GET", nodes[1].kvURL()+"/kv/kept", "")
		c2, b2 := httpDo(t, "GET", nodes[1].kvURL()+"/kv/after", "")
		return c1 == 200 && b1 == "acknowledged" && c2 == 200 && b2 == "recovery"
	})
	n1.stop(t, syscall.SIGINT)
	nodes[1].stop(t, syscall.SIGINT)
}
