package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeCommand(t *testing.T) {
	long := strings.Repeat("k", maxKeyLen+1)
	tests := []struct {
		name    string
		in      []byte
		key     string
		val     string
		wantErr bool
	}{
		{"append", encodeAppend("a", "v1"), "a", "v1", false},
		{"empty value", encodeAppend("a", ""), "a", "", false},
		{"empty", nil, "", "", true},
		{"unknown opcode", []byte{9, 1, 'a', 0}, "", "", true},
		{"empty key", encodeAppend("", "v"), "", "", true},
		{"key too long", encodeAppend(long, "v"), "", "", true},
		{"value too long", encodeAppend("a", strings.Repeat("v", maxValLen+1)), "", "", true},
		{"truncated", encodeAppend("abc", "value")[:6], "", "", true},
		{"trailing bytes", append(encodeAppend("a", "v"), 0), "", "", true},
		{"length overflow", []byte{opAppend, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, val, err := decodeCommand(tc.in)
			if tc.wantErr {
				if !errors.Is(err, errBadCommand) {
					t.Fatalf("got err %v, want errBadCommand", err)
				}
				return
			}
			if err != nil || key != tc.key || val != tc.val {
				t.Fatalf("got (%q, %q, %v), want (%q, %q, nil)", key, val, err, tc.key, tc.val)
			}
		})
	}
}

func TestFSMSnapshotRoundTrip(t *testing.T) {
	f := newKVFSM()
	for _, c := range [][]byte{encodeAppend("a", "1"), encodeAppend("b", "2"), {0}, encodeAppend("a", "3")} {
		_ = f.Apply(c)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	g := newKVFSM()
	if err := g.Restore(snap); err != nil {
		t.Fatal(err)
	}
	c1, k1, h1 := f.digest()
	c2, k2, h2 := g.digest()
	if c1 != 4 || k1 != 2 || c1 != c2 || k1 != k2 || h1 != h2 {
		t.Fatalf("got digest (%d, %d, %s) after restore, want (%d, %d, %s) with 4 commands and 2 keys", c2, k2, h2, c1, k1, h1)
	}
	if got := g.get("a"); strings.Join(got, ",") != "1,3" {
		t.Fatalf("got a=%v, want [1 3]", got)
	}
}

// FuzzDecodeCommand: whatever the replicated log holds, decoding never
// panics, and anything accepted re-encodes to the same bytes.
func FuzzDecodeCommand(f *testing.F) {
	f.Add(encodeAppend("a", "v"))
	f.Add(encodeAppend("key", ""))
	f.Add([]byte{opAppend, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		key, val, err := decodeCommand(b)
		if err != nil {
			if !errors.Is(err, errBadCommand) {
				t.Fatalf("error %v does not match errBadCommand", err)
			}
			return
		}
		if key == "" || len(key) > maxKeyLen || len(val) > maxValLen {
			t.Fatalf("accepted key %q (%d bytes) and %d-byte value beyond the limits", key, len(key), len(val))
		}
		if re := encodeAppend(key, val); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding gives %x, decoded from %x", re, b)
		}
		fsm := newKVFSM()
		if err := fsm.Apply(b); err != nil {
			t.Fatalf("Apply of a decodable command: %v", err)
		}
	})
}

// FuzzRestore: a snapshot the FSM accepts restores to a state whose own
// snapshot restores to the same digest; bad ones are refused, never panic.
func FuzzRestore(f *testing.F) {
	good := newKVFSM()
	_ = good.Apply(encodeAppend("a", "1"))
	snap, _ := good.Snapshot()
	f.Add([]byte(snap))
	f.Add([]byte(`{"lists":{"":["x"]},"commands":1}`))
	f.Add([]byte(`{"lists":{"a":["x","y"]},"commands":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fsm := newKVFSM()
		if err := fsm.Restore(b); err != nil {
			return
		}
		again, err := fsm.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		g := newKVFSM()
		if err := g.Restore(again); err != nil {
			t.Fatalf("the FSM's own snapshot is refused: %v", err)
		}
		_, _, h1 := fsm.digest()
		_, _, h2 := g.digest()
		if h1 != h2 {
			t.Fatalf("digest changed across snapshot and restore: %s vs %s", h1, h2)
		}
	})
}

// TestSnapshotStreamMatchesSnapshot: the streamed snapshot is the []byte
// one byte for byte, and holds the state captured by SnapshotStream even
// after later appends.
func TestSnapshotStreamMatchesSnapshot(t *testing.T) {
	f := newKVFSM()
	for _, c := range [][]byte{encodeAppend("b", "1"), encodeAppend("a<&>", "2"), {0}, encodeAppend("b", "3")} {
		_ = f.Apply(c)
	}
	want, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	write, err := f.SnapshotStream()
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Apply(encodeAppend("b", "later"))
	var got bytes.Buffer
	if err := write(&got); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Fatalf("streamed %s, want %s", got.String(), want)
	}
	g := newKVFSM()
	if err := g.RestoreStream(&got); err != nil {
		t.Fatal(err)
	}
	if l := g.get("b"); strings.Join(l, ",") != "1,3" {
		t.Fatalf("restored b=%v, want [1 3]", l)
	}
}
