package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/internal/testutil"
)

// startLocal runs the one-process demo in-process and returns its cluster
// once it is ready; the demo stops at the end of the test.
func startLocal(t *testing.T) *localCluster {
	t.Helper()
	return startLocalLogging(t, testWriter{t})
}

// startLocalLogging is startLocal with the demo's log going to logs.
func startLocalLogging(t *testing.T, logs io.Writer) *localCluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan *localCluster, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- runLocal(ctx, localOptions{
			DataDir: t.TempDir(),
			ready:   func(c *localCluster) { readyCh <- c },
		}, &out, logs)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runLocal: %v", err)
		}
	})
	select {
	case c := <-readyCh:
		if !strings.Contains(out.String(), c.slots[0].kvURL+"/") {
			t.Errorf("printed instructions lack the dashboard URL:\n%s", out.String())
		}
		return c
	case err := <-done:
		t.Fatalf("runLocal returned before the cluster was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("cluster not ready after 60s")
	}
	return nil
}

// TestLocalClusterStartsQuietly: `go run ./cmd/demo` is the first thing a
// newcomer runs; forming its cluster is normal operation and logs nothing at
// WARN or above (a joining node's raft, waiting to be added, used to warn
// "no known peers, aborting election").
func TestLocalClusterStartsQuietly(t *testing.T) {
	var logs testutil.SyncBuffer
	c := startLocalLogging(t, io.MultiWriter(testWriter{t}, &logs))
	testutil.WaitFor(t, 10*time.Second, "every node a voter", func() bool {
		v := clusterOf(t, c.slots[0].kvURL)
		voters := 0
		for _, n := range v.Nodes {
			if n.Voter {
				voters++
			}
		}
		return voters == 3
	})
	time.Sleep(time.Second) // what follows forming, too
	var loud []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]") {
			loud = append(loud, strings.TrimSpace(line))
		}
	}
	if len(loud) > 0 {
		t.Errorf("%d WARN/ERROR lines while the demo formed its cluster, want none:\n%s", len(loud), strings.Join(loud, "\n"))
	}
}

func clusterOf(t *testing.T, url string) clusterView {
	t.Helper()
	code, body := do(t, "GET", url+"/api/cluster", "")
	var v clusterView
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("GET /api/cluster: %d %s", code, body)
	}
	return v
}

