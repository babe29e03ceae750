package discovery

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta Meta
	}{
		{"minimal", Meta{ID: 1}},
		{"typical", Meta{ID: 0x9f3c_11aa_0042_7710, ClusterID: 0x100, RaftAddr: "10.0.0.7:1234",
			ConfigAddr: "10.0.0.7:1235", BootstrapExpect: 3}},
		{"flags", Meta{ID: 2, HasState: true, Leaving: true}},
		{"only leaving", Meta{ID: 3, Leaving: true}},
		{"non-voter", Meta{ID: 5, RaftAddr: "10.0.0.9:7000", NonVoter: true}},
		{"all flags", Meta{ID: 6, HasState: true, Leaving: true, NonVoter: true}},
		{"max ids", Meta{ID: math.MaxUint64, ClusterID: math.MaxUint64, BootstrapExpect: math.MaxInt32}},
		{"ipv6 and unicode", Meta{ID: 4, RaftAddr: "[fe80::1%eth0]:7000", ConfigAddr: "hôte:80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.meta.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if b[0] != metaVersion {
				t.Errorf("version byte = %d, want %d", b[0], metaVersion)
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			if got != tt.meta {
				t.Errorf("got %+v, want %+v", got, tt.meta)
			}
		})
	}
}

func TestMetaSizeLimit(t *testing.T) {
	// Meta{ID: 1} encodes to 7 bytes, one of them RaftAddr's length; a
	// RaftAddr of n >= 128 bytes takes n + 2 bytes: 7 - 1 + 2 + n in all.
	for _, tt := range []struct {
		name    string
		addrLen int
		wantErr bool
	}{
		{"exactly the limit", MaxMetaSize - 8, false},
		{"one byte over", MaxMetaSize - 7, true},
		{"far over", 4096, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := Meta{ID: 1, RaftAddr: strings.Repeat("a", tt.addrLen)}
			b, err := m.Encode()
			if tt.wantErr {
				if !errors.Is(err, ErrMetaTooLarge) {
					t.Fatalf("Encode of %d-byte addr: got %v, want ErrMetaTooLarge", tt.addrLen, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(b) != MaxMetaSize {
				t.Fatalf("encoded %d bytes, want %d", len(b), MaxMetaSize)
			}
			if got, err := DecodeMeta(b); err != nil || got != m {
				t.Fatalf("DecodeMeta: got (%+v, %v), want %+v", got, err, m)
			}
		})
	}
	if _, err := DecodeMeta(make([]byte, MaxMetaSize+1)); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("DecodeMeta of %d bytes: got %v, want ErrMetaTooLarge", MaxMetaSize+1, err)
	}
}

func TestMetaEncodeInvalid(t *testing.T) {
	for _, tt := range []struct {
		name string
		meta Meta
	}{
		{"zero id", Meta{RaftAddr: "x:1"}},
		{"negative bootstrap expect", Meta{ID: 1, BootstrapExpect: -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.meta.Encode(); !errors.Is(err, ErrInvalidMeta) {
				t.Errorf("got %v, want ErrInvalidMeta", err)
			}
		})
	}
}

func TestDecodeMetaInvalid(t *testing.T) {
	valid, err := Meta{ID: 7, ClusterID: 9, RaftAddr: "h:1", ConfigAddr: "h:2", BootstrapExpect: 3}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version 0", append([]byte{0}, valid[1:]...)},
		{"only version", []byte{1}},
		{"truncated id varint", []byte{1, 0x80}},
		{"zero id", []byte{1, 0, 0, 0, 0, 0, 0}},
		{"string longer than input", []byte{1, 1, 1, 50, 'a'}},
		{"missing flags", valid[:len(valid)-1]},
		{"overlong varint", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"bootstrap expect too large", []byte{1, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}},
		{"json", []byte(`{"id":1}`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMeta(tt.in)
			if !errors.Is(err, ErrInvalidMeta) {
				t.Errorf("got (%+v, %v), want ErrInvalidMeta", m, err)
			}
		})
	}
}

func TestDecodeMetaForwardCompatible(t *testing.T) {
	want := Meta{ID: 5, ClusterID: 6, RaftAddr: "a:1", HasState: true}
	b, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// A later version that appends a field and sets an unknown flag bit.
	future := append([]byte{2}, b[1:]...)
	future[len(future)-1] |= 0x80
	future = append(future, 0x05, 'x', 'y', 'z', 'z', 'y')
	got, err := DecodeMeta(future)
	if err != nil {
		t.Fatalf("DecodeMeta(v2): %v", err)
	}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestMetaNonVoterIsAFlagBit: NonVoter only sets a flag bit, so a decoder
// that predates it (which ignores unknown bits) reads everything else the
// same.
func TestMetaNonVoterIsAFlagBit(t *testing.T) {
	base := Meta{ID: 8, ClusterID: 9, RaftAddr: "h:1", ConfigAddr: "h:2", HasState: true}
	plain, err := base.Encode()
	if err != nil {
		t.Fatal(err)
	}
	nv := base
	nv.NonVoter = true
	flagged, err := nv.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(flagged) != len(plain) || string(flagged[:len(plain)-1]) != string(plain[:len(plain)-1]) {
		t.Fatalf("NonVoter changed more than the flags byte: %x vs %x", flagged, plain)
	}
	if got := flagged[len(flagged)-1] &^ plain[len(plain)-1]; got != 1<<2 {
		t.Fatalf("NonVoter set flag bits %08b, want bit 2", got)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		{ID: 1},
		{ID: 42, ClusterID: 7, RaftAddr: "127.0.0.1:7000", ConfigAddr: "127.0.0.1:8000", BootstrapExpect: 3, HasState: true, Leaving: true},
		{ID: 43, RaftAddr: "127.0.0.1:7001", NonVoter: true},
	} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0x80})
	f.Add([]byte{2, 1, 0, 0, 0, 0, 0, 9, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMeta) && !errors.Is(err, ErrMetaTooLarge) {
				t.Fatalf("error %v matches no sentinel", err)
			}
			return
		}
		// Whatever decodes must encode within the limit and decode to the same.
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if len(enc) > len(b) {
			t.Fatalf("re-encoding grew: %d > %d bytes", len(enc), len(b))
		}
		again, err := DecodeMeta(enc)
		if err != nil || again != m {
			t.Fatalf("round trip: got (%+v, %v), want %+v", again, err, m)
		}
	})
}
