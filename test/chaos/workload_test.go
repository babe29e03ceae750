package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// opKind is what a client did.
type opKind int

const (
	opAppend opKind = iota
	opGet           // local read: not linearizable
	opLinGet        // ReadBarrier, then read
)

func (k opKind) String() string { return [...]string{"append", "get", "linget"}[k] }

// outcome of an operation as the client saw it.
type outcome int

const (
	outOK      outcome = iota
	outFailed          // certainly had no effect
	outUnknown         // may or may not have taken effect
)

// histOp is one operation of the history. Times are nanoseconds since the
// history began.
type histOp struct {
	Client  int // porcupine client id (a new one after an unknown outcome)
	Kind    opKind
	Key     string
	Val     string
	Node    int
	Call    int64
	Ret     int64
	Out     outcome
	ErrKind string
	ErrMsg  string
	Values  []string // reads
}

// history is a concurrent recorder of operations.
type history struct {
	start time.Time
	mu    sync.Mutex // guards ops, nextID
	ops   []histOp
	next  int // next porcupine client id
}

func newHistory() *history { return &history{start: time.Now()} }

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(op histOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) clientID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	return h.next - 1
}

func (h *history) snapshot() []histOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]histOp(nil), h.ops...)
}

// kvClient talks to the nodes' KV API.
type kvClient struct {
	c     *cluster
	h     *history
	httpc *http.Client
}

// errorBody is the node's JSON error.
type errorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// do runs one operation against node idx and records it.
func (k *kvClient) do(ctx context.Context, client int, kind opKind, idx int, key, val string) histOp {
	p := k.c.proc(idx)
	op := histOp{Client: client, Kind: kind, Key: key, Val: val, Node: idx}
	var method, path string
	switch kind {
	case opAppend:
		method, path = http.MethodPost, "/append?key="+url.QueryEscape(key)+"&val="+url.QueryEscape(val)
	case opGet:
		method, path = http.MethodGet, "/get?key="+url.QueryEscape(key)
	case opLinGet:
		method, path = http.MethodGet, "/get?key="+url.QueryEscape(key)+"&linearizable=1"
	}
	req, _ := http.NewRequestWithContext(ctx, method, p.kvURL(path), nil)
	op.Call = k.h.now()
	resp, err := k.httpc.Do(req)
	op.Ret = k.h.now()
	switch {
	case err != nil:
		op.Out, op.ErrKind, op.ErrMsg = outUnknown, "transport", err.Error()
		if refused(err) {
			op.Out, op.ErrKind = outFailed, "refused" // nothing was sent
		}
	default:
		func() {
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var body struct {
					Values []string `json:"values"`
				}
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					op.Out, op.ErrKind = outUnknown, "bad body"
					return
				}
				op.Out, op.Values = outOK, body.Values
				return
			}
			var eb errorBody
			_ = json.NewDecoder(resp.Body).Decode(&eb)
			op.ErrKind, op.ErrMsg = eb.Kind, eb.Error
			switch eb.Kind {
			case "no_leader", "apply_error", "not_running", "removed", "bad_request":
				op.Out = outFailed
			default:
				op.Out = outUnknown
			}
		}()
	}
	k.h.add(op)
	return op
}

func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, syscall.ECONNREFUSED)
}

// runClients runs n clients until ctx ends: appends of unique values (half
// of the operations), plain reads and linearizable reads, each against a
// random current member. It returns when all clients have stopped.
func (k *kvClient) runClients(ctx context.Context, n int, seed int64, tag string, keys []string) {
	var wg sync.WaitGroup
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(c)))
			id := k.h.clientID()
			for seq := 0; ctx.Err() == nil; seq++ {
				key := keys[rng.Intn(len(keys))]
				members := k.c.memberIdx()
				idx := members[rng.Intn(len(members))]
				kind := opAppend
				switch r := rng.Intn(4); r {
				case 2:
					kind = opGet
				case 3:
					kind = opLinGet
				}
				val := ""
				if kind == opAppend {
					val = fmt.Sprintf("%s.%d.%d", tag, c, seq)
				}
				// Operations are not cut short by ctx: a request in flight
				// when the run ends still gets its answer (or times out).
				opCtx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
				op := k.do(opCtx, id, kind, idx, key, val)
				cancel()
				if op.Out == outUnknown {
					id = k.h.clientID()
				}
				if op.Out != outOK {
					time.Sleep(time.Duration(rng.Intn(20)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}
