package backup

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func sample(t testing.TB, state string) ([]byte, Header) {
	t.Helper()
	m := []byte(`{"peers":[]}`)
	h := Header{ClusterID: 0x100, NodeID: 7, Index: 42, Term: 3, Created: time.UnixMilli(1700000000123),
		MembershipSize: int64(len(m)), StateSize: int64(len(state))}
	var buf bytes.Buffer
	if _, err := Write(&buf, h, m, strings.NewReader(state)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), h
}

// readAll reads a backup the way its users do: header, then the state to
// io.EOF.
func readAll(b []byte, maxSize int64) (*Reader, []byte, error) {
	r, err := NewReader(bytes.NewReader(b), maxSize)
	if err != nil {
		return nil, nil, err
	}
	state, err := io.ReadAll(r.State())
	return r, state, err
}

func TestRoundTrip(t *testing.T) {
	for _, state := range []string{"", "x", strings.Repeat("state", 100000)} {
		b, h := sample(t, state)
		if int64(len(b)) != h.Size() {
			t.Fatalf("wrote %d bytes, Header.Size says %d", len(b), h.Size())
		}
		r, got, err := readAll(b, 1<<30)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		h.Version = Version
		if r.Header() != h || string(got) != state || string(r.Membership()) != `{"peers":[]}` {
			t.Fatalf("read back header %+v state of %d bytes, want %+v and %d bytes", r.Header(), len(got), h, len(state))
		}
		if r.Sum() != [32]byte(b[len(b)-32:]) {
			t.Fatal("Sum is not the checksum the backup ends with")
		}
	}
}

// TestDamageIsRefused: each damage is refused with an error that says
// what is wrong, and State never returns io.EOF for it.
func TestDamageIsRefused(t *testing.T) {
	good, _ := sample(t, strings.Repeat("0123456789", 1000))
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		return b
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"other file", []byte("PK\x03\x04 a zip file"), "not a canoe backup"},
		{"cut in the magic", good[:5], "truncated"},
		{"cut in the header", good[:40], "truncated: the stream ends inside its 66-byte header"},
		{"cut in the membership", good[:70], "inside its membership record"},
		{"cut in the state", good[:len(good)-500], "inside the state"},
		{"cut in the checksum", good[:len(good)-5], "inside its SHA-256 checksum"},
		{"bit flip in the state", flip(len(good) - 1000), "checksum mismatch"},
		{"bit flip in the index", flip(30), "checksum mismatch"},
		{"bit flip in the checksum", flip(len(good) - 1), "checksum mismatch"},
		{"bit flip in the version", flip(9), "format version"},
		{"state size over the limit", flip(59), "over the limit"},
		{"trailing data", append(bytes.Clone(good), 'x'), "unexpected data after the checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll(tt.data, 1<<20)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an ErrInvalid saying %q", err, tt.want)
			}
		})
	}
}

func TestWriteChecksSizes(t *testing.T) {
	h := Header{MembershipSize: 2, StateSize: 10}
	if _, err := Write(io.Discard, h, []byte("{}"), strings.NewReader("short")); err == nil {
		t.Fatal("Write with a state shorter than StateSize succeeded")
	}
	if _, err := Write(io.Discard, h, []byte("{ }"), strings.NewReader("0123456789")); err == nil {
		t.Fatal("Write with a membership record of another size succeeded")
	}
}

// FuzzReader: whatever the input, the reader never panics nor allocates
// by a forged size, and accepts only what Write produces.
func FuzzReader(f *testing.F) {
	good, _ := sample(f, "some state")
	f.Add(good)
	f.Add(good[:70])
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, state, err := readAll(data, 1<<20)
		if err != nil {
			return
		}
		var again bytes.Buffer
		if _, err := Write(&again, r.Header(), r.Membership(), bytes.NewReader(state)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), data) {
			t.Fatal("an accepted backup does not re-encode to its input")
		}
	})
}
