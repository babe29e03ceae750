// Package test holds canoe's integration tests: real nodes talking over real
// TCP on 127.0.0.1, with ports picked by the kernel and data in t.TempDir().
package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight, its own or
	// one it makes for another member: those goroutines end up to a probe
	// interval (1s with the LAN profile) after Shutdown. Everything canoe
	// starts is joined by Stop.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).handleIndirectPing.func2"))
}

// logWriter sends hclog's lines to t.Log until the test's cleanup ends, and
// drops them afterwards (t.Log after a test has finished panics).
type logWriter struct {
	t    testing.TB
	mu   sync.Mutex // guards done
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// newLogger returns an hclog logger at WARN that writes to t.Log.
func newLogger(t testing.TB) hclog.Logger {
	w := &logWriter{t: t}
	// Registered first, so it runs after every other cleanup (node stops).
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return hclog.New(&hclog.LoggerOptions{
		Name:   "canoe",
		Level:  hclog.Warn,
		Output: w,
	})
}

// errRefused is what recFSM.Apply returns for proposals starting with
// "fail:", on every node alike.
var errRefused = errors.New("recFSM refused the proposal")

// recFSM records every proposal it applies, in order. Proposals that start
// with "fail:" are refused with an error (deterministically) and counted;
// proposals that start with "pad:" (log filler) are applied and forgotten.
type recFSM struct {
	mu      sync.Mutex // guards entries, seen, failed
	entries []string
	seen    map[string]int
	failed  []string
}

func newFSM() *recFSM { return &recFSM{seen: make(map[string]int)} }

func (f *recFSM) Apply(d canoe.LogData) error {
	if bytes.HasPrefix(d, []byte("pad:")) {
		return nil
	}
	s := string(d)
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(s, "fail:") {
		f.failed = append(f.failed, s)
		return fmt.Errorf("%w: %s", errRefused, s)
	}
	f.entries = append(f.entries, s)
	f.seen[s]++
	return nil
}

type fsmState struct {
	Entries []string `json:"entries"`
	Failed  []string `json:"failed"`
}

func (f *recFSM) Snapshot() (canoe.SnapshotData, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return json.Marshal(fsmState{Entries: f.entries, Failed: f.failed})
}

func (f *recFSM) Restore(d canoe.SnapshotData) error {
	var st fsmState
	if err := json.Unmarshal(d, &st); err != nil {
		return err
	}
	seen := make(map[string]int, len(st.Entries))
	for _, e := range st.Entries {
		seen[e]++
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries, f.failed, f.seen = st.Entries, st.Failed, seen
	return nil
}

// streamRecFSM is recFSM with streamed snapshots (canoe.StreamingFSM), in
// recFSM's format, so that either reads the other's snapshots. It counts
// its RestoreStream calls; its []byte methods fail, so that a test notices
// canoe calling them.
type streamRecFSM struct {
	*recFSM
	restores atomic.Int64
}

func (f *streamRecFSM) Snapshot() (canoe.SnapshotData, error) {
	return nil, errors.New("Snapshot called on a StreamingFSM")
}

func (f *streamRecFSM) Restore(canoe.SnapshotData) error {
	return errors.New("Restore called on a StreamingFSM")
}

func (f *streamRecFSM) SnapshotStream() (func(io.Writer) error, error) {
	st := f.state()
	return func(w io.Writer) error { return json.NewEncoder(w).Encode(st) }, nil
}

func (f *streamRecFSM) RestoreStream(r io.Reader) error {
	var st fsmState
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	f.restores.Add(1)
	return f.recFSM.Restore(b)
}

// recOf returns the recFSM inside an FSM the helpers made, nil for others.
func recOf(f canoe.FSM) *recFSM {
	switch f := f.(type) {
	case *recFSM:
		return f
	case *streamRecFSM:
		return f.recFSM
	}
	return nil
}

func (f *recFSM) has(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[s] > 0
}

func (f *recFSM) state() fsmState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fsmState{Entries: slices.Clone(f.entries), Failed: slices.Clone(f.failed)}
}

func (f *recFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

// member is one node of a test cluster and what it needs to come back.
type member struct {
	node *canoe.Node
	fsm  *recFSM
	cfg  canoe.NodeConfig // the config it was last started with
	id   uint64
	url  string // its HTTP API base URL
}

func (m *member) String() string { return strconv.FormatUint(m.id, 16) }

// clusterOpts are what every node of a cluster shares.
type clusterOpts struct {
	logger   hclog.Logger  // nil: WARN and above to t.Log
	timing   *canoe.Timing // nil: LocalProfile
	secret   []byte
	tls      *tls.Config
	snapshot *canoe.SnapshotConfig
	logStore canoe.LogStore
	// streaming gives nodes a streamRecFSM; newFSM, when set, makes their
	// FSM instead (member.fsm is then nil unless it is a recFSM).
	streaming bool
	newFSM    func() canoe.FSM
	clusterID uint64
}

// cluster is a set of real nodes on 127.0.0.1. Every node is stopped in
// t.Cleanup.
type cluster struct {
	t       testing.TB
	logger  hclog.Logger
	opts    clusterOpts
	mu      sync.Mutex // guards members
	members []*member
}

// newCluster starts size nodes: the first founds the cluster, the others
// join it through the HTTP API (BootstrapPeers = the first node's URL). It
// returns once every node is a voter and all agree on one leader.
func newCluster(t testing.TB, size int, opts clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, logger: opts.logger, opts: opts}
	if c.logger == nil {
		c.logger = newLogger(t)
	}
	t.Cleanup(c.stopAll)
	first := c.mustStart(c.config(true))
	testutil.WaitFor(t, 10*time.Second, "the founding node to lead", first.node.IsLeader)
	for i := 1; i < size; i++ {
		c.mustStart(c.config(false, first.url))
	}
	c.waitVoters(size)
	c.leader()
	return c
}

func (c *cluster) scheme() string {
	if c.opts.tls != nil {
		return "https"
	}
	return "http"
}

// newFSM returns a fresh FSM for a node of c.
func (c *cluster) newFSM() canoe.FSM {
	switch {
	case c.opts.newFSM != nil:
		return c.opts.newFSM()
	case c.opts.streaming:
		return &streamRecFSM{recFSM: newFSM()}
	}
	return newFSM()
}

// config returns a new node's config: a fresh FSM and data dir, port 0.
func (c *cluster) config(bootstrap bool, peers ...string) canoe.NodeConfig {
	dir := c.t.TempDir()
	// Cleanups run last-in first-out: stop the nodes before dir is removed
	// (stopAll is idempotent).
	c.t.Cleanup(c.stopAll)
	timing := canoe.LocalProfile()
	if c.opts.timing != nil {
		timing = *c.opts.timing
	}
	return canoe.NodeConfig{
		FSM:            c.newFSM(),
		ClusterID:      c.opts.clusterID,
		BootstrapNode:  bootstrap,
		BootstrapPeers: peers,
		DataDir:        dir,
		BindAddr:       "127.0.0.1",
		Timing:         timing,
		Logger:         c.logger,
		ClusterSecret:  c.opts.secret,
		TLSConfig:      c.opts.tls,
		SnapshotConfig: c.opts.snapshot,
		LogStore:       c.opts.logStore,
	}
}

// start creates and starts a node from cfg and adds it to the cluster.
func (c *cluster) start(cfg canoe.NodeConfig) (*member, error) {
	n, err := canoe.NewNode(&cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		_ = n.Stop()
		return nil, err
	}
	m := &member{node: n, fsm: recOf(cfg.FSM), cfg: cfg, id: n.UniqueID()}
	m.url = c.urlOf(n)
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	return m, nil
}

func (c *cluster) mustStart(cfg canoe.NodeConfig) *member {
	c.t.Helper()
	m, err := c.start(cfg)
	if err != nil {
		c.t.Fatalf("start node: %v", err)
	}
	return m
}

func (c *cluster) urlOf(n *canoe.Node) string {
	self := n.Self()
	return c.scheme() + "://" + net.JoinHostPort(self.Host, strconv.Itoa(self.ConfigPort))
}

// restart stops m and starts a new Node on its DataDir with ID 0, its
// original ports left 0 (canoe reads both back from DataDir) and a fresh
// FSM, then checks it came back as the same member.
func (c *cluster) restart(m *member) {
	c.t.Helper()
	c.restartAfter(m, 0)
}

// restartAfter is restart with the node left stopped for down.
func (c *cluster) restartAfter(m *member, down time.Duration) {
	c.t.Helper()
	before := m.node.Self()
	if err := stopNode(m); err != nil {
		c.t.Fatalf("stop %v for restart: %v", m, err)
	}
	time.Sleep(down)
	cfg := m.cfg
	cfg.ID, cfg.RaftPort, cfg.ConfigurationPort = 0, 0, 0
	cfg.FSM = c.newFSM()
	n, err := canoe.NewNode(&cfg)
	if err != nil {
		c.t.Fatalf("NewNode for restart of %v: %v", m, err)
	}
	if got := n.UniqueID(); got != m.id {
		c.t.Fatalf("restarted node has ID %x, want %x (read back from DataDir)", got, m.id)
	}
	if err := n.Start(); err != nil {
		c.t.Fatalf("restart %v: %v", m, err)
	}
	c.mu.Lock()
	m.node, m.fsm, m.cfg = n, recOf(cfg.FSM), cfg
	c.mu.Unlock()
	after := n.Self()
	if after.ID != before.ID || after.RaftPort != before.RaftPort || after.ConfigPort != before.ConfigPort {
		c.t.Fatalf("restarted node is %+v, want the same ID and ports as before: %+v", after, before)
	}
}

// running returns the members whose node is running.
func (c *cluster) running() []*member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*member
	for _, m := range c.members {
		if m.node.IsRunning() {
			out = append(out, m)
		}
	}
	return out
}

