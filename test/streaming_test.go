package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// TestStreamingSnapshotInstall: a cluster whose FSM streams its snapshots
// snapshots and truncates its log; a new node gets the state by a snapshot
// install (not by replaying the log); every node restarts with its state.
// On each log store. raft-wal keeps the entries it was asked to delete
// readable until their whole 64 MiB segment goes, and the leader would
// then send a new node the log instead of the snapshot: the WAL case
// writes more than a segment of filler first, so that the first segment
// is deleted.
func TestStreamingSnapshotInstall(t *testing.T) {
	for _, store := range []canoe.LogStore{canoe.LogStoreBolt, canoe.LogStoreWAL} {
		t.Run(store.String(), func(t *testing.T) {
			c := newLANCluster(t, 3, clusterOpts{streaming: true, logStore: store,
				snapshot: &canoe.SnapshotConfig{Interval: 20 * time.Millisecond, MinCommittedLogs: 8}}, "")
			var want []string
			if store == canoe.LogStoreWAL {
				pad := "pad:" + strings.Repeat("x", 1<<20-64)
				for i := range 66 { // 66 MiB: the first segment fills and is sealed
					commitOnLeader(t, c, fmt.Sprintf("%s%d", pad, i))
				}
			}
			for i := range 40 {
				v := fmt.Sprintf("s%03d", i)
				commitOnLeader(t, c, v)
				want = append(want, v)
			}
			waitState(t, want, c.running()...)
			leader := c.leader()
			if store == canoe.LogStoreWAL {
				walDir := filepath.Join(leader.cfg.DataDir, "wal")
				testutil.WaitFor(t, 20*time.Second, "the leader's first WAL segment to be deleted", func() bool {
					segs := walSegments(t, walDir)
					return len(segs) > 0 && !strings.HasPrefix(segs[0], "00000000000000000001-")
				})
			}
			joiner := c.mustStart(c.config(false, leader.url))
			c.waitVoters(4)
			waitState(t, want, c.running()...)
			if n := joiner.cfg.FSM.(*streamRecFSM).restores.Load(); n == 0 {
				t.Fatal("the new node caught up by replaying the log: no snapshot was installed")
			}
			for _, m := range c.running() {
				c.restart(m)
			}
			c.waitVoters(4)
			commitOnLeader(t, c, "after restarts")
			waitState(t, append(want, "after restarts"), c.running()...)
		})
	}
}

// blobFSM is a StreamingFSM whose state is size bytes of a pattern chosen
// by seed: computed when written, checked when read, never stored, so that
// the memory a test measures is canoe's. Apply takes "blob:<size>:<seed>".
// The stream is 8 bytes of size, 1 of seed, then the pattern.
type blobFSM struct {
	mu       sync.Mutex // guards size, seed
	size     int64
	seed     byte
	restores atomic.Int64
}

const blobChunk = 64 << 10

func blobPattern(seed byte) []byte {
	b := make([]byte, blobChunk)
	for i := range b {
		b[i] = byte(i*31) + seed
	}
	return b
}

func (f *blobFSM) Apply(d canoe.LogData) error {
	var size int64
	var seed byte
	if _, err := fmt.Sscanf(string(d), "blob:%d:%d", &size, &seed); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.size, f.seed = size, seed
	return nil
}

func (f *blobFSM) state() (int64, byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size, f.seed
}

func (f *blobFSM) Snapshot() (canoe.SnapshotData, error) {
	return nil, errors.New("Snapshot called on a StreamingFSM")
}

func (f *blobFSM) Restore(canoe.SnapshotData) error {
	return errors.New("Restore called on a StreamingFSM")
}

