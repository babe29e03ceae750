package adapter

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func TestTaggedRoundTrip(t *testing.T) {
	in := Tagged{Batch: Tag{Session: 7, Seq: 300}, Groups: []Group{
		{Session: 7, Seqs: []uint64{1, 2}, Items: [][]byte{[]byte("a"), {}}},
		{Session: 1 << 63, Seqs: []uint64{1 << 40}, Items: [][]byte{bytes.Repeat([]byte("b"), 300)}},
	}}
	enc := EncodeTagged(in)
	got, err := DecodeTagged(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Batch != in.Batch || len(got.Groups) != len(in.Groups) {
		t.Fatalf("got %+v, want %+v", got, in)
	}
	for i, g := range got.Groups {
		w := in.Groups[i]
		if g.Session != w.Session || !slices.Equal(g.Seqs, w.Seqs) || !slices.EqualFunc(g.Items, w.Items, bytes.Equal) {
			t.Fatalf("group %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestDecodeTaggedRejectsMalformed(t *testing.T) {
	good := EncodeTagged(Tagged{Batch: Tag{Session: 1, Seq: 1}, Groups: []Group{{Session: 1, Seqs: []uint64{1}, Items: [][]byte{[]byte("x")}}}})
	for name, b := range map[string][]byte{
		"empty":       nil,
		"wrong kind":  append([]byte{byte(KindBatch)}, good[1:]...),
		"truncated":   good[:len(good)-1],
		"trailing":    append(bytes.Clone(good), 0),
		"no groups":   EncodeTagged(Tagged{Batch: Tag{Session: 1, Seq: 1}}),
		"empty group": EncodeTagged(Tagged{Batch: Tag{Session: 1, Seq: 1}, Groups: []Group{{Session: 2}}}),
		"huge count":  append(bytes.Clone(good[:10]), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"overlong uvarint": func() []byte {
			b := bytes.Clone(good[:9])
			return append(b, 0x81, 0x00) // seq 1 spelled in two bytes
		}(),
	} {
		if _, err := DecodeTagged(b); !errors.Is(err, ErrMalformedEntry) {
			t.Errorf("%s: got %v, want ErrMalformedEntry", name, err)
		}
	}
}

func FuzzDecodeTagged(f *testing.F) {
	f.Add(EncodeTagged(Tagged{Batch: Tag{Session: 1, Seq: 2}, Groups: []Group{{Session: 3, Seqs: []uint64{4}, Items: [][]byte{[]byte("x")}}}}))
	f.Add([]byte{byte(KindTagged), 0, 0, 0, 0, 0, 0, 0, 1, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeTagged(data)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeTagged(got), data) {
			t.Fatalf("accepted tagged entry does not re-encode to its input")
		}
	})
}

// resultFSM answers each proposal with its own bytes reversed; "fail"
// fails and "panic" panics.
type resultFSM struct{ listFSM }

func (f *resultFSM) ApplyResult(d []byte) ([]byte, error) {
	if err := f.Apply(d); err != nil {
		return nil, err
	}
	out := slices.Clone(d)
	slices.Reverse(out)
	return out, nil
}

// TestApplyTaggedDelivers: the results of this node's proposals (and only
// those) reach Delivered, with the ResultFSM's values and the FSM's own
// errors, and the batch's tag with them.
func TestApplyTaggedDelivers(t *testing.T) {
	errFail := errors.New("asked to fail")
	var got []Delivery
	a := New(Config{
		FSM:       &resultFSM{},
		Owns:      func(s uint64) bool { return s == 7 },
		Delivered: func(d Delivery) { got = append(got, d) },
	})
	a.ApplyBatch([]*raft.Log{
		cmd(1, EncodeTagged(Tagged{Batch: Tag{Session: 7, Seq: 1}, Groups: []Group{
			{Session: 9, Seqs: []uint64{1}, Items: [][]byte{[]byte("other")}},
			{Session: 7, Seqs: []uint64{5, 6, 7}, Items: [][]byte{[]byte("abc"), []byte("fail"), []byte("panic")}},
		}})),
		cmd(2, EncodeTagged(Tagged{Batch: Tag{Session: 9, Seq: 1}, Groups: []Group{
			{Session: 9, Seqs: []uint64{2}, Items: [][]byte{[]byte("not mine")}},
		}})),
	})
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1 (the other session's batch holds nothing of ours)", len(got))
	}
	d := got[0]
	if d.Index != 1 || d.Batch != (Tag{Session: 7, Seq: 1}) || len(d.Results) != 3 {
		t.Fatalf("delivery %+v, want index 1, batch 7/1, 3 results", d)
	}
	if r := d.Results[0]; r.Tag != (Tag{7, 5}) || string(r.Value) != "cba" || r.Err != nil {
		t.Errorf("result 0: %+v, want value cba", r)
	}
	if r := d.Results[1]; r.Tag != (Tag{7, 6}) || r.Err == nil || r.Err.Error() != errFail.Error() {
		t.Errorf("result 1: %+v, want the FSM's error", r)
	}
	var pe *PanicError
	if r := d.Results[2]; !errors.As(r.Err, &pe) {
		t.Errorf("result 2: %+v, want a recovered panic", r)
	}
	if a.AppliedIndex() != 2 {
		t.Errorf("AppliedIndex %d, want 2", a.AppliedIndex())
	}
}
