package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// Files canoe keeps in DataDir (canoe/internal/storage/storage.go).
const (
	boltFileName     = "raft.db"
	identityFileName = "canoe.json"
)

// TestDiskFullFollowerDoesNotCrashOrLoseData puts one follower's DataDir on
// a 12 MiB tmpfs, fills most of it with a filler file, and proposes 4 KiB
// entries through the leader until that follower's raft reports ENOSPC. The
// leader and the other follower must keep committing, also across a
// leadership change (the full node must then persist a new term: raft
// panics if it cannot), and the full node must stay up. Once the filler is
// deleted the full node must catch up by itself, without a restart, and a
// restart afterwards must replay the same entries from its bolt file.
func TestDiskFullFollowerDoesNotCrashOrLoseData(t *testing.T) {
	requireTmpfs(t)
	c := newCluster(t, 2, clusterOpts{})
	// Mounted after newCluster's first TempDir, so it is unmounted before
	// that directory is removed, and after the nodes stop (c.config below
	// registers another stopAll, which runs first).
	mnt := mountTmpfs(t, "12m")
	leader := c.leader()
	cfg := c.config(false, leader.url)
	cfg.DataDir = filepath.Join(mnt, "data")
	cfg.LogStore = canoe.LogStoreBolt
	var lines *lineLog
	cfg.Logger, lines = newCapturingLogger(t, "canoe-full")
	full := c.mustStart(cfg)
	c.waitVoters(3)
	leader = c.leader()
	if leader == full {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := full.node.TransferLeadership(ctx)
		cancel()
		if err != nil {
			t.Fatalf("move leadership off the tmpfs node: %v", err)
		}
		leader = c.leader()
	}

	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler, mnt, 1<<20)
	t.Logf("tmpfs filled: %d bytes left for the follower's raft.db", freeBytes(t, mnt))

	// Propose until the full node's raft says the disk is full.
	var (
		mu    sync.Mutex // guards acked
		acked []string
	)
	proposeAll := func(m *member, prefix string, stop func() bool) {
		var wg sync.WaitGroup
		payload := strings.Repeat("p", 4000)
		for w := range 4 {
			wg.Go(func() {
				for i := 0; !stop(); i++ {
					v := fmt.Sprintf("%s-w%d-%05d-%s", prefix, w, i, payload)
					err := propose(m, v)
					if errors.Is(err, canoe.ErrUnknownOutcome) {
						t.Logf("propose on %v: %v", m, err) // a leader change under load
						continue
					}
					if err != nil {
						t.Errorf("propose on %v while a follower's disk is full: %v", m, err)
						return
					}
					mu.Lock()
					acked = append(acked, v)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	const enospc = "no space left on device"
	deadline := time.Now().Add(20 * time.Second)
	proposeAll(leader, "fill", func() bool {
		return t.Failed() || len(lines.matching(enospc)) > 0 || time.Now().After(deadline)
	})
	if t.Failed() {
		t.FailNow()
	}
	if len(lines.matching(enospc)) == 0 {
		t.Fatalf("the tmpfs node never reported %q (%d bytes free, %d entries committed)", enospc, freeBytes(t, mnt), leader.fsm.len())
	}
	t.Logf("full node's raft: %s", lines.matching(enospc)[0])
	// Take the last free blocks too, so bbolt cannot grow its file at all
	// (it may still reuse pages it freed).
	topUp := filepath.Join(mnt, "filler2")
	fillUp(t, topUp)

	// A leadership change while the disk is full: every node persists the
	// new term.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := leader.node.TransferLeadership(ctx)
	cancel()
	if err != nil {
		t.Fatalf("transfer leadership while a follower's disk is full: %v", err)
	}
	leader = c.leader()
	if leader == full {
		t.Fatalf("the node whose disk is full became leader")
	}
	other := otherMember(c, leader, full)
	for i := range 20 {
		v := fmt.Sprintf("full-%02d", i)
		mustPropose(t, leader, v)
		acked = append(acked, v)
	}
	waitSameState(t, 10*time.Second, -1, leader, other)
	if !full.node.IsRunning() {
		t.Fatalf("the node whose disk is full stopped")
	}
	// Whether the full node falls behind depends on whether bbolt can reuse
	// pages it freed earlier; either way it must stay up and lose nothing.
	t.Logf("disk full: full node at %d entries, leader and other follower at %d", full.fsm.len(), leader.fsm.len())

	// Free the space: the full node catches up without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(topUp); err != nil {
		t.Fatal(err)
	}
	// The leader backs off retrying a follower that failed (up to seconds).
	waitSameState(t, 15*time.Second, -1, leader, other, full)
	mustPropose(t, leader, "after-free")
	waitSameState(t, 5*time.Second, -1, leader, other, full)

	// What it wrote while short of space is readable: a restart replays
	// the same entries from its raft.db into a fresh FSM.
	c.restart(full)
	mustPropose(t, leader, "after-restart")
	waitSameState(t, 10*time.Second, -1, leader, other, full)
	for _, v := range append(acked, "after-free", "after-restart") {
		if !full.fsm.has(v) {
			t.Errorf("the full node lost acknowledged entry %.20q...", v)
		}
	}
}

// otherMember returns the running member that is neither a nor b.
func otherMember(c *cluster, a, b *member) *member {
	c.t.Helper()
	for _, m := range c.running() {
		if m != a && m != b {
			return m
		}
	}
	c.t.Fatalf("no running member besides %v and %v", a, b)
	return nil
}

// requireTmpfsEnv names the variable that makes the tests needing a tmpfs
// (the disk-full tests) fail instead of skipping when they cannot mount
// one. CI (.ci/run, as root) sets it, so that they never skip unseen.
const requireTmpfsEnv = "CANOE_TEST_REQUIRE_TMPFS"

// requireTmpfs skips t, saying why, unless it runs as root with mount(8):
// the disk-full tests fill a tmpfs of their own. See cannotMountTmpfs.
func requireTmpfs(t *testing.T) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		cannotMountTmpfs(t, fmt.Sprintf("needs root to mount a tmpfs, runs as uid %d", uid))
	}
	if _, err := exec.LookPath("mount"); err != nil {
		cannotMountTmpfs(t, fmt.Sprintf("needs mount(8) to mount a tmpfs: %v", err))
	}
}

// cannotMountTmpfs skips t because it cannot mount a tmpfs, saying why and
// how to run it, or fails it when requireTmpfsEnv is set.
func cannotMountTmpfs(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(requireTmpfsEnv) != "" {
		t.Fatalf("%s; %s is set, so this test must run, not skip", why, requireTmpfsEnv)
	}
	t.Skipf("SKIPPED, disk-full behaviour NOT tested: %s (run the tests as root; CI does, with %s=1 so that this fails instead of skipping)", why, requireTmpfsEnv)
}

// mountTmpfs mounts a tmpfs of size under a new temporary directory and
// unmounts it at cleanup. When the mount fails it skips the test (or fails
// it: see cannotMountTmpfs).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(mnt, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		cannotMountTmpfs(t, fmt.Sprintf("cannot mount a tmpfs (needs root and mount privileges): %v: %s", err, bytes.TrimSpace(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; unmounting lazily", mnt, err, bytes.TrimSpace(out))
			if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount -l %s: %v: %s", mnt, err, bytes.TrimSpace(out))
			}
		}
	})
	return mnt
}