func TestLocalCluster(t *testing.T) {
	c := startLocal(t)
	if len(c.slots) != 3 {
		t.Fatalf("%d nodes, want 3", len(c.slots))
	}
	url := func(id int) string { return c.slots[id-1].kvURL }

	if code, body := do(t, "PUT", url(1)+"/kv/greeting", "hello"); code != 204 {
		t.Fatalf("PUT on node 1: %d %s", code, body)
	}
	for id := 1; id <= 3; id++ {
		// Followers apply shortly after the leader: a local read may lag,
		// a consistent read may not.
		if code, body := do(t, "GET", url(id)+"/kv/greeting?consistent=true", ""); code != 200 || body != "hello" {
			t.Fatalf("consistent GET on node %d: %d %q", id, code, body)
		}
		testutil.WaitFor(t, 5*time.Second, "local read on node "+itoa(id), func() bool {
			code, body := do(t, "GET", url(id)+"/kv/greeting", "")
			return code == 200 && body == "hello"
		})
	}

	// Concurrent writes through every node.
	var wg sync.WaitGroup
	for id := 1; id <= 3; id++ {
		for j := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := "k" + itoa(id) + "-" + itoa(j)
				if code, body := do(t, "PUT", url(id)+"/kv/"+key, key); code != 204 {
					t.Errorf("PUT %s on node %d: %d %s", key, id, code, body)
				}
			}()
		}
	}
	wg.Wait()

	v := clusterOf(t, url(2))
	if len(v.Nodes) != 3 || v.LeaderID == "" || !v.Controls || v.Self != "2" {
		t.Fatalf("cluster view %+v: want 3 nodes, a leader, controls, self 2", v)
	}
	for _, n := range v.Nodes {
		if !n.Voter || n.KV == "" || n.API == "" || n.Raft == "" {
			t.Fatalf("node %+v: want a voter with addresses", n)
		}
	}

	// Stop the leader from the dashboard API: another node takes over, and
	// writes keep working.
	old := v.LeaderID
	if code, body := do(t, "POST", url(2)+"/api/nodes/"+old+"/stop", ""); code != 200 {
		t.Fatalf("stop leader: %d %s", code, body)
	}
	if code, body := do(t, "POST", url(2)+"/api/nodes/"+old+"/stop", ""); code != 409 {
		t.Fatalf("stopping a stopped node: %d %s, want 409", code, body)
	}
	var survivor string
	testutil.WaitFor(t, 10*time.Second, "a new leader", func() bool {
		v := clusterOf(t, url(2))
		survivor = v.LeaderID
		return v.LeaderID != "" && v.LeaderID != old
	})
	if code, body := do(t, "PUT", c.slot(parseID(t, survivor)).kvURL+"/kv/while-down", "yes"); code != 204 {
		t.Fatalf("PUT after failover: %d %s", code, body)
	}
	oldURL := c.slot(parseID(t, old)).kvURL
	if code, _ := do(t, "GET", oldURL+"/kv/greeting", ""); code != 503 {
		t.Fatalf("GET on the stopped node: %d, want 503", code)
	}

	// Start it again: a new node on the same data catches up.
	if code, body := do(t, "POST", url(2)+"/api/nodes/"+old+"/start", ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	testutil.WaitFor(t, 10*time.Second, "the restarted node to catch up", func() bool {
		code, body := do(t, "GET", oldURL+"/kv/while-down", "")
		return code == 200 && body == "yes"
	})
	if code, body := do(t, "GET", oldURL+"/kv/k3-9", ""); code != 200 || body != "k3-9" {
		t.Fatalf("restarted node lost k3-9: %d %q", code, body)
	}
	if code, body := do(t, "POST", url(1)+"/api/nodes/9/stop", ""); code != 404 {
		t.Fatalf("stop unknown node: %d %s", code, body)
	}

	// A stopped follower stays a voter and shows the term and indexes it
	// had, marked stale (it used to show Voter no, Term 0, Commit 0).
	v = clusterOf(t, url(1))
	var follower nodeView
	for _, n := range v.Nodes {
		if n.ID != v.LeaderID && n.State == "follower" && n.CommitIndex > 0 {
			follower = n
		}
	}
	if follower.ID == "" {
		t.Fatalf("no follower with a commit index in %+v", v)
	}
	if code, body := do(t, "POST", url(1)+"/api/nodes/"+follower.ID+"/stop", ""); code != 200 {
		t.Fatalf("stop follower: %d %s", code, body)
	}
	var stopped nodeView
	testutil.WaitFor(t, 5*time.Second, "the follower shown stopped", func() bool {
		for _, n := range clusterOf(t, url(1)).Nodes {
			if n.ID == follower.ID {
				stopped = n
			}
		}
		return stopped.State == "stopped"
	})
	if !stopped.Voter || stopped.Term < follower.Term || stopped.CommitIndex < follower.CommitIndex || !stopped.Stale || stopped.LastSeen == 0 {
		t.Fatalf("stopped follower shown as %+v; it was %+v: want a voter with its last term and indexes, marked stale", stopped, follower)
	}
	if code, body := do(t, "POST", url(1)+"/api/nodes/"+follower.ID+"/start", ""); code != 200 {
		t.Fatalf("start follower: %d %s", code, body)
	}
}

func parseID(t *testing.T, s string) uint64 {
	t.Helper()
	var id uint64
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("bad id %q", s)
		}
		id = id*10 + uint64(r-'0')
	}
	return id
}

