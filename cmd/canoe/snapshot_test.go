package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"github.com/canoe-raft/canoe/internal/testutil"
)

// TestSnapshotCommands runs canoe snapshot save, inspect and restore as a
// user runs them, against three demo node processes: a save from a
// follower while writes run, inspect of the file, damaged copies that
// inspect and restore refuse (exit 1, saying what is wrong, the cluster
// unchanged), saves that fail and leave no file, a backup of another
// cluster that the node refuses, and a restore after which every node
// holds exactly the backup's state.
func TestSnapshotCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildBins()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nodes, view := startCluster(t, bin, dir)
	leader := nodes[view.LeaderID-1]
	follower := nodes[view.LeaderID%3]
	backups := filepath.Join(dir, "backups")
	if err := os.Mkdir(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(backups, "cluster.bak")

	// Writes run, through the leader, while the follower saves. Each write
	// acknowledged before the save began must be in the backup.
	var (
		mu    sync.Mutex
		acked []int
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if code, _ := httpDo(t, "PUT", leader.kvURL()+"/kv/w"+strconv.Itoa(i), strconv.Itoa(i)); code == 204 {
				mu.Lock()
				acked = append(acked, i)
				mu.Unlock()
			}
		}
	}()
	testutil.WaitFor(t, 10*time.Second, "some writes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20
	})
	mu.Lock()
	before := slices.Clone(acked)
	mu.Unlock()
	r := canoeCmd(t, bin, nodeEnv(follower), "snapshot", "save", "-json", file)
	close(stop)
	<-done
	var saved backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &saved); r.code != 0 || err != nil {
		t.Fatalf("snapshot save -json on a follower: %v\n%v", err, r)
	}
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if saved.NodeID != uint64(follower.id) || saved.ClusterID != 256 || saved.Index == 0 || len(saved.Members) != 3 ||
		saved.Size != int64(len(good)) || saved.File != file || saved.SavedFrom != follower.apiURL() {
		t.Errorf("snapshot save -json: %+v; want node %d's backup of cluster 256, 3 members, %d bytes", saved, follower.id, len(good))
	}
	if r.stderr != "" {
		t.Errorf("snapshot save with stderr not a terminal printed %q on stderr, want nothing", r.stderr)
	}
	t.Logf("saved %d bytes at index %d from follower %d, %d writes acknowledged before", len(good), saved.Index, follower.id, len(before))
	if names := testutil.DirNames(t, backups); !slices.Equal(names, []string{"cluster.bak"}) {
		t.Errorf("the backup directory holds %q after the save, want only cluster.bak", names)
	}

	// inspect: offline, the same description as the save's.
	r = canoeCmd(t, bin, nil, "snapshot", "inspect", file)
	t.Logf("canoe snapshot inspect:\n%s", r.stdout)
	expect(t, "inspect", r, 0, []string{"verified", "index       " + strconv.FormatUint(saved.Index, 10),
		"written by  node " + strconv.Itoa(follower.id), "members     3", "ID  RAFT ADDRESS", saved.SHA256}, nil)
	r = canoeCmd(t, bin, nil, "snapshot", "inspect", "-json", file)
	var inspected backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &inspected); r.code != 0 || err != nil ||
		inspected.Index != saved.Index || inspected.SHA256 != saved.SHA256 || !inspected.Created.Equal(saved.Created) {
		t.Errorf("inspect -json: %+v (%v), want the save's %+v\n%v", inspected, err, saved, r)
	}

	// The progress bar: forced with -progress always, it says bytes done
	// of the total, which it learns from the stream.
	forced := filepath.Join(backups, "forced.bak")
	r = canoeCmd(t, bin, nodeEnv(leader), "snapshot", "save", "-progress", "always", forced)
	expect(t, "save -progress always", r, 0, []string{"saved "}, []string{"\rsaving " + forced, "100%"})
	if fi, err := os.Stat(forced); err != nil || !strings.Contains(r.stderr, " / "+formatBytes(fi.Size())) {
		t.Errorf("the progress line does not give the total %v (%v):\n%q", fi, err, r.stderr)
	}
	r = canoeCmd(t, bin, nil, "snapshot", "inspect", "-progress", "always", forced)
	expect(t, "inspect -progress always", r, 0, nil, []string{"\rverifying " + forced, "100%"})

	// Damaged copies: inspect and restore refuse them, saying what is
	// wrong, and the cluster stays as it is.
	if code, body := httpDo(t, "PUT", leader.kvURL()+"/kv/after-save", "yes"); code != 204 {
		t.Fatalf("PUT after the save: %d %s", code, body)
	}
	if code, body := httpDo(t, "DELETE", leader.kvURL()+"/kv/w0", ""); code != 204 {
		t.Fatalf("DELETE after the save: %d %s", code, body)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0x04
	for _, tc := range []struct {
		name, why string
		data      []byte
	}{
		{"truncated", "truncated: the stream ends", good[:len(good)-100]},
		{"cut in the header", "truncated: the stream ends inside its 66-byte header", good[:40]},
		{"flipped", "checksum mismatch", flipped},
		{"empty", "empty: no data at all", nil},
		{"text", "not a canoe backup", []byte("hello, world\n")},
		{"two backups", "unexpected data after the checksum", append(slices.Clone(good), good...)},
	} {
		bad := filepath.Join(backups, tc.name+".bak")
		if err := os.WriteFile(bad, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		expect(t, "inspect "+tc.name, canoeCmd(t, bin, nil, "snapshot", "inspect", bad), 1, nil,
			[]string{bad + " is not a valid canoe backup: " + tc.why})
		expect(t, "restore "+tc.name, canoeCmd(t, bin, nodeEnv(follower), "snapshot", "restore", bad), 1, nil,
			[]string{bad + " is not a valid canoe backup: " + tc.why, "the cluster was not changed"})
	}
	if code, body := httpDo(t, "GET", follower.kvURL()+"/kv/after-save?consistent=true", ""); code != 200 || body != "yes" {
		t.Fatalf("after the refused restores: GET after-save = %d %q, want the write still there", code, body)
	}

	// Saves that fail leave FILE as it was, and no temporary file.
	wrong := map[string]string{"CANOE_ADDR": leader.apiURL(), "CANOE_SECRET": "fedcba9876543210"}
	expect(t, "save with a wrong secret", canoeCmd(t, bin, wrong, "snapshot", "save", file), 1, nil,
		[]string{"refused the signature", "CANOE_SECRET", file + " was not written"})
	expect(t, "save from an unreachable node", canoeCmd(t, bin, nodeEnv(leader), "snapshot", "save", "-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), filepath.Join(backups, "new.bak")), 1, nil,
		[]string{"cannot reach a canoe node", "new.bak was not written"})
	expect(t, "save from the KV port", canoeCmd(t, bin, nodeEnv(leader), "snapshot", "save", "-addr", leader.kvURL(), filepath.Join(backups, "new.bak")), 1, nil,
		[]string{"is not a canoe node's API", "404"})
	expect(t, "restore to the KV port", canoeCmd(t, bin, nodeEnv(leader), "snapshot", "restore", "-addr", leader.kvURL(), file), 1, nil,
		[]string{"is not a canoe node's API", "404"})
	cut := brokenServer(t, good[:len(good)/2])
	expect(t, "save from a node that breaks off", canoeCmd(t, bin, nodeEnv(leader), "snapshot", "save", "-addr", cut, file), 1, nil,
		[]string{"the backup broke off after", file + " was not written"})
	foreign := brokenServer(t, nil)
	expect(t, "save from a web server", canoeCmd(t, bin, nodeEnv(leader), "snapshot", "save", "-addr", foreign, file), 1, nil,
		[]string{"is not a canoe node's API", "<html>"})
	expect(t, "save into a missing directory", canoeCmd(t, bin, nodeEnv(leader), "snapshot", "save", filepath.Join(dir, "none", "x.bak")), 1, nil,
		[]string{"cannot write the backup next to"})
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, good) {
		t.Errorf("a failed save changed %s (%v)", file, err)
	}
	for _, name := range testutil.DirNames(t, backups) {
		if strings.HasSuffix(name, ".part") || name == "new.bak" {
			t.Errorf("a failed save left %s", name)
		}
	}
	for _, bad := range [][]string{
		{"snapshot"}, {"snapshot", "save"}, {"snapshot", "save", "a", "b"}, {"snapshot", "inspect"},
		{"snapshot", "restore"}, {"snapshot", "save", "-progress", "sometimes", "f"}, {"snapshot", "bogus", "f"},
	} {
		expect(t, fmt.Sprintf("canoe %q", bad), canoeCmd(t, bin, nodeEnv(leader), bad...), 2, nil, nil)
	}
	expect(t, "help", canoeCmd(t, bin, nil, "help"), 0, []string{"snapshot save FILE", "snapshot restore FILE", "snapshot inspect FILE"}, nil)
	expect(t, "snapshot save -h", canoeCmd(t, bin, nil, "snapshot", "save", "-h"), 0, nil, []string{"-progress", "default 1h0m0s", "CANOE_SECRET"})

	// A backup of another cluster: the file is sound, and the node refuses
	// it.
	other := newDemoNode(t, dir, 9, "-bootstrap", "-cluster-id", "7")
	t.Cleanup(func() {
		if other.cmd != nil {
			_ = other.cmd.Process.Kill()
			<-other.done
		}
	})
	other.start(t, bin)
	otherEnv := map[string]string{"CANOE_ADDR": other.apiURL(), "CANOE_SECRET": testSecret, "CANOE_CLUSTER_ID": "7"}
	foreignFile := filepath.Join(backups, "cluster7.bak")
	testutil.WaitFor(t, 20*time.Second, "a backup of cluster 7", func() bool {
		return canoeCmd(t, bin, otherEnv, "snapshot", "save", foreignFile).code == 0
	})
	expect(t, "restore another cluster's backup", canoeCmd(t, bin, nodeEnv(follower), "snapshot", "restore", foreignFile), 1, nil,
		[]string{"refused the backup", "cluster 7", "the cluster was not changed"})
	other.stop(t, syscall.SIGINT)

	// The good backup, restored through a follower: every node then holds
	// exactly its state (a new backup's state is byte for byte the same).
	r = canoeCmd(t, bin, nodeEnv(follower), "snapshot", "restore", file)
	expect(t, "restore", r, 0, []string{"restored    " + file, "index       " + strconv.FormatUint(saved.Index, 10)}, nil)
	again := filepath.Join(backups, "again.bak")
	r = canoeCmd(t, bin, nodeEnv(leader), "snapshot", "save", "-json", again)
	var resaved backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &resaved); r.code != 0 || err != nil {
		t.Fatalf("save after the restore: %v\n%v", err, r)
	}
	now, err := os.ReadFile(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(backupState(t, now, resaved), backupState(t, good, saved)) {
		t.Errorf("after the restore the state differs from the backup's (%d and %d bytes)", resaved.StateSize, saved.StateSize)
	}
	if resaved.Index <= saved.Index {
		t.Errorf("the restore's index %d is not past the backup's %d", resaved.Index, saved.Index)
	}
	var lists []string
	for _, n := range nodes {
		code, body := httpDo(t, "GET", n.kvURL()+"/kv?consistent=true", "")
		if code != 200 {
			t.Fatalf("GET /kv on node %d: %d %s", n.id, code, body)
		}
		var l struct{ Items json.RawMessage }
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		lists = append(lists, string(l.Items))
		if code, _ := httpDo(t, "GET", n.kvURL()+"/kv/after-save", ""); code != 404 {
			t.Errorf("node %d still holds a write made after the backup", n.id)
		}
		for _, i := range before {
			if code, body := httpDo(t, "GET", n.kvURL()+"/kv/w"+strconv.Itoa(i), ""); code != 200 || body != strconv.Itoa(i) {
				t.Fatalf("node %d: w%d = %d %q; a write acknowledged before the save is not in the restored state", n.id, i, code, body)
			}
		}
	}
	if lists[0] != lists[1] || lists[1] != lists[2] {
		t.Errorf("the nodes' stores differ after the restore")
	}
}

// backupState returns the FSM state inside a backup, per the sizes out
// gives (canoe's layout: a 66-byte header, the membership, the state, a
// 32-byte SHA-256).
func backupState(t *testing.T, b []byte, out backupOutput) []byte {
	t.Helper()
	membership := out.Size - backupHeaderSize - out.StateSize - backupSumSize
	if int64(len(b)) != out.Size || membership < 0 {
		t.Fatalf("a backup of %d bytes described as %+v", len(b), out)
	}
	return b[backupHeaderSize+membership : backupHeaderSize+membership+out.StateSize]
}

// brokenServer serves GET /snapshot as canoe does but sends only part and
// breaks the connection; with part nil it is a web server answering HTML.
// It returns its URL.
func brokenServer(t *testing.T, part []byte) string {
	t.Helper()
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if part == nil {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html>a web page</html>")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Trailer", "X-Canoe-Backup-Index")
		_, _ = w.Write(part)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