// leader waits until exactly one running member leads and every running
// member names it, and returns it.
func (c *cluster) leader() *member {
	c.t.Helper()
	var leader *member
	testutil.WaitFor(c.t, 15*time.Second, "one leader all running nodes agree on", func() bool {
		leader = nil
		ms := c.running()
		for _, m := range ms {
			if m.node.IsLeader() {
				if leader != nil {
					return false
				}
				leader = m
			}
		}
		if leader == nil {
			return false
		}
		for _, m := range ms {
			if m.node.LeaderID() != leader.id {
				return false
			}
		}
		return true
	})
	return leader
}

// followers returns the running members other than the leader.
func (c *cluster) followers() []*member {
	c.t.Helper()
	l := c.leader()
	var out []*member
	for _, m := range c.running() {
		if m != l {
			out = append(out, m)
		}
	}
	return out
}

// waitVoters waits until every running node sees n members, all voters.
func (c *cluster) waitVoters(n int) {
	c.t.Helper()
	testutil.WaitFor(c.t, 20*time.Second, fmt.Sprintf("%d voters seen by every node", n), func() bool {
		for _, m := range c.running() {
			peers := m.node.Peers()
			if len(peers) != n {
				return false
			}
			for _, p := range peers {
				if !p.Voter {
					return false
				}
			}
		}
		return true
	})
}

