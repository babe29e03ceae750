package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// faultNet is the userspace network between the nodes. Node i binds every
// canoe listener on 127.0.0.1 and advertises its own loopback address
// adv(i) (127.0.0.x), where faultNet listens on the same ports and forwards
// to 127.0.0.1: raft (with the forward channel on which followers send
// proposals and read-index requests), the canoe HTTP API (joins,
// membership changes) and gossip (TCP and UDP) all pass through it.
//
// Every TCP connection arrives from 127.0.0.1, so the proxy finds the
// sending node by looking the connection's source port up in
// /proc/net/tcp and the nodes' open file descriptors. UDP gossip leaves
// each node from its gossip port, which names the sender directly.
//
// Faults: a blocked pair forwards nothing either way (connections stall,
// datagrams vanish) and the stalled connections are reset when the pair
// heals; delay sleeps a random time before forwarding each chunk; loss
// resets a connection (or drops a datagram) at random.
type faultNet struct {
	mu       sync.Mutex // guards everything below
	rng      *rand.Rand
	blocked  map[[2]int]bool // unordered pairs {lo, hi}
	delayMax time.Duration
	loss     float64                 // per chunk or datagram
	changed  chan struct{}           // closed and replaced on every rule change
	conns    map[*proxyConn]struct{} // live forwarded connections
	pids     map[int]int             // node index by pid of its live process
	gossip   map[int]int             // node index by gossip port
	udp      map[int]*net.UDPConn    // node index -> its UDP proxy socket
	closers  []io.Closer             // listeners and sockets
	wg       sync.WaitGroup          // every goroutine
	closed   bool
	stats    map[string]int // counters for the report
	unknownN int            // connections whose sender was not found
}

func newFaultNet(seed int64) *faultNet {
	return &faultNet{
		rng:     rand.New(rand.NewSource(seed)),
		blocked: map[[2]int]bool{},
		changed: make(chan struct{}),
		conns:   map[*proxyConn]struct{}{},
		pids:    map[int]int{},
		gossip:  map[int]int{},
		udp:     map[int]*net.UDPConn{},
		stats:   map[string]int{},
	}
}

func pairKey(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

// notifyLocked wakes every connection waiting on the rules.
func (f *faultNet) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// block cuts the links between a and every node of others.
func (f *faultNet) block(a int, others ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range others {
		if b != a {
			f.blocked[pairKey(a, b)] = true
		}
	}
	f.notifyLocked()
}

// setFlaky sets the random delay and loss; zero values turn them off.
func (f *faultNet) setFlaky(delayMax time.Duration, loss float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delayMax, f.loss = delayMax, loss
	f.notifyLocked()
}

// heal removes every fault.
func (f *faultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.blocked)
	f.delayMax, f.loss = 0, 0
	f.notifyLocked()
}

// setPID records (pid > 0) or forgets (pid == 0) node idx's process.
func (f *faultNet) setPID(idx, pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, i := range f.pids {
		if i == idx {
			delete(f.pids, p)
		}
	}
	if pid > 0 {
		f.pids[pid] = idx
	}
}

func (f *faultNet) count(what string) {
	f.mu.Lock()
	f.stats[what]++
	f.mu.Unlock()
}

// addNode starts node idx's proxies: TCP on adv:port for each port, and
// UDP on adv:gossipPort, each forwarding to 127.0.0.1:port.
func (f *faultNet) addNode(idx int, adv string, gossipPort int, tcpPorts ...int) error {
	for _, p := range append(tcpPorts, gossipPort) {
		ln, err := net.Listen("tcp", net.JoinHostPort(adv, strconv.Itoa(p)))
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.closers = append(f.closers, ln)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.acceptLoop(idx, ln, p) }()
	}
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(adv), Port: gossipPort})
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.closers = append(f.closers, uc)
	f.udp[idx] = uc
	f.gossip[gossipPort] = idx
	f.mu.Unlock()
	f.wg.Add(1)
	go func() { defer f.wg.Done(); f.udpLoop(idx, uc, gossipPort) }()
	return nil
}

// close stops every proxy and connection and waits for their goroutines.
func (f *faultNet) close() {
	f.mu.Lock()
	f.closed = true
	closers := f.closers
	for c := range f.conns {
		c.kill()
	}
	f.notifyLocked()
	f.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}
	f.wg.Wait()
}

func (f *faultNet) acceptLoop(dst int, ln net.Listener, port int) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		src := f.sourceNode(c.RemoteAddr().(*net.TCPAddr).Port, port)
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.forward(src, dst, c, port) }()
	}
}

// proxyConn is one forwarded connection, src -> dst (src -1: unknown).
type proxyConn struct {
	src, dst int
	a, b     net.Conn
	once     sync.Once
	dead     chan struct{}
}

