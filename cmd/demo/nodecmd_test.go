package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// runOnce runs "demo" with args until it exits (it must within timeout)
// and returns its exit code and output.
func runOnce(t *testing.T, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	bin, err := buildDemo()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CANOE_V=false")
	done := make(chan struct{})
	var out []byte
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("demo %s still running after %v:\n%s", strings.Join(args, " "), timeout, out)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestNodeBusyPort: a port already in use fails the start with an error
// that names the flag to change, and leaves no DataDir behind. (Before,
// canoe's "raft listener: ... address already in use" named no flag, and
// the DataDir it had created stayed.)
func TestNodeBusyPort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	busyTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyTCP.Close()
	busy := strconv.Itoa(busyTCP.Addr().(*net.TCPAddr).Port)
	busyUDP := udpOnlyPort(t)
	defer busyUDP.Close()
	busyU := strconv.Itoa(busyUDP.LocalAddr().(*net.UDPAddr).Port)

	for _, tc := range []struct {
		flag, value, want string
	}{
		{"-raft-port", busy, "-raft-port: tcp 127.0.0.1:" + busy + " is already in use; choose another port with -raft-port (or CANOE_RAFT_PORT)"},
		{"-config-port", busy, "choose another port with -config-port"},
		{"-gossip-port", busy, "choose another port with -gossip-port"},
		{"-gossip-port", busyU, "-gossip-port: udp 127.0.0.1:" + busyU + " is already in use"},
		{"-http", "127.0.0.1:" + busy, "choose another port with -http"},
	} {
		t.Run(tc.flag+"="+tc.value, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			args := []string{"node", "-bind", "127.0.0.1", "-bootstrap", "-data", dir,
				"-raft-port", "0", "-config-port", "0", "-gossip-port", "0", "-http", "127.0.0.1:0", tc.flag, tc.value}
			code, out := runOnce(t, 30*time.Second, args...)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit 1 and %q", code, out, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("-data %s exists after the failed start (%v)", dir, err)
			}
		})
	}
}

// udpOnlyPort returns a UDP socket on a port whose TCP twin was free a
// moment ago: the demo checks -gossip-port's TCP side first, and a TCP
// port taken by some other process would fail that check instead (seen on
// a busy machine: "tcp 127.0.0.1:44444 is already in use").
func udpOnlyPort(t *testing.T) net.PacketConn {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			ln.Close()
			return pc
		}
		pc.Close()
	}
	t.Fatal("found no UDP port whose TCP twin is free")
	return nil
}

// TestNodeFailedFirstStart: a first start that fails after canoe created
// its files in DataDir removes them; files that were there before stay.
// (Before, wal/ and snapshots/ stayed, half made.)
func TestNodeFailedFirstStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	// An advertised host name that cannot resolve fails Start after DataDir
	// is open; the name is not a valid DNS name, so no query is sent.
	args := func(dir string) []string {
		return []string{"node", "-bind", "127.0.0.1", "-advertise", "no!such!host", "-bootstrap", "-data", dir,
			"-raft-port", "0", "-config-port", "0", "-gossip-port", "0", "-http", "127.0.0.1:0"}
	}
	t.Run("new directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		code, out := runOnce(t, 30*time.Second, args(dir)...)
		if code != 1 || !strings.Contains(out, "resolve AdvertiseAddr") {
			t.Fatalf("exit %d, output:\n%s\nwant exit 1 and a resolve error", code, out)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			entries, _ := os.ReadDir(dir)
			t.Fatalf("-data %s left after the failed first start, holding %v", dir, entries)
		}
	})
	t.Run("existing directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "README"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out := runOnce(t, 30*time.Second, args(dir)...); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		if names := testutil.DirNames(t, dir); !slices.Equal(names, []string{"README"}) {
			t.Fatalf("-data holds %v, want only the README that was there", names)
		}
	})
}

func TestDataDirUndo(t *testing.T) {
	t.Run("restart is not a first start", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, identityFile), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := inspectDataDir(dir)
		if err != nil || b.first() {
			t.Fatalf("inspectDataDir: first %v, err %v; want a restart", b.first(), err)
		}
	})
	t.Run("new entries go, old ones stay", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "old"), 0o700); err != nil {
			t.Fatal(err)
		}
		b, err := inspectDataDir(dir)
		if err != nil || !b.first() {
			t.Fatalf("inspectDataDir: first %v, err %v", b.first(), err)
		}
		for _, name := range []string{"wal", "snapshots", identityFile} {
			if err := os.MkdirAll(filepath.Join(dir, name, "x"), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.undo(); err != nil {
			t.Fatal(err)
		}
		if names := testutil.DirNames(t, dir); !slices.Equal(names, []string{"old"}) {
			t.Fatalf("after undo: %v, want only old", names)
		}
	})
	t.Run("a directory that did not exist goes", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new")
		b, err := inspectDataDir(dir)
		if err != nil || !b.first() {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := b.undo(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still there: %v", dir, err)
		}
	})
}

