package discovery

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's Delegate, EventDelegate, AliveDelegate and
// MergeDelegate for a Discovery. memberlist calls these on its own goroutines,
// some while holding its node lock: they must never block and never call
// back into the Memberlist.
type delegate struct {
	d *Discovery
}

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
	_ memberlist.AliveDelegate = delegate{}
	_ memberlist.MergeDelegate = delegate{}
)

// NodeMeta returns the encoded local Meta (never above MaxMetaSize).
func (g delegate) NodeMeta(limit int) []byte {
	g.d.metaMu.Lock()
	defer g.d.metaMu.Unlock()
	if len(g.d.metaBytes) > limit {
		// Cannot happen: Encode caps at MaxMetaSize, which is the limit
		// memberlist passes. Returning nothing beats memberlist's panic.
		g.d.logger.Error("local metadata exceeds memberlist limit", "size", len(g.d.metaBytes), "limit", limit)
		return nil
	}
	return g.d.metaBytes
}

// NotifyMsg ignores user messages; this package sends none.
func (delegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to broadcast.
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState has no user state to exchange in push/pull.
func (delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState ignores remote user state.
func (delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin reports a member that appeared (or came back).
func (g delegate) NotifyJoin(n *memberlist.Node) {
	g.d.notify(EventJoin, n, Alive)
}

// NotifyUpdate reports a member whose metadata changed.
func (g delegate) NotifyUpdate(n *memberlist.Node) {
	g.d.notify(EventUpdate, n, Alive)
}

// NotifyLeave reports a member that left or failed. memberlist cannot tell
// which (the Node it passes always says StateAlive); the member's last
// metadata can: Leaving is set before a graceful leave.
func (g delegate) NotifyLeave(n *memberlist.Node) {
	m, err := DecodeMeta(n.Meta)
	if err == nil && m.Leaving {
		g.d.notify(EventLeave, n, Left)
		return
	}
	g.d.notify(EventFailed, n, Dead)
}

// NotifyAlive refuses peers of another cluster or with undecodable metadata,
// whether they arrive by gossip or push/pull.
func (g delegate) NotifyAlive(n *memberlist.Node) error {
	return g.d.checkPeer(n.Name, n.Meta)
}

// NotifyMerge refuses a join (either side of it) if any node the other side
// knows belongs to another cluster; Join then fails with the reason.
func (g delegate) NotifyMerge(peers []*memberlist.Node) error {
	var errs []error
	for _, n := range peers {
		if err := g.d.checkPeer(n.Name, n.Meta); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// notify records a change to peer n in d.members and queues an event about
// it; changes to the local node are not reported. memberlist holds its node
// lock while calling this, so n may be read here but not kept.
func (d *Discovery) notify(kind EventKind, n *memberlist.Node, state MemberState) {
	if n.Name == d.name {
		return
	}
	m, err := DecodeMeta(n.Meta)
	if err != nil {
		// NotifyAlive admits only decodable metadata; keep the event anyway.
		d.logger.Warn("member metadata does not decode", "member", n.Name, "error", err)
	}
	member := Member{Name: n.Name, Addr: n.Address(), Meta: m, State: state}
	d.membersMu.Lock()
	switch kind {
	case EventJoin, EventUpdate:
		d.members[n.Name] = member
	default:
		delete(d.members, n.Name)
	}
	d.membersMu.Unlock()
	d.events.push(Event{Kind: kind, Member: member, At: time.Now()})
}

// maxRejectLog bounds the memory used to avoid repeating the same warning.
const maxRejectLog = 256

// checkPeer accepts a peer only if its metadata decodes and names this
// node's cluster. A refusal is logged at WARN the first time for a given
// peer and reason, then at DEBUG (gossip repeats alive messages often).
func (d *Discovery) checkPeer(name string, raw []byte) error {
	m, err := DecodeMeta(raw)
	switch {
	case err != nil:
		err = fmt.Errorf("refusing peer %q: %w", name, err)
	case m.ClusterID != d.clusterID:
		err = fmt.Errorf("refusing peer %q (node %d): %w: it is in cluster %d, this node in cluster %d",
			name, m.ID, ErrClusterMismatch, m.ClusterID, d.clusterID)
	default:
		return nil
	}
	d.rejectMu.Lock()
	repeated := d.rejected[name] == err.Error()
	if !repeated {
		if len(d.rejected) >= maxRejectLog {
			clear(d.rejected)
		}
		d.rejected[name] = err.Error()
	}
	d.rejectMu.Unlock()
	if repeated {
		d.logger.Debug("refused peer", "error", err)
	} else {
		d.logger.Warn("refused peer", "error", err)
	}
	return err
}
