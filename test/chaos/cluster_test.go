package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

// buildNode builds test/chaos/node into dir (with -race when this test
// binary has it, so data races in canoe under faults fail the run). It
// returns "" and the reason when the binary cannot be built.
func buildNode(dir string) (string, error) {
	bin := filepath.Join(dir, "chaosnode")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/canoe-raft/canoe/test/chaos/node")
	cmd := exec.Command("go", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago (and
// whose UDP twin was free too, for gossip).
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		uc.Close()
		return p
	}
	t.Fatal("no free port")
	return 0
}

// proc is one node: its ports, data dir and current process.
type proc struct {
	idx                                int
	id                                 uint64
	adv                                string // advertised address, served by faultNet
	raftPort, apiPort, gossipPort, kvP int
	dataDir, logPath                   string
	bootstrap                          bool     // founds the cluster (node 0)
	nonVoter                           bool     // a read replica (-nonvoter): never a voter
	join                               string   // -join URL ("": none)
	extra                              []string // more flags for the next start (a test's own)

	mu       sync.Mutex // guards cmd, exited, expected, paused, starts
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
	expected bool          // the schedule is ending this process
	paused   bool
	starts   int
}

// cluster runs the node processes of one schedule.
type cluster struct {
	t      testing.TB
	bin    string
	dir    string
	run    int
	net    *faultNet
	client *http.Client
	api    *httpconfig.Client // the nodes' canoe HTTP API
	start  time.Time

	secret string // every node's ClusterSecret: the suite runs with the trust boundary on

	mu         sync.Mutex // guards the fields below
	nodes      []*proc    // every node of the schedule, by index; grows with membership faults
	members    []int      // indices of the current members, ascending
	removed    []int      // indices of the nodes membership faults removed
	unexpected []string   // processes that exited without the schedule ending them
	leaders    map[uint64]map[uint64]bool
	leaderObs  int // LeaderChanged lines printed by the nodes
	procWG     sync.WaitGroup
}

// advBase spreads concurrent runs over different loopback addresses; the
// ports differ anyway.
func advAddr(run, idx int) string {
	return fmt.Sprintf("127.0.%d.%d", 1+run%250, 11+idx)
}

// replicas is how many read replicas (-nonvoter nodes) every schedule's
// cluster has besides its voters; they come last in the node list.
const replicas = 1

// newCluster prepares n voters and the read replicas.
func newCluster(t testing.TB, bin, dir string, n, run int, seed int64) *cluster {
	secret := fmt.Sprintf("chaos-secret-%019d", seed)[:32]
	c := &cluster{
		t: t, bin: bin, dir: dir, run: run, net: newFaultNet(seed),
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		api:     httpconfig.NewClient(nil, []byte(secret), canoe.DefaultClusterID),
		secret:  secret,
		leaders: map[uint64]map[uint64]bool{},
		start:   time.Now(),
	}
	for i := range n + replicas {
		join := ""
		if i > 0 {
			join = c.nodes[0].joinURL()
		}
		p, err := c.newProc(join)
		if err != nil {
			c.net.close()
			t.Fatal(err)
		}
		p.nonVoter = i >= n
		c.members = append(c.members, i)
	}
	c.nodes[0].bootstrap = true
	return c
}

// newProc adds the next node (index len(c.nodes), ID 0xc0de00+index, a
// fresh data dir) with its proxies, not yet started and not yet a member;
// join is its -join URL.
func (c *cluster) newProc(join string) (*proc, error) {
	c.mu.Lock()
	i := len(c.nodes)
	c.mu.Unlock()
	p := &proc{
		idx: i, id: uint64(0xc0de00 + i), adv: advAddr(c.run, i),
		raftPort: freePort(c.t), apiPort: freePort(c.t), gossipPort: freePort(c.t), kvP: freePort(c.t),
		dataDir: filepath.Join(c.dir, fmt.Sprintf("n%d", i)),
		logPath: filepath.Join(c.dir, fmt.Sprintf("n%d.log", i)),
		join:    join,
	}
	if err := c.net.addNode(i, p.adv, p.gossipPort, p.raftPort, p.apiPort); err != nil {
		return nil, fmt.Errorf("proxy for node %d: %v", i, err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, p)
	c.mu.Unlock()
	return p, nil
}

// joinURL is p's canoe HTTP API as the other nodes reach it: through the
// proxy, so faults apply to joins and forwarded requests.
func (p *proc) joinURL() string {
	return "http://" + net.JoinHostPort(p.adv, strconv.Itoa(p.apiPort))
}

// apiURL is p's canoe HTTP API as the test reaches it: directly, like the
// KV API, since the test is no node.
func (p *proc) apiURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(p.apiPort)
}

// proc returns node idx.
func (c *cluster) proc(idx int) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[idx]
}

