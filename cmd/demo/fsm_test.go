package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cmd   []byte
		op    byte
		key   string
		value []byte
	}{
		{"put", encodePut("k", []byte("v")), opPut, "k", []byte("v")},
		{"put empty value", encodePut("key", nil), opPut, "key", []byte{}},
		{"put binary", encodePut("a/b\x00c", []byte{0, 1, 2, 255}), opPut, "a/b\x00c", []byte{0, 1, 2, 255}},
		{"put long key", encodePut(string(bytes.Repeat([]byte("x"), maxKeyLen)), []byte("v")), opPut, string(bytes.Repeat([]byte("x"), maxKeyLen)), []byte("v")},
		{"delete", encodeDelete("gone"), opDelete, "gone", nil},
		{"cas", encodeCAS("k", []byte("old"), []byte("new")), opCAS, "k", []byte("new")},
		{"cas empty values", encodeCAS("k", nil, nil), opCAS, "k", []byte{}},
		{"incr", encodeIncr("k", 5), opIncr, "k", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeCommand(tc.cmd)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if c.op != tc.op || c.key != tc.key || !bytes.Equal(c.value, tc.value) {
				t.Fatalf("got op %d key %q value %q, want op %d key %q value %q", c.op, c.key, c.value, tc.op, tc.key, tc.value)
			}
		})
	}
}

// TestCommandEncodingStable: the bytes of every command kind are fixed,
// since a cluster's log holds entries that older builds wrote (put and
// delete keep the version-1 encoding they always had).
func TestCommandEncodingStable(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"put", encodePut("k", []byte("v")), "\x11\x01kv"},
		{"delete", encodeDelete("k"), "\x12\x01k"},
		{"cas", encodeCAS("k", []byte("ab"), []byte("c")), "\x23\x01k\x02abc"},
		{"incr", encodeIncr("k", -2), "\x24\x01k\x03"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s encodes as %q, want %q", tc.name, tc.got, tc.want)
		}
		if c, err := decodeCommand([]byte(tc.want)); err != nil || !bytes.Equal(c.encode(), []byte(tc.want)) {
			t.Errorf("%s: decoding %q: %+v, %v", tc.name, tc.want, c, err)
		}
	}
}

func TestCommandCompact(t *testing.T) {
	if got, want := len(encodePut("k", []byte("v"))), 4; got != want {
		t.Fatalf("put of 1-byte key and value is %d bytes, want %d", got, want)
	}
}

func TestDecodeCommandMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  []byte
	}{
		{"empty", nil},
		{"unknown version", []byte{0x21, 1, 'k'}},
		{"unknown op", []byte{0x13, 1, 'k'}},
		{"no key length", []byte{0x11}},
		{"bad uvarint", []byte{0x11, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"empty key", []byte{0x11, 0}},
		{"key past end", []byte{0x11, 5, 'a', 'b'}},
		{"key too long", append([]byte{0x11, 0x81, 0x40}, bytes.Repeat([]byte("x"), maxKeyLen+1)...)},
		{"delete with trailing bytes", append(encodeDelete("k"), 'x')},
		{"version 0", []byte{0x01, 1, 'k'}},
		{"version 3", []byte{0x31, 1, 'k'}},
		{"cas with version 1", []byte{0x13, 1, 'k', 0}},
		{"put with version 2", []byte{0x21, 1, 'k'}},
		{"cas without expected length", []byte{0x23, 1, 'k'}},
		{"cas expected past end", []byte{0x23, 1, 'k', 3, 'a'}},
		{"incr without delta", []byte{0x24, 1, 'k'}},
		{"incr with trailing bytes", append(encodeIncr("k", 1), 0)},
		{"incr bad varint", []byte{0x24, 1, 'k', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeCommand(tc.cmd); !errors.Is(err, errMalformed) {
				t.Fatalf("got %v, want errMalformed", err)
			}
			s := newKVStore()
			if err := s.Apply(tc.cmd); !errors.Is(err, errMalformed) {
				t.Fatalf("Apply: got %v, want errMalformed", err)
			}
			if len(s.All()) != 0 {
				t.Fatalf("malformed command changed the store: %v", s.All())
			}
		})
	}
}