func (f *blobFSM) SnapshotStream() (func(io.Writer) error, error) {
	size, seed := f.state()
	return func(w io.Writer) error {
		hdr := binary.BigEndian.AppendUint64(nil, uint64(size))
		if _, err := w.Write(append(hdr, seed)); err != nil {
			return err
		}
		p := blobPattern(seed)
		for left := size; left > 0; left -= int64(len(p)) {
			if _, err := w.Write(p[:min(left, int64(len(p)))]); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func (f *blobFSM) RestoreStream(r io.Reader) error {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	size, seed := int64(binary.BigEndian.Uint64(hdr[:8])), hdr[8]
	p, buf := blobPattern(seed), make([]byte, blobChunk)
	for left := size; left > 0; left -= blobChunk {
		n := min(left, blobChunk)
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("blob: %d bytes short: %w", left, err)
		}
		if !bytes.Equal(buf[:n], p[:n]) {
			return fmt.Errorf("blob: wrong bytes %d from the end", left)
		}
	}
	f.mu.Lock()
	f.size, f.seed = size, seed
	f.mu.Unlock()
	f.restores.Add(1)
	return nil
}

// allocated returns the bytes this process allocated while fn ran.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestStreamingBackupBoundedMemory: with a StreamingFSM, a backup of a
// large state and its restore across a 3-node cluster (the followers
// install it as a snapshot) stream it: what this process allocates
// meanwhile (the three nodes and the test) stays a fraction of the state.
func TestStreamingBackupBoundedMemory(t *testing.T) {
	const size = 64 << 20
	const bound = size / 4 // a []byte path allocates the state at least once per node
	fsms := map[*blobFSM]bool{}
	var mu sync.Mutex
	// Copying and checking the state on three nodes in one process, under
	// the race detector on a loaded 2-core machine, delays heartbeats past
	// the usual profiles' leases: this test is about memory, not failover.
	slow := canoe.Timing{HeartbeatTimeout: 2 * time.Second, ElectionTimeout: 2 * time.Second, LeaderLeaseTimeout: time.Second, CommitTimeout: time.Millisecond}
	c := newCluster(t, 3, clusterOpts{timing: &slow, snapshot: &canoe.SnapshotConfig{Interval: -1}, newFSM: func() canoe.FSM {
		f := &blobFSM{}
		mu.Lock()
		fsms[f] = true
		mu.Unlock()
		return f
	}})
	ctx := context.Background()
	if err := c.leader().node.ProposeContext(ctx, fmt.Appendf(nil, "blob:%d:%d", size, 7)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "blob.backup")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f := c.followers()[0]
	var index uint64
	alloc := allocated(func() { index, err = f.node.Backup(ctx, out) })
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	t.Logf("Backup of a %d MiB state: %d bytes at index %d; %.1f MiB allocated", size>>20, st.Size(), index, float64(alloc)/(1<<20))
	if alloc > bound {
		t.Errorf("Backup allocated %.1f MiB for a %d MiB state, want under %d MiB", float64(alloc)/(1<<20), size>>20, bound>>20)
	}

	// Change the state, then restore the backup over it.
	if err := c.leader().node.ProposeContext(ctx, []byte("blob:1000:3")); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var attempts int
	alloc = allocated(func() {
		attempts = restoreAgain(t, c, func() error {
			if _, err := in.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			return f.node.RestoreBackup(ctx, in)
		})
	})
	// The followers may still be installing when the leader's restore and
	// a quorum are done.
	testutil.WaitFor(t, 60*time.Second, "every FSM to hold the backup's state", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for b := range fsms {
			if s, seed := b.state(); s != size || seed != 7 {
				return false
			}
		}
		return len(fsms) == 3
	})
	alloc /= uint64(attempts)
	t.Logf("RestoreBackup of a %d MiB state on 3 nodes: %.1f MiB allocated (per attempt, %d attempts)", size>>20, float64(alloc)/(1<<20), attempts)
	if alloc > bound {
		t.Errorf("RestoreBackup allocated %.1f MiB for a %d MiB state, want under %d MiB", float64(alloc)/(1<<20), size>>20, bound>>20)
	}
}