// TestNodeRestartExpect: a node restarted on its -data with -expect does
// not say it waits for other nodes (it does not: it is a member already),
// and says it restarted. (Before, every start with -expect printed the
// wait message.)
func TestNodeRestartExpect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildDemo()
	if err != nil {
		t.Fatal(err)
	}
	procs := nodeProcs(t, 1, func(int, [][3]int) []string { return []string{"-expect", "1"} })
	p := procs[0]
	p.start(t, bin)
	waitVoters(t, p, 1)
	p.interrupt(t, 30*time.Second)
	first, _ := os.ReadFile(p.log)

	p.start(t, bin)
	waitVoters(t, p, 1)
	p.interrupt(t, 30*time.Second)
	all, _ := os.ReadFile(p.log)
	second := string(all[len(first):])
	if strings.Contains(second, "waiting for the other nodes") {
		t.Errorf("the restarted node says it waits for the others:\n%s", second)
	}
	if !strings.Contains(second, "restarted from -data as a member") {
		t.Errorf("the restarted node does not say it restarted:\n%s", second)
	}
}

// TestNodeLeaveOnExit: a node run with -leave-on-exit leaves the cluster
// when interrupted, and its raft data is gone; the other node carries on
// alone.
func TestNodeLeaveOnExit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildDemo()
	if err != nil {
		t.Fatal(err)
	}
	procs := nodeProcs(t, 2, func(id int, ports [][3]int) []string {
		if id == 1 {
			return []string{"-bootstrap"}
		}
		return []string{"-join", "http://127.0.0.1:" + strconv.Itoa(ports[0][1]), "-leave-on-exit"}
	})
	procs[0].start(t, bin)
	waitVoters(t, procs[0], 1)
	procs[1].start(t, bin)
	waitVoters(t, procs[0], 2)

	procs[1].interrupt(t, 30*time.Second)
	log, _ := os.ReadFile(procs[1].log)
	if !strings.Contains(string(log), "left the cluster") {
		t.Errorf("node 2's log does not say it left:\n%s", log)
	}
	testutil.WaitFor(t, 10*time.Second, "node 1 alone in the cluster", func() bool {
		code, body := do(t, "GET", procs[0].kv+"/api/cluster", "")
		return code == 200 && len(decodeView(body).Nodes) == 1
	})
	for _, name := range []string{identityFile, "wal", "snapshots"} {
		if _, err := os.Stat(filepath.Join(procs[1].data, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("node 2's %s is still in -data (%v)", name, err)
		}
	}
	if code, body := do(t, "PUT", procs[0].kv+"/kv/alone", "yes"); code != 204 {
		t.Fatalf("PUT on the node left alone: %d %s", code, body)
	}
}

// TestUsageMatchesREADME: the multi-machine commands of the README's "On
// several machines" section appear, each verbatim, in demo node -h and in
// the package doc, so the three cannot drift apart.
func TestUsageMatchesREADME(t *testing.T) {
	readme, err := os.Open(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer readme.Close()
	var cmds []string
	in, block := false, false
	sc := bufio.NewScanner(readme)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "### On several machines"):
			in = true
		case in && strings.HasPrefix(line, "#") && !block:
			in = false
		case in && strings.HasPrefix(line, "```"):
			block = !block
		case in && block && strings.HasPrefix(line, "demo node "):
			cmds = append(cmds, line)
		}
	}
	if len(cmds) < 3 {
		t.Fatalf("found %d demo node commands in the README's \"On several machines\" section, want at least 3", len(cmds))
	}
	doc, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	space := regexp.MustCompile(`\s+`)
	for _, c := range cmds {
		if !strings.Contains(nodeUsage, c) {
			t.Errorf("demo node -h lacks the README's\n  %s", c)
		}
		if !strings.Contains(string(doc), "//\t"+c+"\n") {
			t.Errorf("the package doc (main.go) lacks the README's\n  %s", space.ReplaceAllString(c, " "))
		}
	}
}
