package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// missing returns the entries of want that m's FSM does not hold.
func missing(m *member, want []string) []string {
	var out []string
	for _, v := range want {
		if !m.fsm.has(v) {
			out = append(out, v)
		}
	}
	return out
}

// TestRestartedFollowerHoldsWhatItApplied stops a follower of a 3-node
// cluster that holds 50 entries (no snapshot: the log holds them all) and
// starts a new Node with a fresh FSM on its DataDir: right when Start
// returns, the FSM must hold every entry, before any leader has told the
// node the commit index (raft alone replays the log only then, 1-3 s
// later).
func TestRestartedFollowerHoldsWhatItApplied(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, clusterOpts{})
	leader := c.leader()
	var keys []string
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("stop-key-%02d", i))
		mustPropose(t, leader, keys[i])
	}
	f := c.followers()[0]
	waitSameState(t, 10*time.Second, len(keys), leader, f)
	c.restart(f)
	if lost := missing(f, keys); len(lost) > 0 {
		t.Fatalf("right after Start the restarted follower lacks %d of the %d entries it had applied before it stopped (first %q)", len(lost), len(keys), lost[0])
	}
	mustPropose(t, c.leader(), "after-restart")
	waitSameState(t, 10*time.Second, len(keys)+1, c.leader(), f)
}

// Environment of the child process TestKill9FollowerHoldsWhatItApplied
// kills: it runs a node on a DataDir and reports its applied index and
// each applied index canoe records.
const (
	kill9ChildDir    = "CANOE_TEST_KILL9_DIR"
	kill9ChildPrefix = "kill9-child: "
)

// recordedRE matches canoe's TRACE line for a recorded applied index.
var recordedRE = regexp.MustCompile(`recorded the applied index: .*index=(\d+)`)

// TestKill9FollowerHoldsWhatItApplied runs a follower of a 3-node cluster
// in a child process, commits 50 entries, waits until the follower has
// applied them and canoe has recorded that, and kills it with SIGKILL. A
// Node started with a fresh FSM on its DataDir must hold every one of
// those entries right when Start returns (raft alone replays the log only
// once a leader tells it the commit index, 1-3 s later), and then
// converge with the leader without applying any entry twice.
func TestKill9FollowerHoldsWhatItApplied(t *testing.T) {
	if dir := os.Getenv(kill9ChildDir); dir != "" {
		kill9Child(t, dir)
		return
	}
	t.Parallel()
	c := newCluster(t, 3, clusterOpts{})
	leader := c.leader()
	victim := c.followers()[0]
	mustPropose(t, leader, "before")
	waitSameState(t, 10*time.Second, 1, leader, victim)
	if err := stopNode(victim); err != nil {
		t.Fatal(err)
	}
	dir := victim.cfg.DataDir

	child := startChild(t, "TestKill9FollowerHoldsWhatItApplied", kill9ChildDir+"="+dir)
	keys := []string{"before"}
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("kill-key-%02d", i))
		mustPropose(t, leader, keys[i+1])
	}
	target := leader.node.Status().AppliedIndex
	childEnded := func() {
		select {
		case err := <-child.done:
			t.Fatalf("the child ended (%v) before it was killed; output:\n%s", err, crashExcerpt(child.out.String()))
		default:
		}
	}
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("the child to apply index %d", target), func() bool {
		childEnded()
		return kill9Applied(child.out.String()) >= target
	})
	testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("the child to record applied index %d", target), func() bool {
		childEnded()
		return kill9Recorded(child.out.String()) >= target
	})
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-child.done
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v before it was killed; output:\n%s", err, crashExcerpt(child.out.String()))
	}

	cfg := victim.cfg
	cfg.ID, cfg.RaftPort, cfg.ConfigurationPort = 0, 0, 0
	cfg.FSM = newFSM()
	again := c.mustStart(cfg)
	if lost := missing(again, keys); len(lost) > 0 {
		t.Fatalf("right after Start the follower killed with SIGKILL lacks %d of the %d entries it had applied (first %q)", len(lost), len(keys), lost[0])
	}
	mustPropose(t, leader, "after-restart")
	waitSameState(t, 10*time.Second, len(keys)+1, leader, again)
}

// kill9Child runs in TestKill9FollowerHoldsWhatItApplied's child process:
// it starts a node on dir and prints its applied index whenever it moves,
// and canoe's TRACE lines for the applied index it records, until killed.
func kill9Child(t *testing.T, dir string) {
	cfg := canoe.NodeConfig{
		FSM:      newFSM(),
		DataDir:  dir,
		BindAddr: "127.0.0.1",
		Timing:   canoe.LocalProfile(),
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "kill9",
			Level:  hclog.Trace,
			Output: os.Stdout,
			Exclude: func(level hclog.Level, msg string, _ ...any) bool {
				return level < hclog.Warn && !strings.Contains(msg, "recorded the applied index")
			},
		}),
	}
	n, err := canoe.NewNode(&cfg)
	if err == nil {
		err = n.Start()
	}
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	var last uint64
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		if applied := n.Status().AppliedIndex; applied != last {
			fmt.Printf("%sapplied %d\n", kill9ChildPrefix, applied)
			last = applied
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("not killed within 40s")
	_ = n.Stop()
}

// kill9Applied returns the last applied index the child printed, or 0.
func kill9Applied(out string) uint64 {
	var n uint64
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(line, kill9ChildPrefix+"applied "); ok {
			if v, err := strconv.ParseUint(s, 10, 64); err == nil {
				n = v
			}
		}
	}
	return n
}

// kill9Recorded returns the highest applied index the child's canoe
// recorded, or 0.
func kill9Recorded(out string) uint64 {
	var n uint64
	for _, m := range recordedRE.FindAllStringSubmatch(out, -1) {
		if v, err := strconv.ParseUint(m[1], 10, 64); err == nil {
			n = max(n, v)
		}
	}
	return n
}