func TestApply(t *testing.T) {
	s := newKVStore()
	for _, cmd := range [][]byte{
		encodePut("a", []byte("1")),
		encodePut("b", []byte("2")),
		encodePut("a", []byte("3")),
		encodeDelete("b"),
		encodeDelete("never-there"),
	} {
		if err := s.Apply(cmd); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	if v, ok := s.Get("a"); !ok || string(v) != "3" {
		t.Fatalf("a = %q, %v; want 3, true", v, ok)
	}
	if _, ok := s.Get("b"); ok {
		t.Fatal("b still present after delete")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := newKVStore()
			for i := range size {
				if err := s.Apply(encodePut(fmt.Sprintf("key-%03d", i), []byte(fmt.Sprint(i*i)))); err != nil {
					t.Fatal(err)
				}
			}
			if size > 0 {
				_ = s.Apply(encodePut("empty", nil))
			}
			snap, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			again, _ := s.Snapshot()
			if !bytes.Equal(snap, again) {
				t.Fatal("two snapshots of the same store differ")
			}
			r := newKVStore()
			_ = r.Apply(encodePut("stale", []byte("x")))
			if err := r.Restore(snap); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			got, want := r.All(), s.All()
			if len(got) != len(want) {
				t.Fatalf("restored %d pairs, want %d", len(got), len(want))
			}
			for k, v := range want {
				if !bytes.Equal(got[k], v) {
					t.Fatalf("restored %q = %q, want %q", k, got[k], v)
				}
			}
			if v, ok := r.Get("empty"); size > 0 && (!ok || v == nil || len(v) != 0) {
				t.Fatalf("empty value restored as %v, %v", v, ok)
			}
		})
	}
}

func TestSnapshotDeterministic(t *testing.T) {
	a, b := newKVStore(), newKVStore()
	keys := []string{"x", "a", "m", "b"}
	for i, k := range keys {
		_ = a.Apply(encodePut(k, []byte{byte(i)}))
		_ = b.Apply(encodePut(keys[len(keys)-1-i], []byte{byte(len(keys) - 1 - i)}))
	}
	sa, _ := a.Snapshot()
	sb, _ := b.Snapshot()
	if !bytes.Equal(sa, sb) {
		t.Fatalf("equal stores, different snapshots:\n%x\n%x", sa, sb)
	}
}