func TestParseFlagsEnv(t *testing.T) {
	env := map[string]string{"CANOE_RAFT_PORT": "9000", "CANOE_ID": "7", "CANOE_BOOTSTRAP": "true", "CANOE_HTTP": "127.0.0.1:1"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var stderr bytes.Buffer
	o, err := parseNodeFlags([]string{"-id", "3", "-data", t.TempDir()}, &stderr, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != 3 || o.RaftPort != 9000 || !o.Bootstrap || o.HTTP != "127.0.0.1:1" || o.ConfigPort != 7001 {
		t.Fatalf("got %+v: want the flag's id 3 and env's raft port, bootstrap, http", o)
	}

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"expect and bootstrap", []string{"-expect", "3", "-bootstrap"}, nil, "one of them"},
		{"expect and bootstrap from env", []string{"-bootstrap"}, map[string]string{"CANOE_EXPECT": "3"}, "-expect"},
		{"expect with a URL", []string{"-expect", "3", "-join", "http://127.0.0.1:7001"}, nil, "gossip addresses"},
		{"bad gossip port", []string{"-gossip-port", "70000"}, nil, "-gossip-port"},
		{"bad join entry", []string{"-join", "nohost"}, nil, "neither"},
		{"bad env", nil, map[string]string{"CANOE_RAFT_PORT": "lots"}, "CANOE_RAFT_PORT"},
		{"bootstrap and join", []string{"-bootstrap", "-join", "http://127.0.0.1:7001"}, nil, "one of them"},
		{"bootstrap a read replica", []string{"-bootstrap", "-nonvoter"}, nil, "-nonvoter keeps it from voting"},
		{"bad join", []string{"-join", "ftp://x:1"}, nil, "-join"},
		{"join URL typo", []string{"-join", "http//127.0.0.1:7001"}, nil, "http(s)://host:port"},
		{"join URL with fragment", []string{"-join", "http://127.0.0.1:7001#x"}, nil, "fragment"},
		{"bad bind", []string{"-bind", "localhost"}, nil, "-bind"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
		{"zero backup period", []string{"-backup-dir", "b", "-backup-every", "0s"}, nil, "-backup-every 0s must be positive"},
		{"negative backup keep", []string{"-backup-keep", "-1"}, nil, "-backup-keep -1 is negative"},
		{"bad backup period from env", nil, map[string]string{"CANOE_BACKUP_EVERY": "hourly"}, "CANOE_BACKUP_EVERY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			_, err := parseNodeFlags(tc.args, &stderr, lookup)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if _, ok := err.(usageError); !ok {
				t.Fatalf("got %T, want a usageError", err)
			}
		})
	}

	stderr.Reset()
	if _, err := parseNodeFlags([]string{"-h"}, &stderr, lookup); err == nil {
		t.Fatal("-h: no error")
	}
	for _, want := range []string{"-raft-port port", "default 7000", "CANOE_RAFT_PORT", "-join members", "CANOE_EXPECT", "default 7946", "-v", "CANOE_V", "-nonvoter", "CANOE_NONVOTER",
		"-backup-dir directory", "CANOE_BACKUP_EVERY", "default 1h0m0s", "-backup-keep number"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestJoinURLs(t *testing.T) {
	o := nodeOptions{Join: " http://a:1/, b:2 ,,https://c:3"}
	if got, want := strings.Join(o.joinURLs(), " "), "http://a:1 b:2 https://c:3"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestKVResultsAgree: cas and incr answer from each node's own store
// (canoe's ProposeResult), so the leader and a follower give the same
// answers: concurrent increments through every node get each value once,
// and a cas or a refused incr answers the same wherever it is sent.
func TestKVResultsAgree(t *testing.T) {
	c := startLocal(t)
	v := clusterOf(t, c.slots[0].kvURL)
	leader := c.slot(parseID(t, v.LeaderID)).kvURL
	var follower string
	for _, s := range c.slots {
		if s.kvURL != leader {
			follower = s.kvURL
			break
		}
	}

	// Increments through all three nodes at once: every answer is a
	// distinct value, 1..n, as if one store had answered them in order.
	const perNode = 15
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range c.slots {
		for range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body := do(t, "POST", s.kvURL+"/kv/hits/incr", "")
				if code != 200 {
					t.Errorf("incr on node %d: %d %s", s.id, code, body)
					return
				}
				mu.Lock()
				seen[body]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	n := perNode * len(c.slots)
	for i := 1; i <= n; i++ {
		if seen[itoa(i)] != 1 {
			t.Errorf("incr answered %d %d times, want once (answers %v)", i, seen[itoa(i)], seen)
		}
	}
	for _, s := range c.slots {
		if code, body := do(t, "GET", s.kvURL+"/kv/hits?consistent=true", ""); code != 200 || body != itoa(n) {
			t.Errorf("node %d: hits = %d %q, want %d", s.id, code, body, n)
		}
	}

	// The same request on the leader and a follower, in turn.
	if code, body := do(t, "PUT", leader+"/kv/word", "one"); code != 204 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/kv/word?cas=two", "three", 200},  // not swapped: finds one
		{"/kv/word/incr", "", 400},          // not an integer
		{"/kv/nobody?cas=x", "y", 200},      // not found
		{"/kv/hits/incr?by=0", "", 200},     // the count, unchanged
		{"/kv/hits/incr?by=1000000", "", 0}, // each a different value: checked below
		{"/kv/word?cas=one", "two", 0},      // the first swaps, the second finds two
	} {
		lc, lb := do(t, "POST", leader+tc.path, tc.body)
		fc, fb := do(t, "POST", follower+tc.path, tc.body)
		switch {
		case tc.code == 0:
			// Sequential: the follower's answer follows the leader's.
		case lc != tc.code || fc != lc || lb != fb:
			t.Errorf("POST %s: leader answered %d %s, follower %d %s; want both %d and the same", tc.path, lc, lb, fc, fb, tc.code)
		}
		switch tc.path {
		case "/kv/hits/incr?by=1000000":
			if lb != itoa(n+1000000) || fb != itoa(n+2000000) {
				t.Errorf("incr by 1000000: leader %s, follower %s; want %d then %d", lb, fb, n+1000000, n+2000000)
			}
		case "/kv/word?cas=one":
			if compactJSON(t, lb) != `{"swapped":true,"found":true,"value":"one"}` || compactJSON(t, fb) != `{"swapped":false,"found":true,"value":"two"}` {
				t.Errorf("cas one->two on the leader then the follower: %s, %s", lb, fb)
			}
		}
	}
}
