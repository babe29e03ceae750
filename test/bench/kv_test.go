package main

import (
	"bytes"
	"testing"
	"time"
)

func TestKVSnapshotRestore(t *testing.T) {
	var a kvStore
	a.set(kvEntry(1, []byte("one")))
	a.set(kvEntry(2, nil))
	if v := a.set(kvEntry(1, []byte("uno"))); v != 2 {
		t.Fatalf("second set of key 1: version %d, want 2", v)
	}
	if v := a.set([]byte("short")); v != 0 {
		t.Fatalf("an entry shorter than a key: version %d, want 0", v)
	}
	var b kvStore
	if err := b.restore(a.snapshot()); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[uint64]string{1: "uno", 2: "", 3: ""} {
		if got := b.get(k); !bytes.Equal(got, []byte(want)) {
			t.Errorf("key %d after restore: got %q, want %q", k, got, want)
		}
	}
	if v := b.set(kvEntry(1, nil)); v != 3 {
		t.Errorf("set of key 1 after restore: version %d, want 3", v)
	}
	snap := a.snapshot()
	for _, cut := range []int{1, 19, len(snap) - 1} {
		if err := b.restore(snap[:cut]); err == nil {
			t.Errorf("restore of a snapshot cut to %d of %d bytes: no error", cut, len(snap))
		}
	}
}

func TestSummarizeSoak(t *testing.T) {
	o := options{nodes: 2, soak: soakOptions{duration: 90 * time.Second}}
	var samples []soakSample
	for i := range 10 {
		sec := float64(i * 10)
		samples = append(samples,
			soakSample{Sec: sec, Node: 0, RSSMiB: 100 + sec, DiskMiB: 64, Writes: int64(i * 1000)},
			soakSample{Sec: sec, Node: 1, Leader: i == 9, RSSMiB: 50, DiskMiB: 64 + sec, Writes: int64(i * 500), Fails: int64(i)})
	}
	got := summarizeSoak(o, samples)
	// Settled from 30 s on: samples at 30..90 s.
	if s := got[0]; s.RSSMin != 130 || s.RSSMax != 190 || s.WritesSec != 100 || s.Leader {
		t.Errorf("node 0: got RSS %v-%v, %v writes/s, leader %v; want 130-190, 100, false", s.RSSMin, s.RSSMax, s.WritesSec, s.Leader)
	}
	if s := got[1]; s.RSSRatio != 1 || s.DiskMin != 94 || s.DiskMax != 154 || s.Disk != 154 || s.Fails != 6 || !s.Leader {
		t.Errorf("node 1: got RSS ratio %v, disk %v-%v (%v), %d failed, leader %v; want 1, 94-154 (154), 6, true",
			s.RSSRatio, s.DiskMin, s.DiskMax, s.Disk, s.Fails, s.Leader)
	}
}