func TestRestoreMalformed(t *testing.T) {
	good := encodeSnapshot(map[string][]byte{"k": []byte("v")})
	for _, tc := range []struct {
		name string
		snap []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XXXX"), good[4:]...)},
		{"unknown version", append(append([]byte("CNKV"), 9), good[5:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte{}, good...), 0)},
		{"huge count", append([]byte("CNKV\x01"), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"value past end", []byte("CNKV\x01\x01\x01k\x05v")},
		{"duplicate key", []byte("CNKV\x01\x02\x01k\x01v\x01k\x01w")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newKVStore()
			_ = s.Apply(encodePut("keep", []byte("me")))
			if err := s.Restore(tc.snap); !errors.Is(err, errBadSnap) {
				t.Fatalf("got %v, want errBadSnap", err)
			}
			if v, ok := s.Get("keep"); !ok || string(v) != "me" {
				t.Fatal("a failed Restore changed the store")
			}
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(encodePut("k", []byte("v")))
	f.Add(encodeDelete("k"))
	f.Add([]byte{0x11, 0xff})
	f.Add(encodeCAS("k", []byte("old"), []byte("new")))
	f.Add(encodeIncr("k", -3))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		again := c.encode()
		if !bytes.Equal(again, b) {
			// Uvarints have one canonical form only if minimal; accept a
			// re-encoding that decodes the same.
			c2, err := decodeCommand(again)
			if err != nil || c2.op != c.op || c2.key != c.key || !bytes.Equal(c2.value, c.value) ||
				!bytes.Equal(c2.old, c.old) || c2.delta != c.delta {
				t.Fatalf("re-encoding %x gave %x", b, again)
			}
		}
	})
}

func FuzzRestore(f *testing.F) {
	f.Add(encodeSnapshot(map[string][]byte{"a": []byte("1"), "b": nil}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		if m2, err := decodeSnapshot(encodeSnapshot(m)); err != nil || len(m2) != len(m) {
			t.Fatalf("re-encoded snapshot: %v, %d pairs want %d", err, len(m2), len(m))
		}
	})
}

// TestSnapshotStreamCaptures: the write function SnapshotStream returns
// writes the store as it was when SnapshotStream ran, whatever Apply did
// since, in the format the store's snapshots always had.
func TestSnapshotStreamCaptures(t *testing.T) {
	s := newKVStore()
	_ = s.Apply(encodePut("a", []byte("1")))
	_ = s.Apply(encodePut("b", nil))
	write, err := s.SnapshotStream()
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Apply(encodePut("a", []byte("changed")))
	_ = s.Apply(encodeDelete("b"))
	_ = s.Apply(encodePut("c", []byte("new")))
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	// Written by the []byte Snapshot of earlier releases for {a: 1, b: ""}.
	const old = "CNKV\x01\x02\x01a\x011\x01b\x00"
	if buf.String() != old {
		t.Fatalf("streamed snapshot %q, want %q", buf.String(), old)
	}
	r := newKVStore()
	if err := r.RestoreStream(strings.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Get("a"); string(v) != "1" || len(r.All()) != 2 {
		t.Fatalf("restored %q", r.All())
	}
}

// TestApplyResult: what cas and incr do and answer, and that a refused
// incr changes nothing.
func TestApplyResult(t *testing.T) {
	s := newKVStore()
	type step struct {
		cmd     []byte
		result  string // the result, or for cas the decoded casResult as %+v
		err     error  // errors.Is target, nil for success
		key     string // the key's value after the step ("-" missing)
		wantVal string
	}
	cas := func(found, swapped bool, v string) string {
		r := casResult{Found: found, Swapped: swapped}
		if found {
			r.Value = []byte(v)
		}
		return fmt.Sprintf("%+v", r)
	}
	for i, st := range []step{
		{encodeIncr("n", 1), "1", nil, "n", "1"},
		{encodeIncr("n", 41), "42", nil, "n", "42"},
		{encodeIncr("n", -50), "-8", nil, "n", "-8"},
		{encodeCAS("n", []byte("7"), []byte("x")), cas(true, false, "-8"), nil, "n", "-8"},
		{encodeCAS("n", []byte("-8"), []byte("x")), cas(true, true, "-8"), nil, "n", "x"},
		{encodeIncr("n", 1), "", errNotInteger, "n", "x"},
		{encodeCAS("missing", nil, []byte("v")), cas(false, false, ""), nil, "missing", "-"},
		{encodeCAS("missing", []byte(""), []byte("v")), cas(false, false, ""), nil, "missing", "-"},
		{encodePut("empty", nil), "", nil, "empty", ""},
		{encodeCAS("empty", []byte(""), []byte("full")), cas(true, true, ""), nil, "empty", "full"},
		{encodePut("big", []byte("9223372036854775807")), "", nil, "big", "9223372036854775807"},
		{encodeIncr("big", 1), "", errOverflow, "big", "9223372036854775807"},
		{encodeIncr("big", -1), "9223372036854775806", nil, "big", "9223372036854775806"},
		{encodePut("neg", []byte("-9223372036854775808")), "", nil, "neg", "-9223372036854775808"},
		{encodeIncr("neg", -1), "", errOverflow, "neg", "-9223372036854775808"},
		{encodePut("sp", []byte(" 1")), "", nil, "sp", " 1"},
		{encodeIncr("sp", 1), "", errNotInteger, "sp", " 1"},
		{encodeDelete("n"), "", nil, "n", "-"},
		{encodeIncr("n", 0), "0", nil, "n", "0"},
	} {
		writes := s.Writes()
		res, err := s.ApplyResult(st.cmd)
		got := string(res)
		if err == nil && st.cmd[0]&0x0f == opCAS {
			cr, derr := decodeCASResult(res)
			if derr != nil {
				t.Fatalf("step %d: %v", i, derr)
			}
			got = fmt.Sprintf("%+v", cr)
		}
		switch {
		case st.err != nil && !errors.Is(err, st.err):
			t.Errorf("step %d (%q): error %v, want %v", i, st.cmd, err, st.err)
		case st.err == nil && err != nil:
			t.Errorf("step %d (%q): error %v", i, st.cmd, err)
		case st.err == nil && got != st.result:
			t.Errorf("step %d (%q): result %q, want %q", i, st.cmd, got, st.result)
		}
		if st.err != nil && s.Writes() != writes {
			t.Errorf("step %d: a refused command counted as a write", i)
		}
		v, ok := s.Get(st.key)
		if gotVal := string(v); !ok && st.wantVal != "-" || ok && gotVal != st.wantVal {
			t.Errorf("step %d: %s = %q (found %v), want %q", i, st.key, v, ok, st.wantVal)
		}
	}
	// The message of a refused incr names the key and the value.
	_, err := s.ApplyResult(encodeIncr("sp", 1))
	if err == nil || !strings.Contains(err.Error(), `incr "sp": its value " 1" is not an integer`) {
		t.Errorf("incr of a text value: %v", err)
	}
	// Apply is ApplyResult without the result.
	if err := s.Apply(encodeIncr("sp", 1)); !errors.Is(err, errNotInteger) {
		t.Errorf("Apply of a refused incr: %v", err)
	}
	// Size accounting follows cas and incr.
	var size int64
	for k, v := range s.All() {
		size += int64(len(k) + len(v))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.bytes != size {
		t.Errorf("bytes %d, want %d", s.bytes, size)
	}
}

func TestDecodeCASResult(t *testing.T) {
	for _, bad := range [][]byte{nil, {4}, {0, 'x'}, {0xff}} {
		if _, err := decodeCASResult(bad); err == nil {
			t.Errorf("decodeCASResult(%q) accepted it", bad)
		}
	}
}

// encodeSnapshot returns the snapshot of m.
func encodeSnapshot(m map[string][]byte) []byte {
	var b bytes.Buffer
	_ = writeSnapshot(&b, m) // a bytes.Buffer does not fail
	return b.Bytes()
}

// decodeSnapshot decodes the snapshot b.
func decodeSnapshot(b []byte) (map[string][]byte, error) {
	return readSnapshot(bytes.NewReader(b))
}
