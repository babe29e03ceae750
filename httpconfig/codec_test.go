package httpconfig

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestProposalsRoundTrip(t *testing.T) {
	many := make([][]byte, 200)
	for i := range many {
		many[i] = []byte(fmt.Sprint(i))
	}
	tests := []struct {
		name  string
		items [][]byte
	}{
		{"one empty item", [][]byte{{}}},
		{"one item", [][]byte{[]byte("set x 1")}},
		{"several", [][]byte{[]byte("a"), {}, []byte("ccc")}},
		{"multi-byte length", [][]byte{bytes.Repeat([]byte{0xab}, 300), bytes.Repeat([]byte{1}, 70000)}},
		{"multi-byte count", many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := EncodeProposals(tt.items)
			if enc[0] != CodecVersion {
				t.Errorf("version byte = %d, want %d", enc[0], CodecVersion)
			}
			got, err := DecodeProposals(enc, 0)
			if err != nil {
				t.Fatalf("DecodeProposals: %v", err)
			}
			if len(got) != len(tt.items) {
				t.Fatalf("got %d items, want %d", len(got), len(tt.items))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.items[i]) {
					t.Errorf("item %d = %q, want %q", i, truncate(string(got[i]), 20), truncate(string(tt.items[i]), 20))
				}
			}
			if _, err := DecodeProposals(enc, len(tt.items)); err != nil {
				t.Errorf("DecodeProposals with maxItems = count: %v", err)
			}
		})
	}
}

func TestProposalsExactEncoding(t *testing.T) {
	got := EncodeProposals([][]byte{[]byte("hi"), {}})
	want := []byte{1, 2, 2, 'h', 'i', 0}
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeProposals = %v, want %v", got, want)
	}
	got = EncodeResults([]Result{{Index: 300, Err: "x"}})
	want = []byte{1, 1, 0xac, 0x02, 1, 'x'}
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeResults = %v, want %v", got, want)
	}
}

// TestProposalsAlias checks that decoded items alias the input but that
// appending to one cannot overwrite the next.
func TestProposalsAlias(t *testing.T) {
	enc := EncodeProposals([][]byte{[]byte("ab"), []byte("cd")})
	items, err := DecodeProposals(enc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cap(items[0]) != len(items[0]) {
		t.Errorf("cap(item 0) = %d, want %d", cap(items[0]), len(items[0]))
	}
	_ = append(items[0], 'X', 'X', 'X')
	if string(items[1]) != "cd" {
		t.Errorf("item 1 = %q after appending to item 0, want \"cd\"", items[1])
	}
}

func TestDecodeProposalsMalformed(t *testing.T) {
	overflow := []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	tests := []struct {
		name     string
		in       []byte
		maxItems int
		want     string
	}{
		{"nil", nil, 0, "empty"},
		{"version 0", []byte{0, 1, 0}, 0, "unknown version 0"},
		{"version 2", []byte{2, 1, 0}, 0, "unknown version 2"},
		{"no count", []byte{1}, 0, "truncated count"},
		{"truncated count", []byte{1, 0x80}, 0, "truncated count"},
		{"zero items", []byte{1, 0}, 0, "zero items"},
		{"count beyond input", []byte{1, 3, 0, 0}, 0, "count 3 larger than 2 remaining bytes"},
		{"huge count", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 0, "larger than"},
		{"count overflow", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 0, "count overflows"},
		{"non-minimal count", []byte{1, 0x81, 0x00, 0}, 0, "count not minimally encoded"},
		{"non-minimal length", []byte{1, 1, 0x80, 0x00}, 0, "item length not minimally encoded"},
		{"missing item", []byte{1, 2, 0}, 0, "larger than"},
		{"truncated length", []byte{1, 1, 0x80}, 0, "truncated item length"},
		{"length overflow", overflow, 0, "item length overflows"},
		{"length beyond input", []byte{1, 1, 5, 'a', 'b'}, 0, "item length 5 larger than 2 remaining bytes"},
		{"huge length", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 'a'}, 0, "larger than"},
		{"trailing byte", []byte{1, 1, 1, 'a', 0}, 0, "1 trailing bytes"},
		{"over max items", EncodeProposals([][]byte{{1}, {2}, {3}}), 2, "over the limit of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeProposals(tt.in, tt.maxItems)
			if err == nil {
				t.Fatalf("DecodeProposals(%v) = %q, want an error", tt.in, got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestResultsRoundTrip(t *testing.T) {
	many := make([]Result, 300)
	for i := range many {
		many[i] = Result{Index: uint64(i) << 40}
	}
	tests := []struct {
		name    string
		results []Result
	}{
		{"one", []Result{{Index: 1}}},
		{"errors", []Result{{Index: 7, Err: "no such key"}, {Index: 8}, {Index: 1<<64 - 1, Err: strings.Repeat("e", 200)}}},
		{"index zero", []Result{{Index: 0}}},
		{"many", many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResults(EncodeResults(tt.results))
			if err != nil {
				t.Fatalf("DecodeResults: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.results) {
				t.Errorf("got %v, want %v", got, tt.results)
			}
		})
	}
}

func TestDecodeResultsMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"nil", nil, "empty"},
		{"version", []byte{9, 1, 1, 0}, "unknown version 9"},
		{"zero results", []byte{1, 0}, "zero items"},
		{"count beyond input", []byte{1, 2, 1, 0}, "count 2 larger than"},
		{"truncated error length", []byte{1, 1, 1, 0x80}, "truncated error length"},
		{"non-minimal index", []byte{1, 1, 0x80, 0x00, 0}, "index not minimally encoded"},
		{"error beyond input", []byte{1, 1, 1, 4, 'a'}, "error text length 4 larger than 1"},
		{"trailing", []byte{1, 1, 1, 0, 0}, "1 trailing bytes"},
		{"index overflow", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}, "index overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeResults(tt.in)
			if err == nil {
				t.Fatalf("DecodeResults(%v) = %v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestUvarintLen(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<63 - 1, 1<<64 - 1} {
		want := len(EncodeResults([]Result{{Index: v}})) - 3
		if got := uvarintLen(v); got != want {
			t.Errorf("uvarintLen(%d) = %d, want %d", v, got, want)
		}
	}
}
