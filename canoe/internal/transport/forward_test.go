package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

func frameBody(t *testing.T, frame []byte) []byte {
	t.Helper()
	b, err := ReadFrame(bufio.NewReader(bytes.NewReader(frame)))
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	return b
}

func TestForwardRoundTrip(t *testing.T) {
	p := &ProposeRequest{ID: 300, Session: 1<<63 + 5, Seqs: []uint64{1, 1 << 40}, Items: [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 70000)}}
	got, err := DecodeRequest(frameBody(t, AppendPropose(nil, p)))
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("propose: got %+v, %v", got, err)
	}
	r := ReadIndexRequest{ID: 9}
	if got, err := DecodeRequest(frameBody(t, AppendReadIndex(nil, r))); err != nil || got != r {
		t.Fatalf("read index: got %+v, %v", got, err)
	}
	for _, rep := range []*Reply{
		{ID: 1, Status: ReplyOK, Indexes: []uint64{7, 1 << 50}, Term: 3},
		{ID: 2, Status: ReplyNotLeader, Leader: 1 << 60},
		{ID: 3, Status: ReplyUnknown, Message: "leadership lost"},
		{ID: 4, Status: ReplyRefused, Message: "empty proposal"},
	} {
		got, err := DecodeReply(frameBody(t, AppendReply(nil, rep)))
		if err != nil || !reflect.DeepEqual(got, rep) {
			t.Fatalf("reply %+v: got %+v, %v", rep, got, err)
		}
	}
	// Several frames in one stream.
	stream := AppendReadIndex(AppendPropose(nil, p), r)
	br := bufio.NewReader(bytes.NewReader(stream))
	for range 2 {
		if _, err := ReadFrame(br); err != nil {
			t.Fatal(err)
		}
	}
}

func TestForwardRejectsMalformed(t *testing.T) {
	good := frameBody(t, AppendPropose(nil, &ProposeRequest{ID: 1, Session: 2, Seqs: []uint64{3}, Items: [][]byte{[]byte("x")}}))
	for name, b := range map[string][]byte{
		"empty":          {},
		"unknown kind":   {9, 1},
		"truncated":      good[:len(good)-1],
		"trailing":       append(bytes.Clone(good), 0),
		"zero proposals": {KindPropose, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0},
		"huge count":     append([]byte{KindPropose, 1, 0, 0, 0, 0, 0, 0, 0, 2}, 0xff, 0xff, 0xff, 0xff, 0x0f),
		"overlong id":    {KindReadIndex, 0x81, 0x00},
		"read trailing":  {KindReadIndex, 1, 0},
		"cut session":    {KindPropose, 1, 0, 0, 0},
		"cut item":       {KindPropose, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 3, 5, 'x'},
	} {
		if _, err := DecodeRequest(b); !errors.Is(err, ErrBadFrame) {
			t.Errorf("request %s: got %v, want ErrBadFrame", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"not a reply":    {KindPropose, 1, 1},
		"unknown status": {KindReply, 1, 9},
		"zero indexes":   {KindReply, 1, byte(ReplyOK), 0, 1},
		"no term":        {KindReply, 1, byte(ReplyOK), 1, 5},
		"truncated text": {KindReply, 1, byte(ReplyUnknown), 5, 'a'},
		"kind only":      {KindReply},
		"no status":      {KindReply, 1},
		"cut id":         {KindReply, 0x80},
		"no leader":      {KindReply, 1, byte(ReplyNotLeader)},
		"trailing":       {KindReply, 1, byte(ReplyNotLeader), 2, 0},
	} {
		if _, err := DecodeReply(b); !errors.Is(err, ErrBadFrame) {
			t.Errorf("reply %s: got %v, want ErrBadFrame", name, err)
		}
	}
	for name, frame := range map[string][]byte{
		"zero length":  {0},
		"over the cap": {0xff, 0xff, 0xff, 0xff, 0x0f},
		"short body":   {5, 1, 2},
		"cut length":   {0x80},
	} {
		if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(frame))); !errors.Is(err, ErrBadFrame) {
			t.Errorf("frame %s: got %v, want ErrBadFrame", name, err)
		}
	}
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(nil))); err != io.EOF {
		t.Errorf("no frame: got %v, want io.EOF", err)
	}
}

func FuzzDecodeForward(f *testing.F) {
	f.Add(AppendPropose(nil, &ProposeRequest{ID: 1, Session: 2, Seqs: []uint64{3}, Items: [][]byte{[]byte("x")}})[1:])
	f.Add(AppendReadIndex(nil, ReadIndexRequest{ID: 5})[1:])
	f.Add(AppendReply(nil, &Reply{ID: 1, Status: ReplyOK, Indexes: []uint64{4}})[1:])
	f.Add(AppendReply(nil, &Reply{ID: 1, Status: ReplyUnknown, Message: "m"})[1:])
	f.Fuzz(func(t *testing.T, b []byte) {
		if req, err := DecodeRequest(b); err == nil {
			var again []byte
			switch r := req.(type) {
			case *ProposeRequest:
				again = AppendPropose(nil, r)
			case ReadIndexRequest:
				again = AppendReadIndex(nil, r)
			}
			if body := frameBody(t, again); !bytes.Equal(body, b) {
				t.Fatalf("request %x re-encodes as %x", b, body)
			}
		}
		if rep, err := DecodeReply(b); err == nil {
			if body := frameBody(t, AppendReply(nil, rep)); !bytes.Equal(body, b) {
				t.Fatalf("reply %x re-encodes as %x", b, body)
			}
		}
	})
}
