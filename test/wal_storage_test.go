package test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// Files of the raft-wal log store in DataDir (canoe/internal/storage/storage.go,
// canoe/internal/storage/wal.go) and raft-wal's segment format (v0.4.1,
// segment/format.go): a 32-byte file header, then 8-byte aligned frames,
// each an 8-byte header (type, 3 reserved bytes, little-endian length, or
// the batch CRC for a commit frame) and its payload padded to 8 bytes. The
// file is preallocated (zeros) to 64 MiB.
const (
	walDirName     = "wal"
	walMetaName    = "wal-meta.db"
	walMagic       = 0x58eb6b0d // first 4 bytes of a segment file (little-endian)
	walFileHeader  = 32
	walFrameHeader = 8
	walFrameEntry  = 1
	walFrameIndex  = 2
	walFrameCommit = 3
)

// TestWALDiskFullFollowerDoesNotCrashOrLoseData is
// TestDiskFullFollowerDoesNotCrashOrLoseData for the raft-wal store. The WAL
// preallocates each 64 MiB segment, so the follower's tmpfs is filled after
// it started and it runs out of space when the first segment is full and
// raft-wal fails to create the next one. The leader and the other follower
// must keep committing, also across a leadership change, the full node must
// stay up, and once the space is freed it must catch up by itself, without
// a restart (raft-wal v0.4.1 alone stays wedged on its sealed segment: see
// canoe/internal/storage/wal.go), and a restart afterwards must replay the same
// entries. First, a new node on a tmpfs too full for its first segment must
// fail Start with an error that says so.
func TestWALDiskFullFollowerDoesNotCrashOrLoseData(t *testing.T) {
	requireTmpfs(t)
	// The other two nodes live on a big tmpfs too, so that the test does
	// not write 128 MiB to the machine's disk and wait on its fsyncs.
	c := newLANCluster(t, 2, clusterOpts{logStore: canoe.LogStoreWAL}, mountTmpfs(t, "512m"))
	mnt := mountTmpfs(t, "80m") // mounted after the first: unmounted before it
	leader := c.leader()
	filler := filepath.Join(mnt, "filler")

	// No room for the first segment: Start fails, saying why, and leaves
	// no half-created log behind, so a second try fails the same way.
	fillDisk(t, filler, mnt, 16<<20)
	early := c.config(false, leader.url)
	early.DataDir = filepath.Join(mnt, "early")
	early.LogStore = canoe.LogStoreWAL
	for try := range 2 {
		early.FSM = newFSM()
		m, err := c.start(early)
		if err == nil {
			t.Fatalf("try %d: Start with %d bytes free for a 64 MiB segment succeeded (node %v), want an error", try, freeBytes(t, mnt), m)
		}
		walDir := filepath.Join(early.DataDir, walDirName)
		if msg := err.Error(); !strings.Contains(msg, "no space left on device") || !strings.Contains(msg, walDir) || strings.Contains(msg, "damaged") {
			t.Errorf("try %d: Start on a full disk failed with %q, want an error naming %s and \"no space left on device\", not damage", try, msg, walDir)
		}
		t.Logf("try %d: Start on a full disk: %v", try, err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(early.DataDir); err != nil {
		t.Fatal(err)
	}
	c.waitVoters(2) // the failed starts did not join

	cfg := c.config(false, leader.url)
	cfg.DataDir = filepath.Join(mnt, "data")
	cfg.LogStore = canoe.LogStoreWAL
	cfg.Timing = canoe.LANProfile()
	var lines *lineLog
	cfg.Logger, lines = newCapturingLogger(t, "canoe-full")
	full := c.mustStart(cfg)
	c.waitVoters(3)

	var (
		mu    sync.Mutex // guards acked
		acked []string
	)
	// leaderNotFull returns the leader once it is not the full node, moving
	// leadership off the full node if it won an election (it may, while
	// its log is as long as the others').
	leaderNotFull := func() *member {
		t.Helper()
		for try := 0; ; try++ {
			l := c.leader()
			if l != full {
				return l
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := l.node.TransferLeadership(ctx)
			cancel()
			if err != nil && try == 3 {
				t.Fatalf("move leadership off the tmpfs node: %v", err)
			}
		}
	}
	// commit proposes v through a leader other than the full node until v
	// is known to have committed. An unknown outcome (a leader change under
	// load) is proposed again, so v may be applied twice, alike everywhere.
	commit := func(v string) {
		t.Helper()
		for try := 0; ; try++ {
			m := leaderNotFull()
			err := propose(m, v)
			if err == nil {
				mu.Lock()
				acked = append(acked, v)
				mu.Unlock()
				return
			}
			if !errors.Is(err, canoe.ErrUnknownOutcome) || try == 5 {
				t.Fatalf("propose %.20q... on %v: %v", v, m, err)
			}
			t.Logf("propose on %v: %v; proposing again", m, err)
		}
	}

	leader = leaderNotFull()
	fillDisk(t, filler, mnt, 1<<20)
	t.Logf("tmpfs filled: %d bytes left beside the follower's preallocated segment", freeBytes(t, mnt))

	// Propose big entries until the full node's raft-wal cannot create its
	// second segment.
	payload := strings.Repeat("w", 32<<10)
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	const enospc = "no space left on device"
	var wg sync.WaitGroup
	for w := range 16 {
		via := leader
		wg.Go(func() {
			for i := 0; !t.Failed() && len(lines.matching(enospc)) == 0 && time.Now().Before(deadline); i++ {
				v := fmt.Sprintf("fill-w%d-%05d-%s", w, i, payload)
				err := propose(via, v)
				if errors.Is(err, canoe.ErrUnknownOutcome) {
					t.Logf("propose on %v: %v", via, err)
					continue
				}
				if err != nil {
					t.Errorf("propose on %v while a follower's disk fills up: %v", via, err)
					return
				}
				mu.Lock()
				acked = append(acked, v)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if len(lines.matching(enospc)) == 0 {
		t.Fatalf("the tmpfs node never reported %q after %v (%d bytes free, %d entries committed)", enospc, time.Since(start), freeBytes(t, mnt), leader.fsm.len())
	}
	t.Logf("after %v and %d entries of 32 KiB, the full node's log says: %s", time.Since(start).Round(time.Millisecond), len(acked), lines.matching(enospc)[0])
	for _, l := range lines.matching("rotate error") {
		t.Logf("raft-wal: %s", l)
	}
	// Take the last free blocks too (the reopened WAL writes its new
	// segment into them without preallocating it), and commit a few more
	// big entries that the full node cannot store: it falls behind, so it
	// cannot win an election any more.
	topUp := filepath.Join(mnt, "filler2")
	fillUp(t, topUp)
	for i := range 4 {
		commit(fmt.Sprintf("behind-%d-%s", i, payload))
	}
	leader = leaderNotFull()
	testutil.WaitFor(t, 10*time.Second, "the full node to fall behind", func() bool {
		return full.fsm.len() < leader.fsm.len()
	})

	// A leadership change while the disk is full: every node persists the
	// new term (in wal-meta.db; raft panics if it cannot).
	for try := 0; ; try++ {
		leader = leaderNotFull()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := leader.node.TransferLeadership(ctx)
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, canoe.ErrNotLeader) || try == 3 {
			t.Fatalf("transfer leadership while a follower's disk is full: %v", err)
		}
	}
	for i := range 20 {
		commit(fmt.Sprintf("full-%02d", i))
	}
	leader = c.leader()
	if leader == full {
		t.Fatalf("the node whose disk is full, and so whose log is behind, became leader")
	}
	other := otherMember(c, leader, full)
	waitSameState(t, 10*time.Second, -1, leader, other)
	if !full.node.IsRunning() {
		t.Fatalf("the node whose disk is full stopped")
	}
	if full.fsm.len() >= leader.fsm.len() {
		t.Fatalf("the full node applied %d entries, the leader %d: it stored entries on a full disk?", full.fsm.len(), leader.fsm.len())
	}
	t.Logf("disk full: full node at %d entries, leader and other follower at %d", full.fsm.len(), leader.fsm.len())

	// Free the space: the full node catches up without a restart. The
	// leader backs off retrying a follower that failed (up to seconds).
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(topUp); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitSameState(t, 20*time.Second, -1, leader, other, full)
	t.Logf("the full node caught up %v after the space was freed", time.Since(freed).Round(time.Millisecond))
	commit("after-free")
	waitSameState(t, 10*time.Second, -1, c.leader(), other, full)
	t.Logf("raft-wal segments of the full node: %v", walSegments(t, filepath.Join(cfg.DataDir, walDirName)))

	// A restart replays the same entries from the WAL into a fresh FSM.
	c.restart(full)
	commit("after-restart")
	waitSameState(t, 10*time.Second, -1, c.leader(), other, full)
	have := full.fsm.state().Entries
	seen := make(map[string]bool, len(have))
	for _, e := range have {
		seen[e] = true
	}
	for _, v := range acked {
		if !seen[v] {
			t.Errorf("the full node lost acknowledged entry %.20q...", v)
		}
	}
}

// TestWALTornTailAtRestart is TestTornLogTailAtRestart for the raft-wal
// store: it stops a follower of a 3-node cluster, damages the tail of its
// WAL in several ways and starts a Node on it each time, in a child
// process, while the cluster keeps serving. Each start must either fail
// with an error that names the wal directory, or come up and catch up to
// the leader's exact entries; a panic, a crash or a hang fails the test.
// When a start fails, wiping the DataDir and joining again as a new node
// must bring the cluster back to three voters with equal FSMs.
func TestWALTornTailAtRestart(t *testing.T) {
	t.Parallel()
	c := newLANCluster(t, 3, clusterOpts{logStore: canoe.LogStoreWAL}, "")
	for i := range 150 {
		commitOnLeader(t, c, fmt.Sprintf("e%03d-%s", i, strings.Repeat("x", 1000)))
	}
	leader := c.leader()
	torn := otherMember(c, leader, c.leader()) // neither the leader proposed to nor the current one
	other := otherMember(c, leader, torn)
	waitSameState(t, 10*time.Second, -1, leader, other, torn)
	if n := torn.fsm.len(); n < 150 {
		t.Fatalf("%d entries, want at least 150", n)
	}
	if err := stopNode(torn); err != nil {
		t.Fatal(err)
	}
	dir := torn.cfg.DataDir
	walDir := filepath.Join(dir, walDirName)
	meta := filepath.Join(walDir, walMetaName)

	// tail returns the newest segment file and its last entry and commit
	// frames (a batch is its entry frames, then one commit frame whose CRC
	// covers them).
	tail := func() (path string, entry, commit walFrame) {
		segs := walSegments(t, walDir)
		if len(segs) == 0 {
			t.Fatalf("no segment file in %s", walDir)
		}
		path = filepath.Join(walDir, segs[len(segs)-1])
		for _, f := range readWALFrames(t, path) {
			switch f.typ {
			case walFrameEntry:
				entry = f
			case walFrameCommit:
				commit = f
			}
		}
		if entry.size == 0 || commit.off < entry.off {
			t.Fatalf("%s: no committed entry frame", path)
		}
		return path, entry, commit
	}
	overwrite := func(path string, off int64, n int) error {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		garbage := make([]byte, n)
		for i := range garbage {
			garbage[i] = byte(0xa5 ^ i*7)
		}
		if _, err := f.WriteAt(garbage, off); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	variants := []struct {
		name    string
		corrupt func() (string, error)
	}{{
		name: "segment cut inside its last frame (the last commit frame, torn)",
		corrupt: func() (string, error) {
			seg, _, commit := tail()
			return fmt.Sprintf("%s cut to %d bytes", filepath.Base(seg), commit.off+commit.size-3), os.Truncate(seg, commit.off+commit.size-3)
		},
	}, {
		name: "last entry frame's payload overwritten with garbage",
		corrupt: func() (string, error) {
			seg, entry, _ := tail()
			return fmt.Sprintf("%s: %d bytes at %d", filepath.Base(seg), entry.size-walFrameHeader, entry.off+walFrameHeader),
				overwrite(seg, entry.off+walFrameHeader, int(entry.size-walFrameHeader))
		},
	}, {
		name: "last frame overwritten with garbage",
		corrupt: func() (string, error) {
			seg, _, commit := tail()
			return fmt.Sprintf("%s: %d bytes at %d", filepath.Base(seg), commit.size, commit.off), overwrite(seg, commit.off, int(commit.size))
		},
	}, {
		name: "segment cut to its file header",
		corrupt: func() (string, error) {
			seg, _, _ := tail()
			return filepath.Base(seg), os.Truncate(seg, walFileHeader)
		},
	}, {
		name: "wal-meta.db's meta pages overwritten with garbage",
		corrupt: func() (string, error) {
			// bbolt's two meta pages are its first two 4 KiB pages; the
			// meta fields follow each 16-byte page header.
			return walMetaName, errors.Join(overwrite(meta, 16, 64), overwrite(meta, 4096+16, 64))
		},
	}}
	failedStart := false
	for i, v := range variants {
		intact := saveDir(t, walDir)
		what, err := v.corrupt()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		t.Logf("%s: %s", v.name, what)

		marker := fmt.Sprintf("wal-torn-marker-%d", i)
		child := startTornChild(t, dir, leader.url, marker)
		for j := range 20 {
			commitOnLeader(t, c, fmt.Sprintf("wal-torn-%d-%02d", i, j))
		}
		leader = c.leader()
		mustPropose(t, leader, marker)
		waitSameState(t, 10*time.Second, -1, leader, otherMember(c, leader, torn))
		res := child.wait(t, 30*time.Second)

		if judgeTornStart(t, v.name, walDir, res, leader) {
			continue // the child stopped it cleanly: the WAL is consistent again
		}
		failedStart = true
		restoreDir(t, walDir, intact)
	}
	if !failedStart {
		t.Logf("every variant came back and caught up")
		return
	}

	fresh := rejoinWiped(t, c, leader, other, torn, dir)
	if _, err := os.Stat(filepath.Join(dir, walDirName, walMetaName)); err != nil {
		t.Errorf("the rejoined node has no WAL: %v", err)
	}
	t.Logf("recovery: the wiped DataDir rejoined as node %v with %d entries, equal to the leader's", fresh, fresh.fsm.len())
}

// Environment of the child process TestWALKill9MidWrite kills: it runs a
// node on a DataDir and reports how many entries it applied until killed.
const (
	walKillChildDir    = "CANOE_TEST_WALKILL_DIR"
	walKillChildPrefix = "walkill-child: "
)

// TestWALKill9MidWrite runs a follower of a 3-node cluster in a child
// process while four proposers write through the leader, and SIGKILLs it
// at a random moment while it appends to its WAL, three times. Each time a
// node restarted on the same DataDir (in another child process) must start
// and catch up to exactly the leader's entries.
func TestWALKill9MidWrite(t *testing.T) {
	if dir := os.Getenv(walKillChildDir); dir != "" {
		walKillChild(t, dir)
		return
	}
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	c := newLANCluster(t, 3, clusterOpts{logStore: canoe.LogStoreWAL}, "")
	leader := c.leader()
	victim := otherMember(c, leader, c.leader()) // neither the leader proposed to nor the current one
	mustPropose(t, leader, "before")
	waitSameState(t, 10*time.Second, -1, leader, otherMember(c, leader, victim), victim)
	if err := stopNode(victim); err != nil {
		t.Fatal(err)
	}
	dir := victim.cfg.DataDir

	for round := range 3 {
		child := childProc{startChild(t, "TestWALKill9MidWrite", walKillChildDir+"="+dir)}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
		defer halt() // a failed round leaves no proposer behind
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					v := fmt.Sprintf("kill-%d-w%d-%05d-%s", round, w, i, strings.Repeat("k", 2000))
					if err := propose(leader, v); err != nil && !errors.Is(err, canoe.ErrUnknownOutcome) {
						t.Errorf("propose on %v: %v", leader, err)
						return
					}
				}
			})
		}
		// Kill it once it has caught up and is applying (so appending)
		// the stream, at a random moment.
		target := leader.fsm.len()
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("the child to apply %d entries", target), func() bool {
			select {
			case err := <-child.done:
				t.Fatalf("round %d: the child ended (%v) before it was killed; output:\n%s", round, err, crashExcerpt(child.out.String()))
			default:
			}
			return child.applied() >= target
		})
		time.Sleep(time.Duration(rnd.IntN(200)) * time.Millisecond)
		before := child.applied()
		if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := <-child.done
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the child ended with %v before it was killed; output:\n%s", round, err, crashExcerpt(child.out.String()))
		}
		halt()
		if t.Failed() {
			t.FailNow()
		}
		t.Logf("round %d: killed the child after it applied at least %d entries (leader at %d); WAL segments %v",
			round, before, leader.fsm.len(), walSegments(t, filepath.Join(dir, walDirName)))

		marker := fmt.Sprintf("kill-marker-%d", round)
		again := startTornChild(t, dir, leader.url, marker)
		l := c.leader()
		mustPropose(t, l, marker)
		waitSameState(t, 10*time.Second, -1, l, otherMember(c, l, victim))
		res := again.wait(t, 30*time.Second)
		want := entriesDigest(l.fsm.state().Entries)
		switch {
		case res.cameBack == want:
			t.Logf("round %d: restarted and caught up (%s)", round, res.cameBack)
		case res.cameBack != "":
			t.Fatalf("round %d: the restarted node came back with entries %s, the leader has %s", round, res.cameBack, want)
		case res.startErr != "":
			t.Fatalf("round %d: Start after kill -9 failed: %s", round, res.startErr)
		default:
			t.Fatalf("round %d: restart after kill -9: %s; child output:\n%s", round, res.failure, crashExcerpt(res.output))
		}
	}
}

// walKillChild runs in TestWALKill9MidWrite's child process: it starts a
// node on dir and prints how many entries it has applied every few
// milliseconds until it is killed.
func walKillChild(t *testing.T, dir string) {
	fsm := newFSM()
	cfg := canoe.NodeConfig{
		FSM:      fsm,
		DataDir:  dir,
		BindAddr: "127.0.0.1",
		Timing:   canoe.LocalProfile(),
		Logger:   hclog.New(&hclog.LoggerOptions{Name: "walkill", Level: hclog.Warn, Output: os.Stderr}),
	}
	n, err := canoe.NewNode(&cfg)
	if err == nil {
		err = n.Start()
	}
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		fmt.Printf("%sapplied %d\n", walKillChildPrefix, fsm.len())
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("not killed within 40s")
	_ = n.Stop()
}

// TestLogStoreDetection checks that a DataDir keeps the log format it
// holds: a bolt DataDir restarts as bolt under LogStoreAuto (no wal/ is
// created) with its state, LogStoreWAL on it fails Start with an
// ErrInvalidConfig that names both formats, and a DataDir holding both
// logs fails Start with an error that names both.
func TestLogStoreDetection(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, clusterOpts{logStore: canoe.LogStoreBolt})
	m := c.leader()
	mustPropose(t, m, "bolt-1")
	dir := m.cfg.DataDir
	walDir := filepath.Join(dir, walDirName)
	boltOnly := func(when string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, boltFileName)); err != nil {
			t.Errorf("%s: %v", when, err)
		}
		if _, err := os.Stat(walDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %s exists (stat: %v), want a bolt-only DataDir", when, walDir, err)
		}
	}
	boltOnly("bolt node")

	m.cfg.LogStore = canoe.LogStoreAuto
	c.restart(m)
	testutil.WaitFor(t, 10*time.Second, "the restarted node to lead", m.node.IsLeader)
	mustPropose(t, m, "bolt-2")
	if got := m.fsm.state().Entries; !slices.Equal(got, []string{"bolt-1", "bolt-2"}) {
		t.Fatalf("restarted under LogStoreAuto, the node holds %q, want [bolt-1 bolt-2]", got)
	}
	boltOnly("restart under LogStoreAuto")
	if err := stopNode(m); err != nil {
		t.Fatal(err)
	}

	cfg := m.cfg
	cfg.ID, cfg.RaftPort, cfg.ConfigurationPort = 0, 0, 0
	cfg.FSM = newFSM()
	cfg.LogStore = canoe.LogStoreWAL
	started, err := newAndStart(&cfg)
	if started || !errors.Is(err, canoe.ErrInvalidConfig) || !strings.Contains(err.Error(), "bolt") || !strings.Contains(err.Error(), "wal") {
		t.Errorf("LogStoreWAL on a bolt DataDir: started %v, error %v; want an ErrInvalidConfig naming both formats", started, err)
	} else {
		t.Logf("LogStoreWAL on a bolt DataDir: %v", err)
	}
	boltOnly("LogStoreWAL refused")

	// Both logs: a wal/ beside raft.db (as if a node had once run with each).
	if err := os.Mkdir(walDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(walDir, walMetaName), []byte("not empty"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.LogStore = canoe.LogStoreAuto
	started, err = newAndStart(&cfg)
	if started || err == nil || !strings.Contains(err.Error(), boltFileName) || !strings.Contains(err.Error(), walDirName) {
		t.Errorf("DataDir with both raft.db and wal/: started %v, error %v; want an error naming both", started, err)
	} else {
		t.Logf("DataDir with both logs: %v", err)
	}

	// Without the stray wal/ it is the bolt node again.
	if err := os.RemoveAll(walDir); err != nil {
		t.Fatal(err)
	}
	cfg.FSM = newFSM()
	again := c.mustStart(cfg)
	if again.id != m.id {
		t.Fatalf("restarted node has ID %x, want %x", again.id, m.id)
	}
	testutil.WaitFor(t, 10*time.Second, "the restarted node to lead", again.node.IsLeader)
	mustPropose(t, again, "bolt-3")
	if got := again.fsm.state().Entries; !slices.Equal(got, []string{"bolt-1", "bolt-2", "bolt-3"}) {
		t.Fatalf("after the refused starts the node holds %q, want [bolt-1 bolt-2 bolt-3]", got)
	}
	boltOnly("final restart")
}
