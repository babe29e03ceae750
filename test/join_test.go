package test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// pacedBackoff paces joins briskly and gives up after maxElapsed; every
// field is set.
func pacedBackoff(maxElapsed time.Duration) *canoe.InitializationBackoffArgs {
	return &canoe.InitializationBackoffArgs{
		InitialInterval:     50 * time.Millisecond,
		Multiplier:          2,
		MaxInterval:         500 * time.Millisecond,
		MaxElapsedTime:      maxElapsed,
		RandomizationFactor: .2,
	}
}

// startAsync runs n.Start in a goroutine and hands its result over.
func startAsync(n *canoe.Node) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- n.Start() }()
	return ch
}

// newNode creates a node that the test stops at cleanup.
func newNode(t *testing.T, cfg canoe.NodeConfig) *canoe.Node {
	t.Helper()
	n, err := canoe.NewNode(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	return n
}

// fakeAPI is an HTTP server that answers every request with one fixed
// answer and counts the requests.
type fakeAPI struct {
	*httptest.Server
	requests atomic.Int64
}

func newFakeAPI(t *testing.T, code int, contentType, body string) *fakeAPI {
	f := &fakeAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.Close)
	return f
}

// noLeaderAPI answers like a canoe member that knows no leader (retriable).
func noLeaderAPI(t *testing.T) *fakeAPI {
	return newFakeAPI(t, http.StatusServiceUnavailable, "application/json", `{"error":"httpconfig: no leader: canoe: no leader"}`+"\n")
}