// fillDisk writes path until about leave bytes are free on dir's file system.
func fillDisk(t *testing.T, path, dir string, leave int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xa5}, 64<<10)
	for freeBytes(t, dir) > leave+int64(len(chunk)) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatalf("write filler: %v", err)
		}
	}
}

// fillUp writes path until the file system is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0x5a}, 4<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("write %s: %v", path, err)
		}
	}
}

func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return int64(st.Bavail) * st.Bsize
}

// lineLog keeps the log lines written to it.
type lineLog struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// matching returns the lines that contain s.
func (l *lineLog) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// newCapturingLogger is newLogger that also keeps every line it writes.
func newCapturingLogger(t testing.TB, name string) (hclog.Logger, *lineLog) {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	lines := &lineLog{}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: io.MultiWriter(w, lines)}), lines
}

// Environment of the child process that TestTornLogTailAtRestart starts a
// node in: a damaged bolt file may make bbolt fault on its mmap (SIGBUS),
// which kills the whole process, not only the goroutine.
const (
	tornChildDir    = "CANOE_TEST_TORN_DIR"    // DataDir to start on
	tornChildPeer   = "CANOE_TEST_TORN_PEER"   // a member's URL (BootstrapPeers)
	tornChildMarker = "CANOE_TEST_TORN_MARKER" // entry to wait for
	tornChildPrefix = "torn-child: "
)

