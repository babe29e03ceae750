package canoe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// join asks the members in BootstrapPeers, in turn, to add this node, until
// one accepts or InitBackoff.MaxElapsedTime passes. A dead or refusing peer
// only moves the attempt on to the next one.
func (n *Node) join(rt *runtime) error {
	b := n.cfg.InitBackoff
	ctx, cancel := context.WithTimeout(rt.ctx, b.MaxElapsedTime)
	defer cancel()
	self := rt.self
	wait := b.InitialInterval
	var errs []string
	for attempt := 1; ; attempt++ {
		for _, peer := range n.cfg.BootstrapPeers {
			reqCtx, cancelReq := context.WithTimeout(ctx, max(n.cfg.Timing.ElectionTimeout*4, 2*time.Second))
			_, err := n.client.AddPeer(reqCtx, strings.TrimSuffix(peer, "/"), toHTTPPeer(self))
			cancelReq()
			if err == nil {
				n.logger.Info("joined the cluster", "via", peer, "attempt", attempt)
				return nil
			}
			n.logger.Warn("join attempt failed", "via", peer, "error", err)
			errs = append(errs, fmt.Sprintf("%s: %v", peer, err))
			if len(errs) > 2*len(n.cfg.BootstrapPeers) {
				errs = errs[1:]
			}
		}
		d := jitter(wait, b.RandomizationFactor)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			if errors.Is(rt.ctx.Err(), context.Canceled) {
				return ErrNotRunning
			}
			return fmt.Errorf("canoe: could not join the cluster within %v; last errors: %s", b.MaxElapsedTime, strings.Join(errs, "; "))
		}
		wait = min(time.Duration(float64(wait)*b.Multiplier), b.MaxInterval)
	}
}

// jitter randomizes d by +-factor.
func jitter(d time.Duration, factor float64) time.Duration {
	if factor <= 0 || d <= 0 {
		return d
	}
	delta := factor * float64(d)
	return time.Duration(float64(d) - delta + rand.Float64()*2*delta)
}

// awaitGossipAdmission waits until the leader, which learns of this node by
// gossip, has added it, or InitBackoff.MaxElapsedTime passes.
func (n *Node) awaitGossipAdmission(rt *runtime) error {
	ctx, cancel := context.WithTimeout(rt.ctx, n.cfg.InitBackoff.MaxElapsedTime)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.checkRemoved(rt); n.wasMember.Load() {
			n.logger.Info("joined the cluster through gossip")
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(rt.ctx.Err(), context.Canceled) {
				return ErrNotRunning
			}
			if err := rt.gossip.lastJoinErr(); err != nil {
				return fmt.Errorf("canoe: not added to a cluster within %v: gossip join failed: %w", n.cfg.InitBackoff.MaxElapsedTime, err)
			}
			return fmt.Errorf("canoe: not added to a cluster within %v: the gossip pool answered but no leader added this node (is a leader up, with the same ClusterID?)", n.cfg.InitBackoff.MaxElapsedTime)
		}
	}
}
