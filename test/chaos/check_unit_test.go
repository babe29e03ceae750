package chaos

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checks must catch what they claim to: each case is a small history
// with one anomaly (or none).
func TestCheckHistory(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	app := func(val string, call, ret int64, out outcome, kind string) histOp {
		return histOp{Kind: opAppend, Key: "k", Val: val, Call: ms(call), Ret: ms(ret), Out: out, ErrKind: kind}
	}
	read := func(kind opKind, call, ret int64, vals ...string) histOp {
		return histOp{Kind: kind, Key: "k", Call: ms(call), Ret: ms(ret), Out: outOK, Values: vals}
	}
	tests := []struct {
		name    string
		ops     []histOp
		final   []string
		verdict porcupine.CheckResult
		want    string // substring of a problem; "" for none
	}{
		{"clean", []histOp{app("1", 0, 10, outOK, ""), read(opLinGet, 20, 30, "1"), app("2", 25, 40, outUnknown, "timeout")},
			[]string{"1", "2"}, porcupine.Ok, ""},
		{"unknown never applied", []histOp{app("1", 0, 10, outOK, ""), app("2", 5, 40, outUnknown, "timeout"), read(opLinGet, 50, 60, "1")},
			[]string{"1"}, porcupine.Ok, ""},
		{"stale linearizable read", []histOp{app("1", 0, 10, outOK, ""), read(opLinGet, 20, 30)},
			[]string{"1"}, porcupine.Illegal, "stale linearizable read"},
		{"read back in time", []histOp{app("1", 0, 100, outUnknown, "timeout"), read(opLinGet, 10, 20, "1"), read(opLinGet, 30, 40)},
			[]string{"1"}, porcupine.Illegal, "went back in time"},
		{"stale plain read is fine", []histOp{app("1", 0, 10, outOK, ""), read(opGet, 20, 30)},
			[]string{"1"}, porcupine.Ok, ""},
		{"lost write", []histOp{app("1", 0, 10, outOK, "")},
			nil, porcupine.Ok, "missing from the final state"},
		{"failed write visible", []histOp{app("1", 0, 10, outFailed, "no_leader"), read(opGet, 20, 30, "1")},
			[]string{"1"}, porcupine.Ok, "certainly failed"},
		{"never written", []histOp{read(opGet, 20, 30, "x")},
			[]string{"x"}, porcupine.Ok, "never appended"},
		{"duplicate", []histOp{app("1", 0, 10, outOK, "")},
			[]string{"1", "1"}, porcupine.Ok, "twice"},
		{"plain read not a prefix", []histOp{app("1", 0, 10, outOK, ""), app("2", 0, 10, outOK, ""), read(opGet, 20, 30, "2")},
			[]string{"1", "2"}, porcupine.Ok, "not a prefix"},
		{"other error took effect", []histOp{app("1", 0, 10, outUnknown, "error")},
			[]string{"1"}, porcupine.Ok, "matches neither ErrUnknownOutcome nor ErrTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &report{seed: 1}
			r.checkHistory(tc.ops, map[string][]string{"k": tc.final}, t.TempDir())
			if r.verdict != tc.verdict {
				t.Errorf("got porcupine verdict %s, want %s", r.verdict, tc.verdict)
			}
			got := strings.Join(r.problems, "\n")
			if tc.want == "" && tc.verdict == porcupine.Ok && got != "" {
				t.Errorf("got problems %q, want none", got)
			}
			if tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("got problems %q, want one containing %q", got, tc.want)
			}
			if tc.verdict != porcupine.Ok && r.vizPath == "" {
				t.Errorf("got no visualization for a %s history", tc.verdict)
			}
		})
	}
}

// The proxy identifies the sending process, forwards, and stalls a blocked
// pair until it heals (then resets the stalled connection).
func TestFaultNetBlock(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	port := backend.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); buf := make([]byte, 64); n, _ := c.Read(buf); _, _ = c.Write(buf[:n]) }()
		}
	}()
	f := newFaultNet(1)
	defer func() { f.close(); backend.Close(); <-done }()
	f.setPID(1, os.Getpid()) // this process plays node 1
	if err := f.addNode(0, "127.0.250.11", freePort(t), port); err != nil {
		t.Skipf("cannot listen on 127.0.250.11: %v", err)
	}
	echo := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.250.11", itoa(port)))
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		_, err = c.Read(buf)
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("got %v through a healthy proxy, want the echo", err)
	}
	f.block(0, 2) // another pair: must not matter
	if err := echo(); err != nil {
		t.Fatalf("got %v with only link 0-2 cut, want the echo", err)
	}
	f.block(0, 1)
	if err := echo(); err == nil {
		t.Fatal("got an echo across the cut link 0-1, want a stall")
	}
	f.heal()
	if err := echo(); err != nil {
		t.Fatalf("got %v after heal, want the echo", err)
	}
	f.mu.Lock()
	unknown := f.unknownN
	f.mu.Unlock()
	if unknown != 0 {
		t.Errorf("got %d connections with an unidentified sender, want 0", unknown)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
