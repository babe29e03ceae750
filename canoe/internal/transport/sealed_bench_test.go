package transport

import (
	"net"
	"testing"
)

// BenchmarkSealedRoundTrip measures a 200-byte message sealed, sent, opened
// and echoed back over an in-memory pipe: the per-message cost a ClusterSecret
// adds to raft's traffic, without the network.
func BenchmarkSealedRoundTrip(b *testing.B) {
	a, c := net.Pipe()
	key := make([]byte, 32)
	client := newSealedConn(a, session{send: key, recv: key})
	server := newSealedConn(c, session{send: key, recv: key})
	done := make(chan struct{})
	go func() { // the echo side
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := server.Read(buf)
			if err != nil {
				return
			}
			if _, err := server.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	defer func() {
		a.Close()
		<-done
	}()
	msg, reply := make([]byte, 200), make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Write(msg); err != nil {
			b.Fatal(err)
		}
		if n, err := client.Read(reply); err != nil || n != len(msg) {
			b.Fatalf("read %d bytes, %v", n, err)
		}
	}
}
