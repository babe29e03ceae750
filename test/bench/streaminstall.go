package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/canoe-raft/canoe/canoe"
)

// The streaming snapshot measurement compares canoe's two snapshot paths
// on a large state: a StreamingFSM and a []byte FSM. One node founds a
// cluster, one "grow" entry makes its state Payload bytes, the node
// snapshots it and drops its log, and a second node joins and can only get
// the state as a snapshot install (checked). The log store is Bolt:
// raft-wal keeps the entries a snapshot compacted readable until their
// whole 64 MiB segment goes, and a new node would replay the log instead.
// It reports the time of each phase and how far the process's peak RSS
// rose above where it stood before the phase began (the peak is reset
// then: /proc/self/clear_refs).
//
// The FSM's state is virtual: Payload bytes of a pattern, computed when
// written and checked when read, never held, so the FSM itself owns no
// memory and the rise is canoe's own (with a real 2 GiB state it comes on
// top of the FSM's). The []byte FSM must still hand canoe the whole state
// as one slice at each snapshot (the API's copy, counted) and canoe reads
// an installed snapshot into one slice before Restore.

const vblobChunk = 1 << 20

func vblobPattern() []byte {
	b := make([]byte, vblobChunk)
	for i := range b {
		b[i] = byte(i * 31)
	}
	return b
}

var vblobBytes = vblobPattern()

// vblob is the virtual state: its size, set by a grow entry.
type vblob struct {
	size     atomic.Int64
	ready    atomic.Int64 // size once the state is held (applied or restored)
	restores atomic.Int64
}

func (f *vblob) Apply(d canoe.LogData) error {
	if len(d) == 8 {
		f.size.Store(int64(binary.BigEndian.Uint64(d)))
		f.ready.Store(f.size.Load())
	}
	return nil
}

// vblobWrite writes size bytes of the pattern, after an 8-byte size.
func vblobWrite(w io.Writer, size int64) error {
	if _, err := w.Write(binary.BigEndian.AppendUint64(nil, uint64(size))); err != nil {
		return err
	}
	for left := size; left > 0; left -= vblobChunk {
		if _, err := w.Write(vblobBytes[:min(left, vblobChunk)]); err != nil {
			return err
		}
	}
	return nil
}

// vblobRead reads and checks what vblobWrite wrote, and returns the size.
func vblobRead(r io.Reader) (int64, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	size := int64(binary.BigEndian.Uint64(hdr[:]))
	buf := make([]byte, vblobChunk)
	for left := size; left > 0; left -= vblobChunk {
		n := min(left, vblobChunk)
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return 0, err
		}
		if !bytes.Equal(buf[:n], vblobBytes[:n]) {
			return 0, errors.New("vblob: the state read back differs")
		}
	}
	return size, nil
}

// streamVBlob is vblob as a StreamingFSM.
type streamVBlob struct{ vblob }

func (f *streamVBlob) Snapshot() (canoe.SnapshotData, error) {
	return nil, errors.New("Snapshot called on a StreamingFSM")
}
func (f *streamVBlob) Restore(canoe.SnapshotData) error {
	return errors.New("Restore called on a StreamingFSM")
}

func (f *streamVBlob) SnapshotStream() (func(io.Writer) error, error) {
	size := f.size.Load()
	return func(w io.Writer) error { return vblobWrite(w, size) }, nil
}

func (f *streamVBlob) RestoreStream(r io.Reader) error {
	size, err := vblobRead(r)
	if err != nil {
		return err
	}
	f.size.Store(size)
	f.ready.Store(size)
	f.restores.Add(1)
	return nil
}

// bytesVBlob is vblob as a []byte FSM.
type bytesVBlob struct{ vblob }

func (f *bytesVBlob) Snapshot() (canoe.SnapshotData, error) {
	var b bytes.Buffer
	b.Grow(int(f.size.Load()) + 8)
	err := vblobWrite(&b, f.size.Load())
	return b.Bytes(), err
}

func (f *bytesVBlob) Restore(s canoe.SnapshotData) error {
	size, err := vblobRead(bytes.NewReader(s))
	if err != nil {
		return err
	}
	f.size.Store(size)
	f.ready.Store(size)
	f.restores.Add(1)
	return nil
}

// peakWatch measures how far the process's peak RSS rises above its RSS
// at start.
type peakWatch struct{ base int64 }

func startPeakWatch() (*peakWatch, error) {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return nil, fmt.Errorf("reset the peak RSS: %w", err)
	}
	return &peakWatch{base: procStatusBytes("self", "VmRSS")}, nil
}

func (p *peakWatch) riseMiB() float64 {
	return float64(procStatusBytes("self", "VmHWM")-p.base) / (1 << 20)
}

// runStreamInstall measures canoe's snapshot and install of sp.Payload
// bytes with a StreamingFSM (sp.Streaming) or a []byte FSM.
func runStreamInstall(im impl, sp spec, r *result) error {
	c, ok := im.(*canoeImpl)
	if !ok {
		return fmt.Errorf("the streaming snapshot is measured for canoe, not %s", sp.Impl)
	}
	r.Impl = "canoe, []byte FSM"
	if sp.Streaming {
		r.Impl = "canoe, StreamingFSM"
	}
	fsms := map[*canoe.Node]*vblob{}
	c.configure = func(cfg *canoe.NodeConfig) {
		if sp.Streaming {
			cfg.FSM = &streamVBlob{}
		} else {
			cfg.FSM = &bytesVBlob{}
		}
		cfg.SnapshotConfig = &canoe.SnapshotConfig{Interval: 50 * time.Millisecond, MinCommittedLogs: snapThreshold, MaxRetainedSnapshots: 1}
	}
	c.started = func(n *canoe.Node, cfg *canoe.NodeConfig) {
		switch f := cfg.FSM.(type) {
		case *streamVBlob:
			fsms[n] = &f.vblob
		case *bytesVBlob:
			fsms[n] = &f.vblob
		}
	}
	if err := c.start(sp.Dir); err != nil {
		c.stop()
		return fmt.Errorf("start: %w", err)
	}
	defer c.stop()
	l := c.leader()

	pw, err := startPeakWatch()
	if err != nil {
		return err
	}
	if err := buildAndSnapshot(c, l, sp.Payload, r); err != nil {
		return err
	}
	r.SnapshotRSSMiB = pw.riseMiB()
	if pw, err = startPeakWatch(); err != nil {
		return err
	}
	if err := joinAndInstall(c, sp, func(n *canoe.Node) *vblob { return fsms[n] }, r); err != nil {
		return err
	}
	r.InstallRSSMiB = pw.riseMiB()
	r.How = "1 node (Bolt log: it deletes what a snapshot compacts) + NewNode+Start joining by URL; virtual state (the FSM holds none); RSS: rise of the process's peak over its RSS before each phase"
	return nil
}