// TestTornLogTailAtRestart stops a follower of a 3-node cluster, damages the
// tail of its raft.db in three ways and starts a Node on it each time, in a
// child process, while the cluster keeps serving. Each start must either
// fail with an error that names raft.db, or come up and catch up to the
// leader's exact entries; a panic, a crash or a hang fails the test. When a
// start fails, wiping the DataDir and joining again as a new node (new ID,
// URL join) must bring the cluster back to three voters with equal FSMs.
func TestTornLogTailAtRestart(t *testing.T) {
	if os.Getenv(tornChildDir) != "" {
		tornChild(t)
		return
	}
	c := newCluster(t, 3, clusterOpts{logStore: canoe.LogStoreBolt})
	leader := c.leader()
	for i := range 150 {
		mustPropose(t, leader, fmt.Sprintf("e%03d-%s", i, strings.Repeat("x", 1000)))
	}
	torn := otherMember(c, leader, c.leader()) // neither the leader proposed to nor the current one
	other := otherMember(c, leader, torn)
	waitSameState(t, 10*time.Second, 150, leader, other, torn)
	if err := stopNode(torn); err != nil {
		t.Fatal(err)
	}
	dir := torn.cfg.DataDir
	db := filepath.Join(dir, boltFileName)

	// bbolt writes each commit's dirty pages, then its freelist, at the
	// end of the pages in use when it has no room among freed pages, and
	// grows its file ahead of use (to the mmap size below 16 MiB). So the
	// file's last KiB are often pages not in use yet, and the last commit's
	// freelist page is the tail of the data.
	variants := []struct {
		name    string
		corrupt func(bm boltMeta, size int64) error
	}{{
		name: "unused preallocated tail cut off",
		corrupt: func(bm boltMeta, size int64) error {
			if size-bm.pageSize*bm.pages < bm.pageSize {
				return errors.New("no unused tail to cut")
			}
			return os.Truncate(db, bm.pageSize*bm.pages)
		},
	}, {
		name: "file cut off from the last commit's freelist page on",
		corrupt: func(bm boltMeta, _ int64) error {
			return os.Truncate(db, bm.pageSize*bm.freelist)
		},
	}, {
		name: "last commit's freelist page overwritten with garbage",
		corrupt: func(bm boltMeta, _ int64) error {
			f, err := os.OpenFile(db, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, int(bm.pageSize/4)), bm.pageSize*bm.freelist); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		},
	}}
	failedStart := false
	for i, v := range variants {
		intact, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		bm := readBoltMeta(t, db)
		if err := v.corrupt(bm, int64(len(intact))); err != nil {
			t.Logf("%s: skipped: %v", v.name, err)
			continue
		}
		t.Logf("%s: raft.db was %d bytes: %d pages of %d bytes in use, last freelist page %d, root page %d",
			v.name, len(intact), bm.pages, bm.pageSize, bm.freelist, bm.root)

		marker := fmt.Sprintf("torn-marker-%d", i)
		child := startTornChild(t, dir, leader.url, marker)
		// The cluster keeps serving meanwhile.
		for j := range 20 {
			mustPropose(t, leader, fmt.Sprintf("torn-%d-%02d", i, j))
		}
		mustPropose(t, leader, marker)
		waitSameState(t, 10*time.Second, -1, leader, other)
		res := child.wait(t, 30*time.Second)

		if judgeTornStart(t, v.name, db, res, leader) {
			continue // the child stopped it: raft.db is consistent again
		}
		failedStart = true
		// Put the intact file back for the next variant.
		if err := os.WriteFile(db, intact, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !failedStart {
		return
	}

	fresh := rejoinWiped(t, c, leader, other, torn, dir)
	t.Logf("recovery: the wiped DataDir rejoined as node %v with %d entries, equal to the leader's", fresh, fresh.fsm.len())
}

// rejoinWiped is the recovery path for a member whose log is damaged:
// remove it, wipe its DataDir and join again from there as a new node. It
// returns the new member once it holds the same entries as the others.
func rejoinWiped(t *testing.T, c *cluster, leader, other, torn *member, dir string) *member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := leader.node.RemovePeer(ctx, torn.id)
	cancel()
	if err != nil {
		t.Fatalf("remove the member whose log is damaged: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	cfg := c.config(false, leader.url)
	cfg.DataDir = dir
	fresh := c.mustStart(cfg)
	if fresh.id == torn.id {
		t.Fatalf("the node on the wiped DataDir kept ID %x", torn.id)
	}
	c.waitVoters(3)
	mustPropose(t, fresh, "after-rejoin")
	waitSameState(t, 15*time.Second, -1, c.leader(), other, fresh)
	return fresh
}

// tornChild runs in the child process: it starts a Node on the damaged
// DataDir and reports on stdout whether Start failed or the node caught up
// to the marker entry.
func tornChild(t *testing.T) {
	fsm := newFSM()
	cfg := canoe.NodeConfig{
		FSM:            fsm,
		DataDir:        os.Getenv(tornChildDir),
		BootstrapPeers: []string{os.Getenv(tornChildPeer)},
		BindAddr:       "127.0.0.1",
		Timing:         canoe.LocalProfile(),
		Logger:         hclog.New(&hclog.LoggerOptions{Name: "torn", Level: hclog.Warn, Output: os.Stderr}),
	}
	n, err := canoe.NewNode(&cfg)
	if err == nil {
		err = n.Start()
	}
	if err != nil {
		fmt.Printf("%sstart-error %s\n", tornChildPrefix, strings.ReplaceAll(err.Error(), "\n", " "))
		if n != nil {
			_ = n.Stop()
		}
		return
	}
	marker := os.Getenv(tornChildMarker)
	deadline := time.Now().Add(15 * time.Second)
	for !fsm.has(marker) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fsm.has(marker) {
		fmt.Printf("%scame-back %s\n", tornChildPrefix, entriesDigest(fsm.state().Entries))
	} else {
		fmt.Printf("%sno-catch-up after 15s with %d entries\n", tornChildPrefix, fsm.len())
	}
	if err := n.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

type tornChildProc struct {
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan error
}

type tornResult struct {
	cameBack string // entries digest of a node that caught up
	startErr string // Start's error
	failure  string // otherwise: what went wrong
	output   string
}

// judgeTornStart checks a child's start on a log damaged at path: the node
// came back with exactly the leader's entries, or Start failed with an
// error naming path; a crash or a hang is an error. It reports whether
// the node came back.
func judgeTornStart(t *testing.T, variant, path string, res tornResult, leader *member) bool {
	t.Helper()
	switch {
	case res.cameBack != "":
		if want := entriesDigest(leader.fsm.state().Entries); res.cameBack != want {
			t.Errorf("%s: the node came back with entries %s, the leader has %s", variant, res.cameBack, want)
		} else {
			t.Logf("%s: Start succeeded and the node caught up (%s)", variant, res.cameBack)
		}
		return true
	case res.startErr != "":
		t.Logf("%s: Start failed: %s", variant, res.startErr)
		if !strings.Contains(res.startErr, path) {
			t.Errorf("%s: Start failed with %q, which does not name the damaged log %s", variant, res.startErr, path)
		}
	default:
		t.Errorf("%s: starting a Node on the damaged log %s: %s; want a clear error or a caught-up node; child output:\n%s",
			variant, path, res.failure, crashExcerpt(res.output))
	}
	return false
}

// startTornChild re-runs this test binary, only TestTornLogTailAtRestart,
// as the child.
func startTornChild(t *testing.T, dir, peer, marker string) *tornChildProc {
	t.Helper()
	return startChild(t, "TestTornLogTailAtRestart", tornChildDir+"="+dir, tornChildPeer+"="+peer, tornChildMarker+"="+marker)
}

// startChild re-runs this test binary, only the test named, with env
// added. A child still running at cleanup (a test that failed early) is
// killed.
func startChild(t *testing.T, test string, env ...string) *tornChildProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), env...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child process: %v", err)
	}
	p := &tornChildProc{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return p
}

func (p *tornChildProc) wait(t *testing.T, timeout time.Duration) tornResult {
	t.Helper()
	var res tornResult
	var exitErr error
	select {
	case exitErr = <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		res.output = p.out.String()
		res.failure = fmt.Sprintf("hung: no result within %v", timeout)
		return res
	}
	res.output = p.out.String()
	sc := bufio.NewScanner(strings.NewReader(res.output))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), tornChildPrefix)
		if !ok {
			continue
		}
		if s, ok := strings.CutPrefix(line, "came-back "); ok {
			res.cameBack = s
		} else if s, ok := strings.CutPrefix(line, "start-error "); ok {
			res.startErr = s
		} else {
			res.failure = line
		}
	}
	switch {
	case exitErr != nil:
		res.cameBack, res.startErr = "", ""
		res.failure = fmt.Sprintf("killed the process (%v)", exitErr)
	case res.cameBack == "" && res.startErr == "" && res.failure == "":
		res.failure = "reported nothing"
	}
	return res
}

