package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/canoe-raft/canoe/httpconfig"
)

// memberFault runs one membership fault: a fresh node joins the running
// cluster by URL through the proxy (-join http://<member's API>), and a
// member is removed with DELETE /peers sent to a member's canoe HTTP API.
// canoe's documented behaviour is checked on the way: the new node becomes
// a voter, and a removed node stops itself and answers
// ErrorRemovedFromCluster.
type memberFault struct {
	c       *cluster
	kv      *kvClient
	logf    func(format string, args ...any)
	problem func(format string, args ...any)
	notes   []string // for the report
}

// Bounds of the membership steps.
const (
	voterWithin   = 30 * time.Second // a joined node is a voter
	removeWithin  = 20 * time.Second // DELETE /peers succeeds, retries included
	stoppedWithin = 10 * time.Second // a removed node reports it has stopped
)

func (m *memberFault) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.notes = append(m.notes, msg)
	m.logf("membership: %s", msg)
}

// extra: a fresh node joins, becomes a voter, serves the workload for
// s.dur and is removed again.
func (m *memberFault) extra(s step) {
	p, ok := m.add(s.other)
	if !ok {
		return
	}
	time.Sleep(s.dur)
	m.remove(p, s.via)
}

// replace: original member target leaves, the cluster runs one short for
// s.dur, then a fresh node (new data dir, new ID) joins in its place.
func (m *memberFault) replace(s step, target int) {
	if !m.remove(m.c.proc(target), s.via) {
		return
	}
	time.Sleep(s.dur)
	m.add(s.other)
}

// add starts a fresh node that joins through member joinPos and waits until
// it is a voter; from then on it is a member (a workload target). It
// reports whether the node became a voter (it is made a member either way,
// so that the final checks cover it).
func (m *memberFault) add(joinPos int) (*proc, bool) {
	members := m.c.memberProcs()
	via := members[joinPos%len(members)]
	p, err := m.c.newProc(via.joinURL())
	if err != nil {
		m.problem("membership: new node: %v", err)
		return nil, false
	}
	began := time.Now()
	if err := m.c.startProc(p); err != nil {
		m.problem("membership: start node %d: %v", p.idx, err)
		return nil, false
	}
	var last string
	voter := waitFor(voterWithin, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := m.c.api.Status(ctx, p.apiURL())
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("state %s, leader %d, members %s", st.State, st.LeaderID, describeMembers(st.Members))
		return st.LeaderID != 0 && slices.ContainsFunc(st.Members, func(mb httpconfig.Peer) bool {
			return mb.ID == p.id && mb.Suffrage == httpconfig.Voter
		})
	})
	m.c.setMember(p.idx, true)
	if !voter {
		m.problem("membership: node %d (id %d), joining via node %d, is not a voter %v after its start: %s", p.idx, p.id, via.idx, voterWithin, last)
		return p, false
	}
	m.note("node %d (id %d) joined via node %d and is a voter after %v", p.idx, p.id, via.idx, time.Since(began).Round(time.Millisecond))
	return p, true
}

// remove sends DELETE /peers {"id": p.id} to member viaPos (it may be p
// itself), then checks that p stops serving. It reports whether the
// removal succeeded.
func (m *memberFault) remove(p *proc, viaPos int) bool {
	members := m.c.memberProcs()
	via := members[viaPos%len(members)]
	began := time.Now()
	attempts, err := m.removePeer(via, p)
	if err != nil {
		m.problem("membership: DELETE /peers {id: %d} (node %d) at node %d: %v", p.id, p.idx, via.idx, err)
		return false
	}
	m.c.setMember(p.idx, false)
	m.c.mu.Lock()
	m.c.removed = append(m.c.removed, p.idx)
	m.c.mu.Unlock()
	m.note("node %d (id %d) removed by DELETE /peers at node %d in %v (%s)", p.idx, p.id, via.idx, time.Since(began).Round(time.Millisecond), attempts)
	m.checkStopped(p, began)
	return true
}

