package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is canoe's repository root: this module lives in cmd/demo/browsertest.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(b, []byte("module github.com/canoe-raft/canoe\n")) {
		t.Fatalf("%s is not canoe's repository root (go.mod: %v)", root, err)
	}
	return root
}

// buildDemo builds the demo from the repository root into a temporary
// directory, with -race when this test runs with it.
func buildDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "demo")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/demo")...)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/demo: %v\n%s", err, out)
	}
	return bin
}

// demo is a running "demo" process: three nodes in one process.
type demo struct {
	kv     map[string]string // node ID -> demo HTTP base URL
	ids    []string          // node IDs in the order printed
	stderr *lockedBuffer
}

// startDemo runs the demo binary until the end of the test, and returns
// once it printed its nodes' URLs (the cluster is then ready).
func startDemo(t *testing.T, bin string) *demo {
	t.Helper()
	cmd := exec.Command(bin, "-data", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &demo{kv: map[string]string{}, stderr: &lockedBuffer{}}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	var readers sync.WaitGroup
	readers.Go(func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	})
	go func() {
		readers.Wait()
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("demo exited with %v after SIGINT", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("demo still running 30s after SIGINT")
			<-exited
		}
		if strings.Contains(d.stderr.String(), "DATA RACE") || t.Failed() {
			t.Errorf("demo's log:\n%s", d.stderr.String())
		}
	})

	nodeLine := regexp.MustCompile(`^\s+node (\d+)\s.*\sKV (http://\S+)$`)
	timeout := time.After(90 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("demo stopped before it was ready; its log:\n%s", d.stderr.String())
			}
			if m := nodeLine.FindStringSubmatch(line); m != nil {
				d.kv[m[1]] = m[2]
				d.ids = append(d.ids, m[1])
			}
			if strings.HasPrefix(line, "Press Ctrl-C") {
				if len(d.ids) != 3 {
					t.Fatalf("demo printed %d nodes, want 3", len(d.ids))
				}
				go func() { // keep the pipe drained
					for range lines {
					}
				}()
				return d
			}
		case <-timeout:
			t.Fatalf("demo not ready after 90s; its log:\n%s", d.stderr.String())
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and readers.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var client = &http.Client{Timeout: 10 * time.Second}

// put writes key = value through the demo node at base.
func put(base, key string, value []byte) error {
	req, err := http.NewRequest("PUT", base+"/kv/"+key, bytes.NewReader(value))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PUT %s: %d %s", key, resp.StatusCode, b)
	}
	return nil
}

// writer PUTs small values through every node in turn, about rate times a
// second, until stop is called. Writes to a stopped node fail and are
// counted, not fatal.
type writer struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex // guards ok, failed
	ok     int
	failed int
}

func startWriter(d *demo, rate int) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			base := d.kv[d.ids[i%len(d.ids)]]
			err := put(base, fmt.Sprintf("counter/%d", i%8), []byte(fmt.Sprintf("write %d", i)))
			w.mu.Lock()
			if err != nil {
				w.failed++
			} else {
				w.ok++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) stop() (ok, failed int) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ok, w.failed
}

// clusterView is the part of the demo's GET /api/cluster the test reads.
type clusterView struct {
	LeaderID string `json:"leader_id"`
	Nodes    []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Voter bool   `json:"voter"`
	} `json:"nodes"`
}

func getCluster(base string) (clusterView, error) {
	var v clusterView
	resp, err := client.Get(base + "/api/cluster")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
