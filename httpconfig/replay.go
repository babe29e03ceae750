package httpconfig

import (
	"container/heap"
	"fmt"
	"math"
	"sync"
)

// DefaultReplayCacheSize is how many nonces the server remembers at most:
// 131072, about 13 MiB at the cap. A nonce is kept until its request's
// timestamp leaves the window (up to 2 × SignatureWindow after it is seen,
// for a timestamp ahead of the server's clock), so the cap is reached only
// by more than about 1000 signed requests a second, sustained.
const DefaultReplayCacheSize = 1 << 17

// replayCache remembers the nonces of accepted signed requests for as long
// as their timestamps are inside the window. At the cap it forgets the
// oldest nonce (by timestamp) and from then on refuses every request whose
// timestamp is not newer than the newest timestamp it forgot, so a
// forgotten nonce can never be replayed: under a flood of valid requests it
// turns away delayed ones rather than admit a replay.
type replayCache struct {
	max    int
	window int64 // milliseconds

	mu    sync.Mutex // guards seen, order, floor
	seen  map[string]struct{}
	order nonceHeap // the nonces in seen, oldest timestamp first
	floor int64     // timestamps <= floor are refused; math.MinInt64 until the cap is hit
}

func newReplayCache(max int, windowMillis int64) *replayCache {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	return &replayCache{max: max, window: windowMillis, seen: make(map[string]struct{}), floor: math.MinInt64}
}

// add records nonce, whose request has timestamp ts, at server time now
// (both unix milliseconds; ts within the window of now). It returns an error
// matching ErrUnauthorized if the nonce was seen or ts is at or below the
// floor.
func (c *replayCache) add(nonce string, ts, now int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.order) > 0 && now-c.order[0].ts > c.window {
		delete(c.seen, heap.Pop(&c.order).(stamped).nonce)
	}
	if _, dup := c.seen[nonce]; dup {
		return errReplayed
	}
	if ts > c.floor && len(c.seen) >= c.max {
		old := heap.Pop(&c.order).(stamped)
		delete(c.seen, old.nonce)
		c.floor = max(c.floor, old.ts)
	}
	if ts <= c.floor {
		return fmt.Errorf("%w: the request's timestamp is older than this node's replay cache still vouches for "+
			"(more than %d signed requests within the window); send it again with a fresh signature",
			ErrUnauthorized, c.max)
	}
	c.seen[nonce] = struct{}{}
	heap.Push(&c.order, stamped{ts: ts, nonce: nonce})
	return nil
}

// len returns the number of nonces remembered.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type stamped struct {
	ts    int64
	nonce string
}

// nonceHeap is a min-heap of stamped nonces by timestamp (container/heap).
type nonceHeap []stamped

func (h nonceHeap) Len() int           { return len(h) }
func (h nonceHeap) Less(i, j int) bool { return h[i].ts < h[j].ts }
func (h nonceHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nonceHeap) Push(x any)        { *h = append(*h, x.(stamped)) }
func (h *nonceHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = stamped{}
	*h = old[:len(old)-1]
	return x
}