func (p *proxyConn) kill() {
	p.once.Do(func() {
		close(p.dead)
		p.a.Close()
		if p.b != nil {
			p.b.Close()
		}
	})
}

func (f *faultNet) forward(src, dst int, in net.Conn, port int) {
	p := &proxyConn{src: src, dst: dst, a: in, dead: make(chan struct{})}
	out, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		in.Close() // the node is down: refuse like it would
		return
	}
	p.b = out
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		p.kill()
		return
	}
	f.conns[p] = struct{}{}
	f.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.pipe(p, in, out) }()
	go func() { defer wg.Done(); f.pipe(p, out, in) }()
	wg.Wait()
	f.mu.Lock()
	delete(f.conns, p)
	f.mu.Unlock()
}

func (f *faultNet) pipe(p *proxyConn, from, to net.Conn) {
	defer p.kill()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if !f.pass(p) {
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pass applies the rules to one chunk of p: it waits while p's pair is
// blocked (and then resets p), delays, or resets p at random. It reports
// whether to forward the chunk.
func (f *faultNet) pass(p *proxyConn) bool {
	stalled := false
	for {
		f.mu.Lock()
		blocked := f.isBlockedLocked(p.src, p.dst)
		changed := f.changed
		delayMax, loss := f.delayMax, f.loss
		var delay time.Duration
		lose := false
		if !blocked {
			if delayMax > 0 {
				delay = time.Duration(f.rng.Int63n(int64(delayMax)))
			}
			lose = loss > 0 && f.rng.Float64() < loss
		}
		if blocked && !stalled {
			f.stats["stalled_conns"]++
		}
		f.mu.Unlock()
		if blocked {
			stalled = true
			select {
			case <-changed:
				continue
			case <-p.dead:
				return false
			}
		}
		if stalled || lose {
			if lose {
				f.count("reset_conns")
			}
			p.kill()
			return false
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-p.dead:
				return false
			}
		}
		return true
	}
}

// isBlockedLocked reports whether traffic from src to dst is cut. A sender
// that could not be identified is cut whenever dst is cut from anyone.
func (f *faultNet) isBlockedLocked(src, dst int) bool {
	if src >= 0 {
		return f.blocked[pairKey(src, dst)]
	}
	for k := range f.blocked {
		if k[0] == dst || k[1] == dst {
			return true
		}
	}
	return false
}

func (f *faultNet) udpLoop(dst int, uc *net.UDPConn, port int) {
	target := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := uc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		f.mu.Lock()
		src, ok := f.gossip[from.Port]
		var via *net.UDPConn
		drop := !ok || f.isBlockedLocked(src, dst) || f.loss > 0 && f.rng.Float64() < f.loss
		var delay time.Duration
		if !drop {
			via = f.udp[src]
			if f.delayMax > 0 {
				delay = time.Duration(f.rng.Int63n(int64(f.delayMax)))
			}
		} else {
			f.stats["dropped_datagrams"]++
		}
		f.mu.Unlock()
		if drop {
			continue
		}
		// Sent from the sender's own proxy socket, so the receiver sees the
		// sender's advertised address.
		pkt := append([]byte(nil), buf[:n]...)
		if delay == 0 {
			_, _ = via.WriteToUDP(pkt, target)
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			time.Sleep(delay)
			_, _ = via.WriteToUDP(pkt, target)
		}()
	}
}

// sourceNode finds which node's process holds the client end of a
// connection from 127.0.0.1:srcPort to a proxy listening on dstPort, or -1.
func (f *faultNet) sourceNode(srcPort, dstPort int) int {
	inode, err := socketInode(srcPort, dstPort)
	if err == nil {
		f.mu.Lock()
		pids := make(map[int]int, len(f.pids))
		for p, i := range f.pids {
			pids[p] = i
		}
		f.mu.Unlock()
		want := "socket:[" + inode + "]"
		for pid, idx := range pids {
			if processHolds(pid, want) {
				return idx
			}
		}
	}
	f.mu.Lock()
	f.unknownN++
	f.mu.Unlock()
	return -1
}

// socketInode returns the inode of the TCP socket bound to 127.0.0.1:local
// and connected to port remote, from /proc/net/tcp.
func socketInode(local, remote int) (string, error) {
	fh, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", err
	}
	defer fh.Close()
	wantLocal := fmt.Sprintf("0100007F:%04X", local)
	wantRemote := fmt.Sprintf(":%04X", remote)
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[1] != wantLocal || !strings.HasSuffix(fields[2], wantRemote) {
			continue
		}
		return fields[9], nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("socket not found")
}

func processHolds(pid int, link string) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == link {
			return true
		}
	}
	return false
}