// waitResult waits up to d for a Start result.
func waitResult(t *testing.T, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

// joiningNode starts a node that joins through a member that knows no
// leader, so it keeps asking (for 15s at most), and returns once the
// member got the first request.
func joiningNode(t *testing.T) (*canoe.Node, *fakeAPI, <-chan error) {
	t.Helper()
	api := noLeaderAPI(t)
	c := &cluster{t: t, logger: newLogger(t)}
	cfg := c.config(false, api.URL)
	cfg.InitBackoff = pacedBackoff(15 * time.Second)
	n := newNode(t, cfg)
	started := startAsync(n)
	testutil.WaitFor(t, 10*time.Second, "the first join attempt", func() bool { return api.requests.Load() >= 1 })
	return n, api, started
}

// interrupt calls stop (the node's Stop or Destroy, named by), which must
// return nil within a second, as must the pending Starts, each with an
// error saying that it was interrupted by it.
func interrupt(t *testing.T, by string, stop func() error, starts ...<-chan error) {
	t.Helper()
	begin := time.Now()
	if err := stop(); err != nil {
		t.Errorf("%s during a join: %v", by, err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("%s took %v while Start was joining, want under 1s", by, d)
	}
	for _, ch := range starts {
		err := waitResult(t, ch, time.Second, "Start after "+by)
		if !errors.Is(err, canoe.ErrNotRunning) || !strings.Contains(err.Error(), "interrupted by "+by) {
			t.Errorf("Start interrupted by %s: got %v, want ErrNotRunning saying it was interrupted by %[1]s", by, err)
		}
	}
}

// TestStopInterruptsJoiningStart: Stop ends a Start that is still joining
// at once; that Start, and a second one that waited for it, say they were
// interrupted by Stop.
func TestStopInterruptsJoiningStart(t *testing.T) {
	n, api, first := joiningNode(t)
	second := startAsync(n)
	seen := api.requests.Load()
	testutil.WaitFor(t, 10*time.Second, "two more join attempts", func() bool {
		select {
		case err := <-second:
			t.Fatalf("a second Start returned %v while the first was still joining", err)
		default:
		}
		return api.requests.Load() >= seen+2
	})
	interrupt(t, "Stop", n.Stop, first, second)
	if n.IsRunning() {
		t.Error("node still running after Stop")
	}
}

// TestDestroyInterruptsJoiningStart: Destroy during a join ends it at once
// and leaves the node unstartable.
func TestDestroyInterruptsJoiningStart(t *testing.T) {
	n, _, started := joiningNode(t)
	interrupt(t, "Destroy", n.Destroy, started)
	if err := n.Start(); !errors.Is(err, canoe.ErrorRemovedFromCluster) {
		t.Errorf("Start after Destroy: got %v, want ErrorRemovedFromCluster", err)
	}
}

// countingLogger returns a WARN logger to t.Log and a function counting the
// lines that contained substr so far.
func countingLogger(t *testing.T, substr string) (hclog.Logger, func() int) {
	w := &countingWriter{logWriter: logWriter{t: t}, substr: substr}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	l := hclog.New(&hclog.LoggerOptions{Name: "canoe", Level: hclog.Warn, Output: w})
	return l, func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.count
	}
}

type countingWriter struct {
	logWriter
	substr string
	count  int // guarded by logWriter.mu
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if strings.Contains(string(p), w.substr) {
		w.count++
	}
	w.mu.Unlock()
	return w.logWriter.Write(p)
}

// TestPartialInitBackoffPacesJoins: an InitBackoff with only InitialInterval
// set takes the defaults for the rest, so joins (by URL and by gossip) are
// paced and do not give up at once.
func TestPartialInitBackoffPacesJoins(t *testing.T) {
	api := noLeaderAPI(t)
	logger, gossipFailures := countingLogger(t, "gossip join failed")
	c := &cluster{t: t, logger: logger}
	cfg := c.config(false, api.URL, strings.TrimPrefix(deadURL(t), "http://"))
	cfg.InitBackoff = &canoe.InitializationBackoffArgs{InitialInterval: 100 * time.Millisecond}
	n := newNode(t, cfg)

	begin := time.Now()
	started := startAsync(n)
	testutil.WaitFor(t, 10*time.Second, "three join attempts", func() bool {
		select {
		case err := <-started:
			t.Fatalf("Start with InitBackoff{InitialInterval: 100ms} returned after %v: %v", time.Since(begin), err)
		default:
		}
		return api.requests.Load() >= 3
	})
	elapsed := time.Since(begin)
	// Two waits of 100ms and 200ms, each randomized by +-50%.
	if elapsed < 150*time.Millisecond {
		t.Errorf("three join attempts took %v, want at least 150ms", elapsed)
	}
	if got := gossipFailures(); got > 10 {
		t.Errorf("%d gossip join attempts in %v, want a few", got, elapsed)
	}
	if err := n.Stop(); err != nil {
		t.Error(err)
	}
	if err := waitResult(t, started, time.Second, "Start after Stop"); !errors.Is(err, canoe.ErrNotRunning) {
		t.Errorf("Start: got %v, want ErrNotRunning", err)
	}
}

// htmlPage is a web server's error page, longer than the 200 characters of
// it an error may quote.
var htmlPage = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>" +
	strings.Repeat("<p>nothing here</p>", 40) + "END-OF-PAGE</body></html>\n"

// TestJoinFailsAtOnce: joins that cannot succeed end Start at once with one
// clear error, instead of being retried for InitBackoff.MaxElapsedTime.
func TestJoinFailsAtOnce(t *testing.T) {
	secret := randomSecret(t)
	c := newCluster(t, 1, clusterOpts{secret: secret})
	leader := c.leader()
	for _, tt := range []struct {
		name  string
		peer  func(t *testing.T) string
		tweak func(*canoe.NodeConfig)
		want  []string
	}{
		{"wrong secret", func(*testing.T) string { return leader.url }, func(cfg *canoe.NodeConfig) { cfg.ClusterSecret = randomSecret(t) },
			[]string{"401", "ClusterSecret"}},
		// Keys are bound to the cluster ID: another cluster's signature
		// does not verify.
		{"another cluster by URL", func(*testing.T) string { return leader.url }, func(cfg *canoe.NodeConfig) { cfg.ClusterID = 0xbad },
			[]string{"401", "ClusterID"}},
		{"another cluster by gossip", func(*testing.T) string { return gossipAddr(leader) }, func(cfg *canoe.NodeConfig) { cfg.ClusterID = 0xbad },
			[]string{"ClusterID"}},
		{"wrong secret by gossip", func(*testing.T) string { return gossipAddr(leader) }, func(cfg *canoe.NodeConfig) { cfg.ClusterSecret = randomSecret(t) },
			[]string{"SecretKey"}},
		{"HTML 404 page", func(t *testing.T) string { return newFakeAPI(t, 404, "text/html", htmlPage).URL }, nil,
			[]string{"404", "not a canoe API", "<!DOCTYPE html>"}},
		{"501", func(t *testing.T) string {
			return newFakeAPI(t, 501, "text/html", "<html><body>Error response: Unsupported method ('POST')</body></html>").URL
		}, nil, []string{"501", "not a canoe API", "Unsupported method"}},
		{"HTML 200 page", func(t *testing.T) string { return newFakeAPI(t, 200, "text/html", htmlPage).URL }, nil,
			[]string{"not a canoe API", "text/html", "<!DOCTYPE html>"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := c.config(false, tt.peer(t))
			cfg.ClusterSecret = secret
			cfg.InitBackoff = pacedBackoff(20 * time.Second)
			if tt.tweak != nil {
				tt.tweak(&cfg)
			}
			n := newNode(t, cfg)
			begin := time.Now()
			err := waitResult(t, startAsync(n), 30*time.Second, "Start")
			d := time.Since(begin)
			if err == nil {
				t.Fatal("Start joined")
			}
			t.Logf("Start failed after %v: %v", d.Round(time.Millisecond), err)
			if d > 5*time.Second {
				t.Errorf("Start took %v to fail, want it to fail at once (InitBackoff.MaxElapsedTime is 20s)", d)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q", w)
				}
			}
			if strings.Contains(msg, "END-OF-PAGE") || strings.Count(msg, "<p>") > 200/len("<p>nothing here</p>")+1 {
				t.Errorf("error quotes more than about 200 characters of the answer (%d bytes)", len(msg))
			}
			if strings.Count(msg, "<!DOCTYPE") > 1 {
				t.Error("error repeats the answer")
			}
			if n.IsRunning() {
				t.Error("node running after a failed Start")
			}
		})
	}
	if got := len(leader.node.Peers()); got != 1 {
		t.Errorf("the cluster has %d members after the refused joins, want 1", got)
	}
}