// waitSameState waits until the FSMs of ms hold the same entries in the same
// order (and the same refused proposals), want entries each if want >= 0.
func waitSameState(t testing.TB, timeout time.Duration, want int, ms ...*member) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		states := make([]fsmState, len(ms))
		same := true
		for i, m := range ms {
			states[i] = m.fsm.state()
			if want >= 0 && len(states[i].Entries) != want {
				same = false
			}
			if i > 0 && (!slices.Equal(states[i].Entries, states[0].Entries) || !slices.Equal(states[i].Failed, states[0].Failed)) {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			for i, m := range ms {
				t.Errorf("node %v: %d entries, %d refused", m, len(states[i].Entries), len(states[i].Failed))
				if i > 0 {
					if k := firstDiff(states[0].Entries, states[i].Entries); k >= 0 {
						t.Errorf("node %v differs from node %v first at entry %d", m, ms[0], k)
					}
				}
			}
			t.Fatalf("FSMs not identical (want %d entries) after %v", want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// stopAll stops every node, the current leader first each time so that no
// Stop tries to hand leadership to a node already gone.
func (c *cluster) stopAll() {
	for {
		ms := c.running()
		if len(ms) == 0 {
			break
		}
		next := ms[0]
		for _, m := range ms {
			if m.node.IsLeader() {
				next = m
			}
		}
		if err := stopNode(next); err != nil {
			c.t.Errorf("stop %v: %v", next, err)
		}
	}
	// Nodes that stopped themselves (removed) or failed Start: Stop is
	// idempotent and must not fail.
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if err := stopNode(m); err != nil {
			c.t.Errorf("second stop of %v: %v", m, err)
		}
	}
}

// stopTimeout bounds Node.Stop in these tests: a Stop that hangs fails the
// test (with the goroutines that hold it up) instead of the whole run.
const stopTimeout = 20 * time.Second

// stopNode stops m's node, giving up after stopTimeout with an error that
// holds the stacks of raft's goroutines (the hung Stop is left behind, and
// goleak reports it at the end).
func stopNode(m *member) error {
	done := make(chan error, 1)
	n := m.node
	go func() { done <- n.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%w; goroutines of the HTTP API, raft and canoe after it:\n%s", err, raftStacks())
		}
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("Stop did not return within %v; raft goroutines:\n%s", stopTimeout, raftStacks())
	}
}

// raftStacks returns the stacks of the goroutines running raft, canoe or
// HTTP server code, to show what a hung or failed Stop waits for.
func raftStacks() string {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	var out []string
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "hashicorp/raft.") || strings.Contains(g, "canoe/canoe.") || strings.Contains(g, "net/http.(*conn).serve") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// propose proposes data on m with a generous deadline.
func propose(m *member, data string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return m.node.ProposeContext(ctx, []byte(data))
}

// mustPropose proposes data on m and fails the test unless it commits and
// m's FSM holds it right after (read-your-writes).
func mustPropose(t testing.TB, m *member, data string) {
	t.Helper()
	if err := propose(m, data); err != nil {
		t.Fatalf("propose %q on %v: %v", data, m, err)
	}
	if !m.fsm.has(data) {
		t.Fatalf("propose %q on %v returned nil but its FSM does not hold it", data, m)
	}
}

// deadURL returns an http URL on 127.0.0.1 where nothing listens: a port the
// kernel handed out and that was closed again.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// httpClient returns a plain http.Client whose idle connections are closed
// at cleanup (goleak would see their goroutines).
func httpClient(t testing.TB, tlsConfig *tls.Config) *http.Client {
	tr := &http.Transport{Proxy: nil, TLSClientConfig: tlsConfig, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// apiCall sends one raw request to the HTTP API and returns the status, the
// headers and the body.
func apiCall(t testing.TB, hc *http.Client, method, url string, header http.Header, body []byte) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// snapshot returns copies of the running members, safe to use while other
// goroutines restart nodes.
func (c *cluster) snapshot() []member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []member
	for _, m := range c.members {
		if m.node.IsRunning() {
			out = append(out, *m)
		}
	}
	if len(out) == 0 {
		for _, m := range c.members {
			out = append(out, *m)
		}
	}
	return out
}
