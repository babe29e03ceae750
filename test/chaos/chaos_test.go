package chaos

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tier says how much to run: the bounded default, or CANOE_CHAOS=long.
type tier struct {
	long      bool
	schedules int
	sizes     []int // cluster sizes, used in turn
	faults    int   // faults per schedule
}

func chooseTier(t *testing.T) tier {
	tr := tier{schedules: 3, sizes: []int{3}, faults: 5}
	if os.Getenv("CANOE_CHAOS") == "long" {
		tr = tier{long: true, schedules: 20, sizes: []int{3, 5}, faults: 14}
	}
	if s := os.Getenv("CANOE_CHAOS_SCHEDULES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CANOE_CHAOS_SCHEDULES=%q is not a positive number", s)
		}
		tr.schedules = n
	}
	if s := os.Getenv("CANOE_CHAOS_NODES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 9 {
			t.Fatalf("CANOE_CHAOS_NODES=%q is not a cluster size in 1-9", s)
		}
		tr.sizes = []int{n}
	}
	return tr
}

// masterSeed is CANOE_CHAOS_SEED or the clock.
func masterSeed(t *testing.T) int64 {
	if s := os.Getenv("CANOE_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CANOE_CHAOS_SEED=%q is not an integer", s)
		}
		return v
	}
	return time.Now().UnixNano() % 1_000_000_000
}

// step is one fault of a schedule. target, other and via are positions in
// the current member list (ascending node index), which membership faults
// change.
type step struct {
	kind     string
	leader   bool // aim at the current leader (else target)
	target   int
	other    int // split: the other end of the cut link; membership: the member a new node joins through
	dur, gap time.Duration
	// membership: replace removes an original member (target, or the
	// leader) and then adds a fresh node in its place; otherwise a fresh
	// node joins, serves for dur and is removed. The DELETE /peers goes to
	// member via of the members at that moment.
	replace bool
	via     int
}

func (s step) String() string {
	who := fmt.Sprintf("node %d", s.target)
	if s.leader {
		who = "leader"
	}
	switch s.kind {
	case "split":
		who = fmt.Sprintf("link %d-%d", s.target, s.other)
	case "flaky":
		who = "all links"
	case "membership":
		if s.replace {
			return fmt.Sprintf("membership: remove %s via member %d, add a fresh node (joining via member %d) after %v", who, s.via, s.other, s.dur)
		}
		return fmt.Sprintf("membership: a fresh node joins via member %d, serves for %v, removed via member %d", s.other, s.dur, s.via)
	}
	return fmt.Sprintf("%s %s for %v", s.kind, who, s.dur)
}

var faultKinds = []string{"kill", "kill-burst", "pause-leader", "isolate", "split", "flaky", "restart"}

// membershipSeed says whether a bounded-tier schedule gets a membership
// fault: one in three seeds, so exactly one of the three consecutive
// seeds of a bounded run, and a replay (CANOE_CHAOS_SEED=s) draws the same
// schedule as the run it came from.
func membershipSeed(seed int64) bool { return seed%3 == 0 }

// makeSchedule draws a fault schedule from seed: one fault at a time, each
// undone before the next. The long tier draws membership faults like any
// other kind; the bounded tier puts one membership fault at a random place
// of the schedules whose seed membershipSeed picks.
func makeSchedule(seed int64, n, faults int, long bool) []step {
	rng := rand.New(rand.NewSource(seed))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.Intn(hi-lo+1)) * time.Millisecond }
	kinds := faultKinds
	if long {
		kinds = append(slices.Clone(faultKinds), "membership")
	}
	membership := func(s *step) {
		s.kind = "membership"
		s.replace = n >= 2 && rng.Intn(2) == 0
		s.other = rng.Intn(n)
		if s.replace {
			s.via = rng.Intn(n)
			s.dur = ms(300, 1500)
		} else {
			s.leader = false
			s.via = rng.Intn(n + 1)
			s.dur = ms(1000, 3000)
		}
	}
	var out []step
	for range faults {
		s := step{kind: kinds[rng.Intn(len(kinds))], target: rng.Intn(n), leader: rng.Intn(2) == 0, gap: ms(300, 1200)}
		switch s.kind {
		case "kill", "restart":
			s.dur = ms(100, 1500)
		case "kill-burst":
			s.dur = ms(50, 300)
		case "pause-leader":
			s.leader, s.dur = true, ms(400, 2500)
		case "isolate":
			s.dur = ms(500, 3000)
		case "split":
			s.leader = false
			s.other = (s.target + 1 + rng.Intn(n-1)) % n
			s.dur = ms(500, 3000)
		case "flaky":
			s.leader = false
			s.dur = ms(1000, 3000)
		case "membership":
			membership(&s)
		}
		out = append(out, s)
	}
	if !long && membershipSeed(seed) && len(out) > 0 {
		s := &out[rng.Intn(len(out))]
		*s = step{target: rng.Intn(n), leader: rng.Intn(2) == 0, gap: s.gap}
		membership(s)
	}
	return out
}