// crashExcerpt returns the part of a child's output that explains a crash:
// from the panic or fatal error through the first frames of its stack.
func crashExcerpt(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "unexpected fault address") {
			return strings.Join(lines[i:min(len(lines), i+40)], "\n")
		}
	}
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// entriesDigest names a list of FSM entries by its length and hash.
func entriesDigest(entries []string) string {
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%d:%s\n", len(e), e)
	}
	return fmt.Sprintf("%d-entries-%x", len(entries), h.Sum(nil)[:8])
}

// boltMeta is what the newer valid meta page of a bolt file says.
type boltMeta struct {
	pageSize int64
	pages    int64 // pages in use: the high-water mark (meta.pgid)
	freelist int64 // page of the freelist the last commit wrote
	root     int64 // root page of the last commit's tree
}

// readBoltMeta reads the newer valid meta page of the bolt file at path.
func readBoltMeta(t testing.TB, path string) boltMeta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const boltMagic = 0xED0CDAED
	var newest uint64
	var bm boltMeta
	for _, off := range []int64{0, 4096} { // meta pages 0 and 1 (4 KiB pages)
		// page header (16 bytes), then magic, version, pageSize, flags
		// (4 bytes each), root bucket (root page, sequence), freelist
		// page, pgid, txid (8 bytes each).
		buf := make([]byte, 16+64)
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatalf("read bolt meta page of %s: %v", path, err)
		}
		m := buf[16:]
		if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
			continue
		}
		if txid := binary.LittleEndian.Uint64(m[48:]); bm.pageSize == 0 || txid > newest {
			newest = txid
			bm = boltMeta{
				pageSize: int64(binary.LittleEndian.Uint32(m[8:])),
				root:     int64(binary.LittleEndian.Uint64(m[16:])),
				freelist: int64(binary.LittleEndian.Uint64(m[32:])),
				pages:    int64(binary.LittleEndian.Uint64(m[40:])),
			}
		}
	}
	if bm.pageSize != 4096 || bm.freelist < 2 || bm.freelist >= bm.pages {
		t.Fatalf("%s: no valid bolt meta page with 4 KiB pages: %+v", path, bm)
	}
	return bm
}

