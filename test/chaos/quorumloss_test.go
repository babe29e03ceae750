package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestQuorumLoss loses two of three voters, and the read replica that
// newCluster adds, for good while eight clients write, and recovers the
// surviving voter with canoe.RecoverCluster (the node's -recover flag):
// the lost nodes are killed with SIGKILL and their data directories
// deleted, the survivor is stopped, recovered with itself as the only
// member and restarted. It must lead at once, hold every value it
// had applied, take writes, and let two fresh nodes join and catch up.
// The history is then checked as the chaos schedules are (porcupine, no
// acknowledged append lost, no failed one visible, every member's lists
// equal), with what the recovery documents it may lose taken out first:
// appends acknowledged before the loss whose value the survivor had not
// applied count as of unknown outcome, and reads before the recovery that
// saw more than the survivor had are left out.
func TestQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildNode(t.TempDir())
	if err != nil {
		t.Skipf("cannot build the node binary: %v", err)
	}
	dir := t.TempDir()
	seed := time.Now().UnixNano()
	c := newCluster(t, bin, dir, 3, 240, seed)
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(c.stopAll) }
	t.Cleanup(stop)
	logf := func(format string, args ...any) { t.Logf("+%v "+format, append([]any{c.since()}, args...)...) }
	defer func() {
		if t.Failed() {
			for _, p := range c.procs() {
				t.Logf("---- node %d (id %d) log tail:\n%s", p.idx, p.id, p.logTail(40))
			}
		}
	}()
	if err := c.boot(); err != nil {
		t.Fatalf("boot: %v", err)
	}

	h := newHistory()
	kv := &kvClient{c: c, h: h, httpc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	defer kv.httpc.CloseIdleConnections()
	keys := make([]string, 12)
	for i := range keys {
		keys[i] = string(rune('a' + i))
	}
	load := func(tag string) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { kv.runClients(ctx, 8, seed, tag, keys) })
		return func() { cancel(); wg.Wait() }
	}

	// The loss: the leader, one follower and the read replica, while
	// clients write.
	stopLoad := load("before")
	time.Sleep(1500 * time.Millisecond)
	// Under load on a small machine a leader may step down for a moment.
	leader := -1
	if !waitFor(10*time.Second, func() bool { leader = c.leader(); return leader >= 0 }) {
		t.Fatal("no leader under load for 10s")
	}
	survivor := c.proc((leader + 1) % 3)
	var lost []*proc
	var others []int // the lost nodes but the leader
	for _, p := range c.procs() {
		if p != survivor {
			lost = append(lost, p)
			if p.idx != leader {
				others = append(others, p.idx)
			}
		}
	}
	var wg sync.WaitGroup
	for _, p := range lost {
		wg.Go(func() {
			if err := c.kill(p, syscall.SIGKILL); err != nil {
				t.Errorf("kill node %d: %v", p.idx, err)
			}
		})
		c.setMember(p.idx, false)
	}
	wg.Wait()
	logf("killed node %d (the leader) and nodes %v; node %d survives", leader, others, survivor.idx)
	time.Sleep(time.Second) // clients go on writing to the survivor, which cannot commit
	stopLoad()
	for _, p := range lost {
		if err := os.RemoveAll(p.dataDir); err != nil {
			t.Fatal(err)
		}
	}

	// What the survivor had applied: its local state.
	held := map[string][]string{}
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		op := kv.do(ctx, h.clientID(), opGet, survivor.idx, k, "")
		cancel()
		if op.Out != outOK {
			t.Fatalf("local read of %s at the survivor: %s %s", k, op.ErrKind, op.ErrMsg)
		}
		held[k] = op.Values
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	before, err := c.status(ctx, survivor)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if before.LeaderTerm != 0 {
		t.Fatalf("the survivor leads without a quorum: %+v", before)
	}

	// The recovery.
	if err := c.kill(survivor, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	recoverAt := h.now()
	survivor.extra = []string{"-recover", fmt.Sprintf("%d@%s:%d", survivor.id, survivor.adv, survivor.raftPort)}
	err = c.startProc(survivor)
	survivor.extra = nil
	if err != nil {
		t.Fatal(err)
	}
	var after nodeStatus
	if !waitFor(10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		after, err = c.status(ctx, survivor)
		return err == nil && after.LeaderTerm > 0 && after.Members == 1
	}) {
		t.Fatalf("the recovered survivor does not lead alone 10s after its start: %+v (%v)", after, err)
	}
	logf("recovered node %d leads alone: applied %d (before: %d, last index %d), term %d", survivor.idx, after.AppliedIndex, before.AppliedIndex, before.LastIndex, after.Term)
	if !strings.Contains(survivor.logTail(200), "recovered the cluster") {
		t.Errorf("the survivor's log says nothing of the recovery")
	}
	for _, k := range keys {
		op := kv.linGet(survivor.idx, k)
		if op.Out != outOK || !isPrefix(held[k], op.Values) {
			t.Errorf("after the recovery %s holds %v (%s), want what the survivor had applied, %v, first", k, op.Values, okOr(op), held[k])
		}
	}

	// Writes, and two fresh nodes joining.
	stopLoad = load("after")
	var problems []string
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
		logf("PROBLEM: "+format, args...)
	}
	m := &memberFault{c: c, kv: kv, logf: logf, problem: problem}
	for range 2 {
		if _, ok := m.add(0); !ok {
			stopLoad()
			t.Fatalf("a fresh node did not join the recovered cluster: %v", problems)
		}
	}
	time.Sleep(time.Second)
	stopLoad()

	// Every member's final lists, by linearizable reads.
	final := map[string][]string{}
	members := c.memberIdx()
	if len(members) != 3 {
		t.Fatalf("members at the end: %v, want the survivor and two new nodes", members)
	}
	for j, i := range members {
		for _, k := range keys {
			op := kv.linGet(i, k)
			switch {
			case op.Out != outOK:
				problem("final linearizable read of %s at node %d: %s %s", k, i, op.ErrKind, op.ErrMsg)
			case j == 0:
				final[k] = op.Values
			case !slices.Equal(final[k], op.Values):
				problem("final lists of %s differ: node %d has %v, node %d has %v", k, members[0], final[k], i, op.Values)
			}
		}
	}
	for _, k := range keys {
		if !isPrefix(held[k], final[k]) {
			problem("final list of %s is %v: it lost what the survivor had applied, %v", k, final[k], held[k])
		}
	}

	// The check, with what the recovery may lose taken out.
	var ops []histOp
	forfeited, hidden, acked := 0, 0, 0
	for _, op := range h.snapshot() {
		if op.Call < recoverAt {
			if op.Kind == opAppend && op.Out == outOK && !slices.Contains(held[op.Key], op.Val) {
				op.Out, op.ErrKind, op.ErrMsg = outUnknown, "lost with the quorum", "acknowledged by nodes lost for good"
				forfeited++
			}
			if op.Kind != opAppend && op.Out == outOK && !isPrefix(op.Values, held[op.Key]) {
				hidden++
				continue
			}
		} else if op.Kind == opAppend && op.Out == outOK {
			acked++
		}
		ops = append(ops, op)
	}
	logf("%d operations; %d acknowledged appends the survivor had not applied are forfeited, %d reads that saw them left out; %d appends acknowledged after the recovery",
		len(ops), forfeited, hidden, acked)
	if acked == 0 {
		problem("no append was acknowledged after the recovery")
	}
	r := &report{seed: seed}
	r.checkHistory(ops, final, dir)
	problems = append(problems, r.problems...)
	stop()
	c.mu.Lock()
	problems = append(problems, c.unexpected...)
	c.mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
}

// linGet reads key at node idx linearizably, trying again for up to 10s
// while the read fails (a leader stepping down for a moment under load);
// it returns the last attempt. Every attempt is in the history.
func (k *kvClient) linGet(idx int, key string) histOp {
	var op histOp
	waitFor(10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		op = k.do(ctx, k.h.clientID(), opLinGet, idx, key, "")
		return op.Out == outOK
	})
	return op
}

// isPrefix reports whether a is a prefix of b.
func isPrefix(a, b []string) bool {
	return len(a) <= len(b) && slices.Equal(a, b[:len(a)])
}