// procs returns every node of the schedule, removed ones included.
func (c *cluster) procs() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*proc(nil), c.nodes...)
}

// memberIdx returns the indices of the current members.
func (c *cluster) memberIdx() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.members...)
}

// memberProcs returns the current members.
func (c *cluster) memberProcs() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*proc, len(c.members))
	for i, idx := range c.members {
		out[i] = c.nodes[idx]
	}
	return out
}

// setMember makes node idx a member (a workload target, covered by the
// final checks) or not.
func (c *cluster) setMember(idx int, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = slices.DeleteFunc(c.members, func(i int) bool { return i == idx })
	if on {
		c.members = append(c.members, idx)
		slices.Sort(c.members)
	}
}

func (c *cluster) args(p *proc) []string {
	a := []string{
		"-id", strconv.FormatUint(p.id, 10), "-data", p.dataDir,
		"-raft-port", strconv.Itoa(p.raftPort), "-api-port", strconv.Itoa(p.apiPort),
		"-gossip-port", strconv.Itoa(p.gossipPort), "-kv-port", strconv.Itoa(p.kvP),
		"-bind", "127.0.0.1", "-advertise", p.adv, "-secret", c.secret,
	}
	if p.bootstrap {
		a = append(a, "-bootstrap")
	}
	if p.join != "" {
		a = append(a, "-join", p.join)
	}
	if p.nonVoter {
		a = append(a, "-nonvoter")
	}
	return append(a, p.extra...)
}

// startProc starts p's process (fresh or on its existing data dir).
func (c *cluster) startProc(p *proc) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== start %s\n", time.Now().Format("15:04:05.000"))
	cmd := exec.Command(c.bin, c.args(p)...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.expected, p.paused = cmd, exited, false, false
	p.starts++
	p.mu.Unlock()
	c.net.setPID(p.idx, cmd.Process.Pid)
	c.procWG.Add(1)
	go func() {
		defer c.procWG.Done()
		c.readEvents(p, stdout)
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		expected := p.expected
		p.mu.Unlock()
		close(exited)
		if !expected {
			c.mu.Lock()
			c.unexpected = append(c.unexpected, fmt.Sprintf("node %d (pid %d) exited at +%v: %v", p.idx, cmd.Process.Pid, c.since(), err))
			c.mu.Unlock()
		}
	}()
	return nil
}

func (c *cluster) since() time.Duration { return time.Since(c.start).Round(time.Millisecond) }

// readEvents consumes the node's JSON event lines until its stdout closes.
func (c *cluster) readEvents(p *proc, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var ev struct {
			Event  string
			Leader uint64
			Term   uint64
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Event == "leader" {
			c.mu.Lock()
			c.leaderObs++
			c.mu.Unlock()
		}
	}
}

// kill sends sig (SIGKILL or SIGTERM) to p and waits for it to exit.
func (c *cluster) kill(p *proc, sig syscall.Signal) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.expected = true
	paused := p.paused
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("node %d did not exit on %v within 20s", p.idx, sig)
	}
	c.net.setPID(p.idx, 0)
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	if sig == syscall.SIGTERM && cmd.ProcessState.ExitCode() != 0 {
		return fmt.Errorf("node %d exited with %v after SIGTERM", p.idx, cmd.ProcessState)
	}
	return nil
}

// pause sends SIGSTOP (on) or SIGCONT (off) to p.
func (c *cluster) pause(p *proc, on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	sig := syscall.SIGCONT
	if on {
		sig = syscall.SIGSTOP
	}
	p.paused = on
	return p.cmd.Process.Signal(sig)
}

