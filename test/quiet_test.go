package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
)

// warnCounter records the WARN and ERROR lines logged once armed.
type warnCounter struct {
	armed atomic.Bool
	mu    sync.Mutex // guards lines
	lines []string
}

func (w *warnCounter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	if w.armed.Load() && (strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]")) {
		w.mu.Lock()
		w.lines = append(w.lines, line)
		w.mu.Unlock()
	}
	return len(p), nil
}

// TestFaultFreeRunIsQuiet: once a cluster has formed, a fault-free run logs
// nothing at WARN or above: sustained writes and reads on every node, a
// follower stopped on purpose and started again, and the leader stopped
// (handing leadership over) and started again. (With raft's own default
// timeouts: the workload saturates this 2-core machine, and a short leader
// lease would turn a scheduling stall into a real, logged, loss of
// leadership.)
func TestFaultFreeRunIsQuiet(t *testing.T) {
	w := &warnCounter{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "canoe", Level: hclog.Info, Output: w})
	timing := canoe.Timing{HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, LeaderLeaseTimeout: 500 * time.Millisecond}
	c := newCluster(t, 3, clusterOpts{logger: logger, secret: randomSecret(t), timing: &timing})
	w.armed.Store(true)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ops atomic.Int64
	for i := range 24 {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				ms := c.running()
				if len(ms) == 0 {
					return
				}
				m := ms[(i+k)%len(ms)]
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				if k%4 == 3 {
					_ = m.node.ReadBarrier(pctx)
				} else {
					_ = m.node.ProposeContext(pctx, fmt.Appendf(nil, "c%d-%d", i, k))
				}
				pcancel()
				ops.Add(1)
			}
		})
	}
	time.Sleep(time.Second)
	c.restartAfter(c.followers()[0], time.Second)
	time.Sleep(time.Second)
	c.restartAfter(c.leader(), time.Second)
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	t.Logf("%d operations", ops.Load())
	w.armed.Store(false)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lines) > 0 {
		t.Errorf("%d WARN/ERROR lines in a fault-free run, want none; the first ones:\n%s", len(w.lines), strings.Join(w.lines[:min(len(w.lines), 30)], "\n"))
	}
}
