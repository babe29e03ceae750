package test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/internal/testutil"
)

// newLANCluster is newCluster with LAN timing: heavy writes under the race
// detector on a busy machine delay heartbeats past the local profile's
// 200ms, and each leader change fails the proposals in flight. With base
// set, every node's DataDir is under base, which must outlive the nodes
// (be created before this call).
func newLANCluster(t testing.TB, size int, opts clusterOpts, base string) *cluster {
	t.Helper()
	c := &cluster{t: t, logger: newLogger(t), opts: opts}
	t.Cleanup(c.stopAll)
	config := func(bootstrap bool, peers ...string) canoe.NodeConfig {
		cfg := c.config(bootstrap, peers...)
		if base != "" {
			cfg.DataDir = filepath.Join(base, strconv.Itoa(len(c.members)))
		}
		cfg.Timing = canoe.LANProfile()
		return cfg
	}
	first := c.mustStart(config(true))
	testutil.WaitFor(t, 10*time.Second, "the founding node to lead", first.node.IsLeader)
	for i := 1; i < size; i++ {
		c.mustStart(config(false, first.url))
	}
	c.waitVoters(size)
	c.leader()
	return c
}

// commitOnLeader proposes v through the current leader until it is known
// to have committed. An unknown outcome (leadership lost under load) is
// proposed again, so v may be applied twice, alike on every node.
func commitOnLeader(t testing.TB, c *cluster, v string) {
	t.Helper()
	for try := 0; ; try++ {
		m := c.leader()
		err := propose(m, v)
		if err == nil {
			return
		}
		if !errors.Is(err, canoe.ErrUnknownOutcome) || try == 5 {
			t.Fatalf("propose %.20q... on %v: %v", v, m, err)
		}
		t.Logf("propose on %v: %v; proposing again", m, err)
	}
}

// walSegments returns the names of the segment files in a WAL directory,
// oldest first (the names start with the zero-padded base index).
func walSegments(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	slices.Sort(names)
	return names
}

// walFrame is one frame of a segment file.
type walFrame struct {
	typ  byte
	off  int64 // of its header
	size int64 // header, payload and padding
}

// readWALFrames walks the frames of a segment file as raft-wal's recovery
// does (segment/writer.go readThroughSegment): from the file header to the
// first all-zero frame header.
func readWALFrames(t testing.TB, path string) []walFrame {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < walFileHeader || binary.LittleEndian.Uint32(b) != walMagic {
		t.Fatalf("%s: no raft-wal segment header", path)
	}
	var frames []walFrame
	for off := int64(walFileHeader); off+walFrameHeader <= int64(len(b)); {
		h := b[off : off+walFrameHeader]
		size := int64(walFrameHeader)
		switch h[0] {
		case 0:
			return frames
		case walFrameEntry, walFrameIndex:
			n := int64(binary.LittleEndian.Uint32(h[4:]))
			size += n + (8-n%8)%8
		case walFrameCommit:
		default:
			t.Fatalf("%s: frame of unknown type %d at offset %d", path, h[0], off)
		}
		frames = append(frames, walFrame{typ: h[0], off: off, size: size})
		off += size
	}
	return frames
}

// saveDir returns the regular files of dir by name.
func saveDir(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// restoreDir makes dir hold exactly files.
func restoreDir(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

type childProc struct {
	*tornChildProc
}

// applied returns the last count of applied entries a walKillChild
// printed, or -1.
func (p childProc) applied() int {
	n := -1
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), walKillChildPrefix+"applied "); ok {
			if v, err := strconv.Atoi(s); err == nil {
				n = v
			}
		}
	}
	return n
}