// TestJoinOtherClusterByURL: without a secret, a member of another cluster
// answers a join by URL with 409, and Start fails at once saying so.
func TestJoinOtherClusterByURL(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	leader := c.leader()
	cfg := c.config(false, leader.url)
	cfg.ClusterID = 0xbad
	cfg.InitBackoff = pacedBackoff(20 * time.Second)
	n := newNode(t, cfg)
	begin := time.Now()
	err := waitResult(t, startAsync(n), 30*time.Second, "Start")
	if err == nil {
		t.Fatal("a node of another cluster joined")
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Start took %v to fail, want it to fail at once", d)
	}
	for _, w := range []string{"409", "ClusterID", "2989"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if got := len(leader.node.Peers()); got != 1 {
		t.Errorf("the cluster has %d members after the refused join, want 1", got)
	}
}

// TestJoinRetriesTransientFailures: a member that answers "no leader" is
// asked again until InitBackoff.MaxElapsedTime; a server that is not canoe,
// listed too, is asked once.
func TestJoinRetriesTransientFailures(t *testing.T) {
	api := noLeaderAPI(t)
	web := newFakeAPI(t, 404, "text/html", htmlPage)
	c := &cluster{t: t, logger: newLogger(t)}
	cfg := c.config(false, web.URL, api.URL)
	cfg.InitBackoff = pacedBackoff(1500 * time.Millisecond)
	n := newNode(t, cfg)
	begin := time.Now()
	err := waitResult(t, startAsync(n), 20*time.Second, "Start")
	d := time.Since(begin)
	t.Logf("Start failed after %v: %v", d.Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "no leader") || !strings.Contains(err.Error(), "1.5s") {
		t.Errorf("Start: got %v, want a failure after 1.5s quoting the last answer (no leader)", err)
	}
	if d < 1500*time.Millisecond {
		t.Errorf("Start gave up after %v, before InitBackoff.MaxElapsedTime (1.5s)", d)
	}
	if got := api.requests.Load(); got < 3 {
		t.Errorf("%d join attempts, want retries", got)
	}
	if strings.Count(err.Error(), "no leader") > 4 || strings.Count(err.Error(), "<!DOCTYPE") != 1 {
		t.Errorf("error does not name each failure once: %v", err)
	}
	if got := web.requests.Load(); got != 1 {
		t.Errorf("the server that is not canoe was asked %d times, want once", got)
	}
}