// removePeer calls RemovePeer at via until it succeeds, retrying on
// ErrNoLeader and ErrNotLeader, and on answers that leave the outcome open
// (timeouts, 5xx, transport errors), for at most removeWithin. After an
// open outcome, ErrPeerNotFound means an earlier attempt took effect. The
// removed node itself answers ErrRemoved once its removal has committed
// (canoe: ErrorRemovedFromCluster). It returns the attempts made.
func (m *memberFault) removePeer(via, p *proc) (string, error) {
	deadline := time.Now().Add(removeWithin)
	open := false
	var tries []string
	summary := func() string {
		if len(tries) == 0 {
			return "first attempt"
		}
		return fmt.Sprintf("%d attempts; earlier: %s", len(tries)+1, strings.Join(tries, "; "))
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := m.c.api.RemovePeer(ctx, via.apiURL(), p.id)
		cancel()
		var se *httpconfig.StatusError
		switch {
		case err == nil:
			return summary(), nil
		case errors.Is(err, httpconfig.ErrRemoved) && via == p:
			return summary() + "; the removed node answered ErrRemoved", nil
		case errors.Is(err, httpconfig.ErrPeerNotFound) && open:
			return summary() + "; then peer not found: an earlier attempt took effect", nil
		case errors.Is(err, httpconfig.ErrNoLeader), errors.Is(err, httpconfig.ErrNotLeader):
		case errors.Is(err, context.DeadlineExceeded), !errors.As(err, &se), se.Code >= 500:
			open = true
		default:
			return summary(), err
		}
		tries = append(tries, err.Error())
		if time.Now().After(deadline) {
			return summary(), fmt.Errorf("no success within %v (%s)", removeWithin, summary())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkStopped checks what canoe documents for a removed node: it stops
// itself (Status reports state Shutdown, its canoe HTTP API is closed) and
// answers ErrorRemovedFromCluster (kind "removed" in the node's KV API)
// for proposals and linearizable reads. The node process itself keeps
// running (test/chaos/node exits only on a signal). The append is recorded
// in the history as certainly failed, so the final state must not show it.
func (m *memberFault) checkStopped(p *proc, removedAt time.Time) {
	var st nodeStatus
	var stErr error
	stopped := waitFor(stoppedWithin, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, stErr = m.c.status(ctx, p)
		return stErr == nil && st.State == "shutdown"
	})
	if !stopped {
		m.problem("membership: removed node %d (id %d) has not stopped %v after DELETE /peers: state %s, leader %d, term %d, %d members (status error: %v)",
			p.idx, p.id, stoppedWithin, st.State, st.LeaderID, st.Term, st.Members, stErr)
		return
	}
	took := time.Since(removedAt).Round(time.Millisecond)
	var answers []string
	for _, kind := range []opKind{opAppend, opLinGet} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		op := m.kv.do(ctx, m.kv.h.clientID(), kind, p.idx, "a", fmt.Sprintf("removed.%d", p.idx))
		cancel()
		if op.Out == outOK || op.ErrKind != "removed" {
			m.problem("membership: %s at removed node %d (id %d) got %s %q, want ErrorRemovedFromCluster", kind, p.idx, p.id, okOr(op), op.ErrMsg)
		}
		answers = append(answers, fmt.Sprintf("%s: %s", kind, okOr(op)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := m.c.api.Status(ctx, p.apiURL())
	cancel()
	if err == nil {
		m.problem("membership: removed node %d (id %d) still serves canoe's HTTP API", p.idx, p.id)
	}
	m.note("removed node %d stopped within %v of the DELETE; it answers %s; its canoe API: %v", p.idx, took, strings.Join(answers, ", "), errShort(err))
}

// finalCheck, at the end of the schedule, checks that removed node p is
// still stopped (nothing brought it back) and that its process exits
// cleanly on SIGTERM.
func (m *memberFault) finalCheck(p *proc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	st, err := m.c.status(ctx, p)
	cancel()
	if err != nil || st.State != "shutdown" {
		m.problem("membership: removed node %d (id %d) at the end: state %q, status error %v; want it stopped", p.idx, p.id, st.State, err)
	}
	if err := m.c.kill(p, syscall.SIGTERM); err != nil {
		m.problem("membership: removed node %d: %v", p.idx, err)
	}
}

// memberViews asks every member in ps for its canoe /status and returns,
// per member, "" if its configuration holds exactly ps, the read replicas
// as read replicas (non-voters marked nonvoter) and all others as voters,
// else what it holds.
func (c *cluster) memberViews(ps []*proc) []string {
	want := make([]uint64, len(ps))
	replica := make(map[uint64]bool)
	for i, p := range ps {
		want[i] = p.id
		replica[p.id] = p.nonVoter
	}
	slices.Sort(want)
	out := make([]string, len(ps))
	for i, p := range ps {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.api.Status(ctx, p.apiURL())
		cancel()
		if err != nil {
			out[i] = "canoe /status: " + err.Error()
			continue
		}
		var got []uint64
		suffrage := true
		for _, mb := range st.Members {
			got = append(got, mb.ID)
			if replica[mb.ID] {
				suffrage = suffrage && mb.Suffrage == httpconfig.Nonvoter && mb.NonVoter
			} else {
				suffrage = suffrage && mb.Suffrage == httpconfig.Voter && !mb.NonVoter
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || !suffrage {
			out[i] = fmt.Sprintf("configuration holds %s, want exactly %v, all voters but the read replicas", describeMembers(st.Members), want)
		}
	}
	return out
}

// removedProcs returns the nodes removed by membership faults.
func (c *cluster) removedProcs() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*proc, len(c.removed))
	for i, idx := range c.removed {
		out[i] = c.nodes[idx]
	}
	return out
}

func describeMembers(ms []httpconfig.Peer) string {
	parts := make([]string, len(ms))
	for i, mb := range ms {
		parts[i] = fmt.Sprintf("%d:%s", mb.ID, mb.Suffrage)
		if mb.NonVoter {
			parts[i] += "(replica)"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func okOr(op histOp) string {
	if op.Out == outOK {
		return "ok"
	}
	return op.ErrKind
}

func errShort(err error) string {
	if err == nil {
		return "answers"
	}
	if strings.Contains(err.Error(), "connection refused") {
		return "connection refused"
	}
	return err.Error()
}
