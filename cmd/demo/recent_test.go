package main

import (
	"strconv"
	"strings"
	"testing"
)

func TestCutText(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
		cut      bool
	}{
		{"short", "abc", 5, "abc", false},
		{"exact", "abcde", 5, "abcde", false},
		{"long", "abcdef", 5, "abcde", true},
		{"split rune", "ab€", 4, "ab", true}, // € is 3 bytes: cut after its first
		{"whole rune", "ab€x", 5, "ab€", true},
		{"invalid kept short", "a\xffb", 5, "a\uFFFDb", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, cut := cutText(tc.in, tc.n)
			if got != tc.want || cut != tc.cut {
				t.Fatalf("cutText(%q, %d) = %q, %v; want %q, %v", tc.in, tc.n, got, cut, tc.want, tc.cut)
			}
		})
	}
}

func TestPreview(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	p := preview("k", []byte(big))
	if p.Size != 1<<20 || len(p.Value) != valuePreviewLen || !p.Truncated || p.Binary {
		t.Fatalf("1 MiB text: size %d, value %d bytes, truncated %v, binary %v", p.Size, len(p.Value), p.Truncated, p.Binary)
	}
	p = preview(strings.Repeat("k", maxKeyLen), []byte{0xff, 0xfe, 0})
	if !p.Binary || p.Value != "fffe00" || p.Truncated || len(p.Key) != keyPreviewLen || !p.KeyTruncated {
		t.Fatalf("binary value, long key: %+v", p)
	}
	p = preview("k", make([]byte, 100))
	if p.Binary || p.Truncated || len(p.Value) != 100 {
		t.Fatalf("100 zero bytes are valid UTF-8 text: %+v", p)
	}
	p = preview("k", append([]byte{0xff}, make([]byte, 100)...))
	if !p.Binary || len(p.Value) != 2*binaryPreview || !p.Truncated {
		t.Fatalf("long binary value: %+v", p)
	}
}

func TestStoreSummary(t *testing.T) {
	s := newKVStore()
	apply := func(cmd []byte) {
		t.Helper()
		if err := s.Apply(cmd); err != nil {
			t.Fatal(err)
		}
	}
	for i := range maxRecentKeys + 5 {
		apply(encodePut("k"+strconv.Itoa(i), []byte("v")))
	}
	apply(encodePut("k3", []byte("again"))) // newest again
	apply(encodeDelete("k24"))
	apply(encodeDelete("missing"))
	v := s.summary()
	if v.Count != maxRecentKeys+4 || len(v.Recent) != maxRecentKeys-1 {
		t.Fatalf("count %d, %d recent; want %d and %d", v.Count, len(v.Recent), maxRecentKeys+4, maxRecentKeys-1)
	}
	if v.Recent[0].Key != "k3" || v.Recent[0].Value != "again" || v.Recent[1].Key != "k23" {
		t.Fatalf("recent starts %q, %q; want k3 (rewritten last), then k23", v.Recent[0].Key, v.Recent[1].Key)
	}
	var want int64
	for k, val := range s.All() {
		want += int64(len(k) + len(val))
	}
	if v.Bytes != want {
		t.Fatalf("bytes %d, want %d", v.Bytes, want)
	}
	if s.Writes() != maxRecentKeys+5+3 {
		t.Fatalf("writes %d, want %d", s.Writes(), maxRecentKeys+5+3)
	}
	before := s.contentVersion()

	// A restored store lists the snapshot's first keys, in key order.
	snap, _ := s.Snapshot()
	r := newKVStore()
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	rv := r.summary()
	if rv.Count != v.Count || rv.Bytes != v.Bytes || len(rv.Recent) != maxRecentKeys || rv.Recent[0].Key != "k0" || rv.Recent[1].Key != "k1" {
		t.Fatalf("restored summary: count %d, bytes %d, %d recent starting %q", rv.Count, rv.Bytes, len(rv.Recent), rv.Recent[0].Key)
	}
	if r.contentVersion() == before || s.contentVersion() != before {
		t.Fatal("versions: a new store must differ, an unchanged one must not")
	}
}