func TestChaos(t *testing.T) {
	binDir := t.TempDir()
	bin, err := buildNode(binDir)
	if err != nil {
		t.Skipf("cannot build the node binary: %v", err)
	}
	tr := chooseTier(t)
	seed := masterSeed(t)
	t.Logf("chaos: master seed %d (replay: CANOE_CHAOS_SEED=%d), %d schedules, race=%v", seed, seed, tr.schedules, raceEnabled)
	var reports []*report
	for i := range tr.schedules {
		s := seed + int64(i)
		n := tr.sizes[i%len(tr.sizes)]
		t.Run(fmt.Sprintf("seed=%d/n=%d", s, n), func(t *testing.T) {
			r := runSchedule(t, bin, s, n, tr, i)
			reports = append(reports, r)
		})
	}
	summary(t, reports)
}

func summary(t *testing.T, reports []*report) {
	faults := map[string]int{}
	var ok, failed, unknown, lost int
	var maxNoLeader time.Duration
	bad := 0
	for _, r := range reports {
		for k, v := range r.faults {
			faults[k] += v
		}
		for _, v := range r.ops {
			ok, failed, unknown = ok+v[0], failed+v[1], unknown+v[2]
		}
		lost += len(r.lost)
		maxNoLeader = max(maxNoLeader, r.maxNoLeader)
		if len(r.problems) > 0 {
			bad++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos summary: %d schedules (%d failed); faults:", len(reports), bad)
	for _, k := range sortedKeys(faults) {
		fmt.Fprintf(&b, " %s=%d", k, faults[k])
	}
	fmt.Fprintf(&b, "; ops ok/failed/unknown %d/%d/%d; lost writes %d; max time without a leader %v",
		ok, failed, unknown, lost, maxNoLeader.Round(time.Millisecond))
	t.Log(b.String())
	if d := os.Getenv("CANOE_CHAOS_OUT"); d != "" {
		var all strings.Builder
		for _, r := range reports {
			all.WriteString(r.String() + "\n")
		}
		all.WriteString(b.String() + "\n")
		_ = os.WriteFile(filepath.Join(outDir(d), "report.txt"), []byte(all.String()), 0o644)
	}
}

// runSchedule boots a fresh cluster of n nodes, runs the workload through
// the schedule drawn from seed, heals, settles and checks.
func runSchedule(t *testing.T, bin string, seed int64, n int, tr tier, run int) *report {
	dir := t.TempDir()
	if d := os.Getenv("CANOE_CHAOS_OUT"); d != "" {
		dir = filepath.Join(outDir(d), fmt.Sprintf("seed-%d", seed))
		_ = os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Fault targets are drawn among all members, the read replicas too.
	sched := makeSchedule(seed, n+replicas, tr.faults, tr.long)
	r := &report{seed: seed, nodes: n, faults: map[string]int{}}
	began := time.Now()
	c := newCluster(t, bin, dir, n, run, seed)
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(c.stopAll) }
	t.Cleanup(stop)
	logf := func(format string, args ...any) { t.Logf("+%v "+format, append([]any{c.since()}, args...)...) }
	dumpLogs := func() {
		for _, p := range c.procs() {
			t.Logf("---- node %d (id %d, %s) log tail:\n%s", p.idx, p.id, p.logPath, p.logTail(40))
		}
	}
	if err := c.boot(); err != nil {
		stop()
		dumpLogs()
		t.Fatalf("boot: %v", err)
	}
	logf("cluster of %d voters and %d read replica up; schedule: %v", n, replicas, sched)

	// Status poller and workload run for the whole schedule.
	pollCtx, pollCancel := context.WithCancel(context.Background())
	var pollWG sync.WaitGroup
	pollWG.Add(1)
	go func() { defer pollWG.Done(); r.maxNoLeader = c.poll(pollCtx, 100*time.Millisecond) }()
	h := newHistory()
	kv := &kvClient{c: c, h: h, httpc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	defer kv.httpc.CloseIdleConnections()
	// Enough keys that each key's history stays short: porcupine's search
	// grows steeply with the operations per key (six keys let it time out
	// under -race on long schedules).
	keys := make([]string, 24)
	for i := range keys {
		keys[i] = string(rune('a' + i))
	}
	loadCtx, loadCancel := context.WithCancel(context.Background())
	var loadWG sync.WaitGroup
	loadWG.Add(1)
	go func() { defer loadWG.Done(); kv.runClients(loadCtx, 8, seed, fmt.Sprintf("v%d", seed), keys) }()
	stopLoad := func() { loadCancel(); loadWG.Wait() }

	time.Sleep(time.Second)
	var problems []string
	problem := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		problems = append(problems, msg)
		logf("PROBLEM: %s", msg)
	}
	restart := func(p *proc) {
		if err := c.startProc(p); err != nil {
			problem("restart node %d: %v", p.idx, err)
		}
	}
	for i, s := range sched {
		members := c.memberIdx()
		target := members[s.target%len(members)]
		if s.leader {
			if l := c.leader(); l >= 0 {
				target = l
			}
		}
		p := c.proc(target)
		r.faults[s.kind]++
		if s.kind == "membership" && !s.replace {
			logf("fault %d/%d: %v", i+1, len(sched), s)
		} else {
			logf("fault %d/%d: %v (node %d)", i+1, len(sched), s, target)
		}
		switch s.kind {
		case "kill":
			if err := c.kill(p, syscall.SIGKILL); err != nil {
				problem("kill node %d: %v", target, err)
			}
			time.Sleep(s.dur)
			restart(p)
		case "kill-burst":
			// kill -9 in the middle of heavy writes, three times in a row.
			for range 3 {
				if err := c.kill(p, syscall.SIGKILL); err != nil {
					problem("kill node %d: %v", target, err)
				}
				time.Sleep(s.dur)
				restart(p)
				time.Sleep(300 * time.Millisecond)
			}
		case "restart":
			if err := c.kill(p, syscall.SIGTERM); err != nil {
				problem("graceful stop of node %d: %v", target, err)
			}
			time.Sleep(s.dur)
			restart(p)
		case "pause-leader":
			if err := c.pause(p, true); err != nil {
				problem("SIGSTOP node %d: %v", target, err)
			}
			time.Sleep(s.dur)
			if err := c.pause(p, false); err != nil {
				problem("SIGCONT node %d: %v", target, err)
			}
		case "isolate":
			c.net.block(target, members...)
			time.Sleep(s.dur)
			c.net.heal()
		case "split":
			c.net.block(target, members[s.other%len(members)])
			time.Sleep(s.dur)
			c.net.heal()
		case "flaky":
			c.net.setFlaky(20*time.Millisecond, 0.01)
			time.Sleep(s.dur)
			c.net.heal()
		case "membership":
			m := &memberFault{c: c, kv: kv, logf: logf, problem: problem}
			if s.replace {
				m.replace(s, target)
			} else {
				m.extra(s)
			}
			r.membership = append(r.membership, m.notes...)
		}
		time.Sleep(s.gap)
	}
	lastFault := time.Now()
	logf("faults over; waiting for the cluster to serve again")

	// Serving again: an append and a linearizable read on every member.
	// From here on the members are fixed: the final checks cover exactly
	// them, and removed nodes (stopped at their removal) are left out.
	members := c.memberIdx()
	recovered := waitFor(20*time.Second, func() bool {
		for _, i := range members {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			op := kv.do(ctx, h.clientID(), opLinGet, i, keys[0], "")
			cancel()
			if op.Out != outOK {
				return false
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return kv.do(ctx, h.clientID(), opAppend, members[0], "fence", fmt.Sprintf("fence.%d", time.Now().UnixNano())).Out == outOK
	})
	r.recovery = time.Since(lastFault)
	if !recovered {
		problem("the cluster did not serve an append and a linearizable read on every node within 20s of the last fault")
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()

	// Settle: a last append, then every member's final lists by
	// linearizable reads, which must agree.
	final := map[string][]string{}
	if recovered {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if op := kv.do(ctx, h.clientID(), opAppend, members[0], "fence", "fence.final"); op.Out != outOK {
			problem("final append failed: %s", op.ErrKind)
		}
		cancel()
		for j, i := range members {
			for _, k := range append([]string{"fence"}, keys...) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				op := kv.do(ctx, h.clientID(), opLinGet, i, k, "")
				cancel()
				switch {
				case op.Out != outOK:
					problem("final linearizable read of %s at node %d failed: %s", k, i, op.ErrKind)
				case j == 0:
					final[k] = op.Values
				case !slices.Equal(final[k], op.Values):
					problem("final lists of %s differ: node %d has %d values, node %d has %d", k, members[0], len(final[k]), i, len(op.Values))
				}
			}
		}
		// Every member has applied the final append: applied index, command
		// count and state hash must be equal now, and every member's
		// configuration must hold exactly the members, all voters.
		ps := c.memberProcs()
		var sts []*nodeStatus
		var views []string
		agree := waitFor(10*time.Second, func() bool {
			sts = c.statuses(context.Background(), time.Second, ps)
			views = c.memberViews(ps)
			for j, st := range sts {
				if st == nil || st.AppliedIndex != sts[0].AppliedIndex || st.Hash != sts[0].Hash || st.Commands != sts[0].Commands || views[j] != "" {
					return false
				}
			}
			return true
		})
		for j, st := range sts {
			i := ps[j].idx
			if st != nil {
				r.snapshots[0] += st.SnapsTaken
				r.snapshots[1] += st.SnapsRestored
				if !agree {
					problem("node %d: applied=%d commands=%d hash=%.12s term=%d state=%s", i, st.AppliedIndex, st.Commands, st.Hash, st.Term, st.State)
				}
			} else if !agree {
				problem("node %d does not answer /status", i)
			}
			if !agree && views[j] != "" {
				problem("node %d: %s", i, views[j])
			}
		}
		if !agree {
			problem("members disagree on applied index, command count, state hash or membership 10s after the final append")
		}
	}
	// Removed nodes stayed stopped, and exit cleanly on SIGTERM.
	for _, p := range c.removedProcs() {
		(&memberFault{c: c, kv: kv, logf: logf, problem: problem}).finalCheck(p)
	}
	pollCancel()
	pollWG.Wait()
	c.mu.Lock()
	for term, ids := range c.leaders {
		if len(ids) > 1 {
			problems = append(problems, fmt.Sprintf("term %d had %d leaders: %v", term, len(ids), ids))
		}
		for _, p := range c.nodes {
			if p.nonVoter && ids[p.id] {
				problems = append(problems, fmt.Sprintf("read replica %d (id %d) led term %d", p.idx, p.id, term))
			}
		}
	}
	r.leaderTerms, r.leaderObs = len(c.leaders), c.leaderObs
	c.mu.Unlock()
	stop()
	c.mu.Lock()
	problems = append(problems, c.unexpected...)
	c.mu.Unlock()
	c.net.mu.Lock()
	r.proxyStats, r.unknownConns = maps.Clone(c.net.stats), c.net.unknownN
	c.net.mu.Unlock()

	delete(final, "fence")
	ops := h.snapshot()
	var checked []histOp
	for _, op := range ops {
		if op.Key != "fence" {
			checked = append(checked, op)
		}
	}
	r.problems = problems
	if recovered {
		r.checkHistory(checked, final, outDir(dir))
	}
	r.duration = time.Since(began)
	t.Log(r.String())
	if len(r.problems) > 0 {
		dumpLogs()
		long := ""
		if tr.long {
			long = "CANOE_CHAOS=long "
		}
		t.Errorf("chaos schedule failed (replay: %sCANOE_CHAOS_SEED=%d CANOE_CHAOS_SCHEDULES=1 CANOE_CHAOS_NODES=%d); schedule: %v",
			long, seed, n, sched)
	}
	return r
}
