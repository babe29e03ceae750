package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// fakeBackups is a backupSource that writes a real backup's bytes, leads
// when told, and fails or blocks on demand.
type fakeBackups struct {
	data  []byte
	index uint64

	mu     sync.Mutex // guards the fields below
	leader bool
	calls  int
	fail   error // the next Backup writes half and fails with it
	damage bool  // the next Backup writes a damaged backup and succeeds
	block  bool  // the next Backup writes half and waits for its ctx
}

func (f *fakeBackups) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeBackups) set(fn func(*fakeBackups)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeBackups) Backup(ctx context.Context, w io.Writer) (uint64, error) {
	f.mu.Lock()
	f.calls++
	fail, damage, block := f.fail, f.damage, f.block
	f.fail, f.damage, f.block = nil, false, false
	f.mu.Unlock()
	switch {
	case fail != nil:
		_, _ = w.Write(f.data[:len(f.data)/2])
		return 0, fail
	case block:
		_, _ = w.Write(f.data[:len(f.data)/2])
		<-ctx.Done()
		return 0, ctx.Err()
	case damage:
		bad := bytes.Clone(f.data)
		bad[len(bad)/2] ^= 0x10
		_, err := w.Write(bad)
		return f.index, err
	}
	_, err := w.Write(f.data)
	return f.index, err
}

func (f *fakeBackups) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// realBackup returns the bytes of a backup of a one-node cluster holding a
// few keys, and its index.
func realBackup(t *testing.T) ([]byte, uint64) {
	t.Helper()
	node, _, _ := singleNode(t)
	for _, k := range []string{"a", "b", "c"} {
		if err := node.Propose(encodePut(k, []byte("value of "+k))); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	index, err := node.Backup(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), index
}

// TestBackupScheduler: at each tick the leader writes a verified backup
// named with its time and index and keeps the newest -backup-keep; a
// follower writes none; a failed, damaged or abandoned backup leaves no
// file and the next tick works; stop ends the goroutine (synctest fails
// the test if it were left running).
func TestBackupScheduler(t *testing.T) {
	data, index := realBackup(t)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		for _, name := range []string{"notes.txt", ".canoe-backup-node7-123.tmp", ".canoe-backup-node8-456.tmp"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var logs testutil.SyncBuffer
		logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
		src := &fakeBackups{data: data, index: index, leader: true}
		start := time.Now()
		stop := newBackupScheduler(src, backupOptions{Dir: dir, Every: time.Minute, Keep: 3}, 7, logger).start()
		stopped := false
		defer func() {
			if !stopped {
				stop()
			}
		}()
		tick := func() {
			time.Sleep(time.Minute)
			synctest.Wait()
		}
		want := func(minutes ...int) []string {
			names := []string{".canoe-backup-node8-456.tmp"}
			for _, m := range minutes {
				names = append(names, backupName(start.Add(time.Duration(m)*time.Minute), index))
			}
			return append(names, "notes.txt")
		}
		check := func(what string, minutes ...int) {
			t.Helper()
			if got, want := testutil.DirNames(t, dir), want(minutes...); !slices.Equal(got, want) {
				t.Fatalf("%s: the directory holds %q, want %q\nlog:\n%s", what, got, want, logs.String())
			}
		}
		check("at start: this node's unfinished backup removed, nothing else")

		for range 5 {
			tick()
		}
		check("after 5 ticks as the leader", 3, 4, 5)
		for _, m := range []int{3, 4, 5} {
			b, err := os.ReadFile(filepath.Join(dir, backupName(start.Add(time.Duration(m)*time.Minute), index)))
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("backup of minute %d: %d bytes (%v), want the %d bytes the node wrote", m, len(b), err, len(data))
			}
		}
		if !strings.Contains(logs.String(), "wrote a backup") {
			t.Errorf("no \"wrote a backup\" in the log:\n%s", logs.String())
		}

		src.set(func(f *fakeBackups) { f.leader = false })
		calls := src.callCount()
		tick()
		tick()
		check("after 2 ticks as a follower", 3, 4, 5)
		if src.callCount() != calls {
			t.Errorf("a follower called Backup")
		}

		src.set(func(f *fakeBackups) { f.leader, f.fail = true, errors.New("disk on fire") })
		tick()
		check("after a failed backup", 3, 4, 5)
		src.set(func(f *fakeBackups) { f.damage = true })
		tick()
		check("after a damaged backup", 3, 4, 5)
		for _, want := range []string{"backup failed; the next tick tries again", "disk on fire", "does not verify", "checksum mismatch"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("the log lacks %q:\n%s", want, logs.String())
			}
		}
		tick()
		check("after a good backup again", 4, 5, 10)

		// stop during a backup: it is abandoned, and leaves no file.
		src.set(func(f *fakeBackups) { f.block = true })
		time.Sleep(time.Minute)
		synctest.Wait() // the scheduler is inside Backup now
		stop()
		stopped = true
		check("after stop during a backup", 4, 5, 10)
		if !strings.Contains(logs.String(), "backup abandoned: the node is stopping") {
			t.Errorf("the log does not say the backup was abandoned:\n%s", logs.String())
		}
		calls = src.callCount()
		time.Sleep(10 * time.Minute)
		if src.callCount() != calls {
			t.Errorf("Backup called after stop")
		}
	})
}

