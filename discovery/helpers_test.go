package discovery

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger logs to t until the test's cleanup runs; memberlist goroutines
// may still log after Shutdown, and t.Log would then panic. Set
// DISCOVERY_TEST_LOG=debug for memberlist's debug lines.
func testLogger(t *testing.T, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs after the nodes' Shutdown
	level := hclog.Info
	if os.Getenv("DISCOVERY_TEST_LOG") == "debug" {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: w})
}

type testWriter struct {
	mu      sync.Mutex // guards stopped
	t       *testing.T
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// node is a Discovery under test with a recorder of its events.
type node struct {
	*Discovery
	mu     sync.Mutex // guards events
	events []Event
	done   chan struct{} // closed when Events() is closed
}

// start creates a Discovery from cfg, records its events and shuts it down
// at cleanup. cfg.Logger defaults to the test log.
func start(t *testing.T, cfg Config) *node {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, cfg.Name)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n := &node{Discovery: d, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		for ev := range d.Events() {
			n.mu.Lock()
			n.events = append(n.events, ev)
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if err := d.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-n.done
	})
	return n
}

// memNode starts a node on the in-memory network with the Local profile.
func memNode(t *testing.T, mn *memNetwork, id, cluster uint64) *node {
	t.Helper()
	name := "n" + itoa(id)
	return start(t, Config{
		Name:      name,
		Profile:   Local,
		Transport: mn.newTransport(name),
		Meta:      Meta{ID: id, ClusterID: cluster, RaftAddr: "127.0.0.1:" + itoa(7000+id)},
	})
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// hasEvent reports whether n recorded an event of kind about member name
// that satisfies ok (nil = any).
func (n *node) hasEvent(kind EventKind, name string, ok func(Event) bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.ContainsFunc(n.events, func(e Event) bool {
		return e.Kind == kind && e.Member.Name == name && (ok == nil || ok(e))
	})
}

func (n *node) eventsAbout(name string) []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Event
	for _, e := range n.events {
		if e.Member.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// memberNames returns the names in n.Members().
func memberNames(n *node) []string {
	var names []string
	for _, m := range n.Members() {
		names = append(names, m.Name)
	}
	return names
}

func sameNames(n *node, want ...string) func() bool {
	return func() bool { return slices.Equal(memberNames(n), want) }
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