// TestIdentityFileDamaged damages DataDir/canoe.json of a stopped node in
// several ways: NewNode (or Start) must return an error that names the file
// and must not panic. With the file put back, the node starts again.
func TestIdentityFileDamaged(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	m := c.leader()
	mustPropose(t, m, "before")
	before := m.node.Self()
	if err := stopNode(m); err != nil {
		t.Fatal(err)
	}
	dir := m.cfg.DataDir
	path := filepath.Join(dir, identityFileName)
	intact, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		damage func() error
	}{
		{"garbage", func() error { return os.WriteFile(path, []byte("\x00\xff garbage \x13\x37"), 0o600) }},
		{"empty", func() error { return os.WriteFile(path, nil, 0o600) }},
		{"cut in half", func() error { return os.WriteFile(path, intact[:len(intact)/2], 0o600) }},
		{"JSON of another shape", func() error { return os.WriteFile(path, []byte(`["id", 7]`), 0o600) }},
		{"ID zero", func() error { return os.WriteFile(path, []byte(`{"version":1,"id":0,"raft_port":1}`), 0o600) }},
		{"unknown version", func() error {
			return os.WriteFile(path, bytes.Replace(intact, []byte(`"version": 1`), []byte(`"version": 99`), 1), 0o600)
		}},
		{"a directory", func() error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return os.Mkdir(path, 0o750)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, intact, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(); err != nil {
				t.Fatalf("damage %s: %v", path, err)
			}
			cfg := m.cfg
			cfg.ID, cfg.RaftPort, cfg.ConfigurationPort = 0, 0, 0
			cfg.FSM = newFSM()
			started, err := newAndStart(&cfg)
			if started {
				t.Fatalf("NewNode and Start on a damaged %s succeeded (stop: %v), want an error", path, err)
			}
			if !strings.Contains(err.Error(), identityFileName) || !strings.Contains(err.Error(), dir) {
				t.Errorf("got error %q, want one naming %s in %s", err, identityFileName, dir)
			}
			t.Logf("error: %v", err)
		})
	}

	// Put the file back: the same member starts with its data.
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, intact, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := m.cfg
	cfg.ID, cfg.RaftPort, cfg.ConfigurationPort = 0, 0, 0
	cfg.FSM = newFSM()
	again := c.mustStart(cfg)
	if after := again.node.Self(); after.ID != before.ID || after.RaftPort != before.RaftPort || after.ConfigPort != before.ConfigPort {
		t.Fatalf("restarted node is %+v, want the ID and ports recorded in %s: %+v", after, path, before)
	}
	testutil.WaitFor(t, 10*time.Second, "the restarted node to lead", again.node.IsLeader)
	mustPropose(t, again, "after")
	if got := again.fsm.state().Entries; len(got) != 2 || got[0] != "before" {
		t.Fatalf("restarted node holds %q, want [before after]", got)
	}
}

// newAndStart creates a node from cfg and starts it, turning a panic into
// an error so that one damaged file fails one case, not the whole run. A
// node that started is stopped again (err is then Stop's).
func newAndStart(cfg *canoe.NodeConfig) (started bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic (want an error): %v", r)
		}
	}()
	n, err := canoe.NewNode(cfg)
	if err != nil {
		return false, err
	}
	if err := n.Start(); err != nil {
		return false, err
	}
	return true, n.Stop()
}