// TestBackupKeepAll: -backup-keep 0 deletes nothing.
func TestBackupKeepAll(t *testing.T) {
	data, index := realBackup(t)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		src := &fakeBackups{data: data, index: index, leader: true}
		stop := newBackupScheduler(src, backupOptions{Dir: dir, Every: time.Second, Keep: 0}, 1, hclog.NewNullLogger()).start()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		stop()
		if got := testutil.DirNames(t, dir); len(got) != 5 {
			t.Fatalf("%d files after 5 ticks with keep 0: %q", len(got), got)
		}
	})
}

// TestBackupDirChecked: a -backup-dir where files cannot be created fails
// the start, naming the flag.
func TestBackupDirChecked(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		if err := prepareBackupDir(dir); err == nil || !strings.HasPrefix(err.Error(), "-backup-dir: ") {
			t.Errorf("prepareBackupDir(%s): %v, want an error naming -backup-dir", dir, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := prepareBackupDir(dir); err != nil {
		t.Fatal(err)
	}
	if names := testutil.DirNames(t, dir); len(names) != 0 {
		t.Errorf("prepareBackupDir left %q", names)
	}
}

// TestBackupName: names give the time (UTC, to the millisecond) and the
// index, and only such names are taken for backups when pruning.
func TestBackupName(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 678e6, time.FixedZone("X", 3600))
	name := backupName(at, 1234)
	if name != "canoe-backup-20260102T140405.678Z-1234.bak" {
		t.Fatalf("backupName: %s", name)
	}
	if m := backupNameRE.FindStringSubmatch(name); m == nil || m[1] != "20260102T140405.678Z" || m[2] != "1234" {
		t.Fatalf("backupNameRE on %s: %q", name, m)
	}
	if backupNameRE.MatchString("canoe-backup-20260102T140405.678Z-1234.bak.tmp") || backupNameRE.MatchString("x"+name) {
		t.Fatal("backupNameRE matches other names")
	}
}

// TestNodeBackups runs two "demo node" processes with -backup-dir and a
// short -backup-every: only the leader writes backups, each complete and
// verified, at most -backup-keep of them; once leadership moves the other
// node writes them; both exit cleanly on SIGINT.
func TestNodeBackups(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin, err := buildDemo()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dirs := []string{filepath.Join(root, "backups1"), filepath.Join(root, "backups2")}
	procs := nodeProcs(t, 2, func(id int, ports [][3]int) []string {
		args := []string{"-backup-dir", dirs[id-1], "-backup-every", "150ms", "-backup-keep", "3"}
		if id == 1 {
			return append(args, "-bootstrap")
		}
		return append(args, "-join", "http://127.0.0.1:"+itoa(ports[0][1]))
	})
	procs[0].start(t, bin)
	waitVoters(t, procs[0], 1)
	procs[1].start(t, bin)
	waitVoters(t, procs[0], 2)
	if code, body := do(t, "PUT", procs[1].kv+"/kv/saved", "yes"); code != 204 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	// valid returns the backups in dir, checking each (a temporary file
	// is a backup being written).
	valid := func(dir string) []canoe.BackupInfo {
		t.Helper()
		var out []canoe.BackupInfo
		for _, name := range testutil.DirNames(t, dir) {
			if strings.HasSuffix(name, ".tmp") {
				continue
			}
			if !backupNameRE.MatchString(name) {
				t.Fatalf("%s holds %s, not a backup", dir, name)
			}
			f, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				continue // pruned meanwhile
			}
			info, err := canoe.InspectBackup(f)
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if m := backupNameRE.FindStringSubmatch(name); m[2] != strconv.FormatUint(info.Index, 10) {
				t.Fatalf("%s holds index %d", name, info.Index)
			}
			out = append(out, info)
		}
		return out
	}
	leaderOf := func() int {
		_, body := do(t, "GET", procs[0].kv+"/api/cluster", "")
		id, _ := strconv.Atoi(jsonLeader(body))
		return id
	}
	leader := leaderOf()
	if leader != 1 {
		t.Fatalf("leader %d, want the founder", leader)
	}
	// The leader's backups roll over (at most 3 kept of the 5 or more
	// seen), and the follower, ticking as often, writes none.
	seen := map[[32]byte]bool{}
	testutil.WaitFor(t, 20*time.Second, "the leader to write 5 backups and keep 3", func() bool {
		infos := valid(dirs[0])
		for _, info := range infos {
			seen[info.SHA256] = true
		}
		return len(seen) >= 5 && len(infos) == 3
	})
	if infos := valid(dirs[1]); len(infos) != 0 {
		t.Fatalf("the follower wrote %d backups", len(infos))
	}

	// Leadership moves: node 2 writes from now on.
	client := httpconfig.NewClient(nil, nil, 0)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.TransferLeadership(ctx, procs[0].api, 2); err != nil {
		t.Fatalf("transfer to node 2: %v", err)
	}
	testutil.WaitFor(t, 20*time.Second, "node 2 to write backups", func() bool { return len(valid(dirs[1])) >= 2 })
	before := valid(dirs[0])
	testutil.WaitFor(t, 20*time.Second, "node 2 to keep 3 backups", func() bool { return len(valid(dirs[1])) == 3 })
	if after := valid(dirs[0]); !slices.EqualFunc(before, after, func(a, b canoe.BackupInfo) bool { return a.SHA256 == b.SHA256 }) {
		t.Errorf("node 1 wrote backups as a follower: %d backups, then %d others", len(before), len(after))
	}
	for _, p := range procs {
		p.interrupt(t, 30*time.Second)
	}
	for i, dir := range dirs {
		for _, name := range testutil.DirNames(t, dir) {
			if !backupNameRE.MatchString(name) {
				t.Errorf("node %d left %s in its backup directory", i+1, name)
			}
		}
	}
}