// stopAll ends every process and the proxies, and waits for them.
func (c *cluster) stopAll() {
	for _, p := range c.procs() {
		_ = c.kill(p, syscall.SIGKILL)
	}
	c.procWG.Wait()
	c.net.close()
	c.client.CloseIdleConnections()
	c.api.Close()
}

func (p *proc) kvURL(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(p.kvP) + path
}

// nodeStatus mirrors the node's GET /status.
type nodeStatus struct {
	ID            uint64 `json:"id"`
	State         string `json:"state"`
	LeaderID      uint64 `json:"leader_id"`
	Term          uint64 `json:"term"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	LastIndex     uint64 `json:"last_index"`
	Members       int    `json:"members"`
	Voters        int    `json:"voters"`
	LeaderTerm    uint64 `json:"leader_term"`
	Commands      uint64 `json:"commands"`
	Keys          int    `json:"keys"`
	Hash          string `json:"hash"`
	SnapsTaken    int    `json:"snapshots_taken"`
	SnapsRestored int    `json:"snapshots_restored"`
}

func (c *cluster) status(ctx context.Context, p *proc) (nodeStatus, error) {
	var st nodeStatus
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.kvURL("/status"), nil)
	resp, err := c.client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// recordLeader notes that node id reported leading term.
func (c *cluster) recordLeader(term, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaders[term] == nil {
		c.leaders[term] = map[uint64]bool{}
	}
	c.leaders[term][id] = true
}

// poll asks every node for its status every interval until ctx ends,
// records self-reported leaders per term and measures the longest stretch
// with no node reporting itself leader.
func (c *cluster) poll(ctx context.Context, interval time.Duration) (maxNoLeader time.Duration) {
	var lastLeader time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		now := time.Now()
		sts := c.statuses(ctx, 500*time.Millisecond, c.procs())
		have := false
		for _, st := range sts {
			if st != nil && st.LeaderTerm > 0 {
				c.recordLeader(st.LeaderTerm, st.ID)
				have = true
			}
		}
		if have {
			lastLeader = now
		} else if !lastLeader.IsZero() {
			maxNoLeader = max(maxNoLeader, now.Sub(lastLeader))
		}
		select {
		case <-ctx.Done():
			return maxNoLeader
		case <-tick.C:
		}
	}
}

// statuses asks the nodes ps in parallel; nil for nodes that did not answer.
func (c *cluster) statuses(ctx context.Context, timeout time.Duration, ps []*proc) []*nodeStatus {
	out := make([]*nodeStatus, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if st, err := c.status(ctx, p); err == nil {
				out[i] = &st
			}
		}()
	}
	wg.Wait()
	return out
}

// leader returns the index of the member that reports itself leader in the
// highest term, or -1.
func (c *cluster) leader() int {
	best, term := -1, uint64(0)
	ps := c.memberProcs()
	for i, st := range c.statuses(context.Background(), 500*time.Millisecond, ps) {
		if st != nil && st.LeaderTerm > term {
			best, term = ps[i].idx, st.LeaderTerm
		}
	}
	return best
}

// waitFor polls cond every 50ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// boot starts node 0, waits for it to lead, then starts the others one by
// one, and waits until every node knows the leader and every node but the
// read replicas is a voter.
func (c *cluster) boot() error {
	ps := c.memberProcs()
	if err := c.startProc(ps[0]); err != nil {
		return err
	}
	if !waitFor(15*time.Second, func() bool { return c.leader() == 0 }) {
		return errors.New("node 0 did not become leader within 15s")
	}
	for _, p := range ps[1:] {
		if err := c.startProc(p); err != nil {
			return err
		}
	}
	n, voters := len(ps), len(ps)-replicas
	ok := waitFor(30*time.Second, func() bool {
		for _, st := range c.statuses(context.Background(), time.Second, ps) {
			if st == nil || st.Members != n || st.Voters != voters || st.LeaderID == 0 {
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("the %d nodes did not all become members (%d voters, %d read replicas) within 30s", n, voters, replicas)
	}
	return nil
}

// logTail returns the last n lines of p's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
