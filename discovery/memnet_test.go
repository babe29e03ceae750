package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNetwork is an in-memory network for memberlist, built around
// memberlist.MockNetwork. The stock MockTransport is not used for routing
// because:
//   - its sends block on unbuffered channels: once the receiving memberlist
//     is shut down nothing reads them, so the sender's goroutine leaks
//     forever (and stays blocked, so the sender cannot even detect the
//     failure); two nodes pinging each other can also deadlock, since
//     memberlist answers pings on the goroutine that reads packets;
//   - its address maps are not synchronized, so adding a node while others
//     gossip is a data race.
//
// memTransport therefore keeps MockTransport only for address allocation
// (FinalAdvertiseAddr) and routes itself: packets go into a buffered channel
// and are dropped when it is full or the receiver is shut down (UDP
// semantics); a dial to a shut-down transport is refused. Nothing ever
// blocks after Shutdown, so nothing leaks.
type memNetwork struct {
	mu     sync.Mutex // guards mock, byAddr, byName
	mock   memberlist.MockNetwork
	byAddr map[string]*memTransport
	byName map[string]*memTransport
}

// newTransport returns a transport for the node called name.
func (n *memNetwork) newTransport(name string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	mock := n.mock.NewTransport(name)
	ip, port, err := mock.FinalAdvertiseAddr("", 0)
	if err != nil {
		panic(err) // MockNetwork always hands out 127.0.0.1:<n>
	}
	t := &memTransport{
		net:      n,
		mock:     mock,
		addr:     memAddr(net.JoinHostPort(ip.String(), fmt.Sprint(port))),
		packetCh: make(chan *memberlist.Packet, 1024),
		streamCh: make(chan net.Conn, 64),
		done:     make(chan struct{}),
	}
	if n.byAddr == nil {
		n.byAddr = make(map[string]*memTransport)
		n.byName = make(map[string]*memTransport)
	}
	n.byAddr[string(t.addr)] = t
	n.byName[name] = t
	return t
}

func (n *memNetwork) peer(a memberlist.Address) (*memTransport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var t *memTransport
	if a.Name != "" {
		t = n.byName[a.Name]
	} else {
		t = n.byAddr[a.Addr]
	}
	if t == nil {
		return nil, fmt.Errorf("no route to %s", a)
	}
	return t, nil
}

type memAddr string

func (a memAddr) Network() string { return "mock" }
func (a memAddr) String() string  { return string(a) }

type memTransport struct {
	net      *memNetwork
	mock     *memberlist.MockTransport // address allocation only
	addr     memAddr
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	once     sync.Once
	done     chan struct{} // closed by Shutdown
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

func (t *memTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.mock.FinalAdvertiseAddr(ip, port)
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	dest, err := t.net.peer(a)
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	dest.deliver(&memberlist.Packet{Buf: bytes.Clone(b), From: t.addr, Timestamp: now})
	return now, nil
}

// deliver queues p unless t is shut down or its buffer is full (dropped,
// like a UDP datagram).
func (t *memTransport) deliver(p *memberlist.Packet) {
	select {
	case <-t.done:
		return
	default:
	}
	select {
	case t.packetCh <- p:
	default:
	}
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *memTransport) IngestPacket(conn net.Conn, addr net.Addr, now time.Time, shouldClose bool) error {
	if shouldClose {
		defer conn.Close()
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, conn); err != nil {
		return fmt.Errorf("failed to read packet: %v", err)
	}
	if buf.Len() < 1 {
		return fmt.Errorf("packet too short (%d bytes) %s", buf.Len(), memberlist.LogAddress(addr))
	}
	t.deliver(&memberlist.Packet{Buf: buf.Bytes(), From: addr, Timestamp: now})
	return nil
}

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

var errRefused = errors.New("connection refused")

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dest, err := t.net.peer(a)
	if err != nil {
		return nil, err
	}
	p1, p2 := net.Pipe()
	if err := dest.accept(p1, timeout); err != nil {
		p1.Close()
		p2.Close()
		return nil, fmt.Errorf("dial %s: %w", a, err)
	}
	return p2, nil
}

// accept hands an incoming stream to t's memberlist unless t is shut down.
func (t *memTransport) accept(c net.Conn, timeout time.Duration) error {
	select {
	case <-t.done:
		return errRefused
	default:
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case t.streamCh <- c:
		return nil
	case <-t.done:
		return errRefused
	case <-timer.C:
		return errors.New("i/o timeout")
	}
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *memTransport) IngestStream(conn net.Conn) error {
	return t.accept(conn, time.Second)
}

// Shutdown refuses all further traffic to t. Streams queued but not yet
// taken by memberlist are closed.
func (t *memTransport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		for {
			select {
			case c := <-t.streamCh:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}
