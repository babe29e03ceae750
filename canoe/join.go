package canoe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/canoe-raft/canoe/httpconfig"
)

// errJoinTimeout is the cause of a join's context when
// InitBackoff.MaxElapsedTime has passed.
var errJoinTimeout = errors.New("canoe: InitBackoff.MaxElapsedTime passed")

// maxQuote bounds how much of a member's answer a join error quotes.
const maxQuote = 200

// join asks the members at the API URLs of BootstrapPeers, in turn, to add
// this node, until one accepts, InitBackoff.MaxElapsedTime passes or ctx
// ends. A member that is down, has no leader or is busy is asked again
// later; one whose answer cannot change by asking again (see joinRefusal)
// is not, and once every member has answered so, join fails at once.
func (n *Node) join(ctx context.Context, rt *run) error {
	b := *n.cfg.InitBackoff
	ctx, cancel := context.WithTimeoutCause(ctx, b.MaxElapsedTime, errJoinTimeout)
	defer cancel()
	self := toHTTPPeer(rt.self)
	self.ClusterID = n.cfg.ClusterID
	self.NonVoter = n.cfg.NonVoter
	peers := n.cfg.bootstrapURLs()
	refused := make(map[string]error, len(peers))
	var failed []string // the failures of the latest round
	attempt := 0
	err := retry(ctx, b, func() error {
		attempt++
		failed = failed[:0]
		for _, peer := range peers {
			if refused[peer] != nil {
				continue
			}
			reqCtx, cancelReq := context.WithTimeout(ctx, max(n.cfg.Timing.ElectionTimeout*4, 2*time.Second))
			resp, err := n.client.AddPeer(reqCtx, peer, self)
			cancelReq()
			if err == nil && resp.ID == 0 {
				err = fmt.Errorf("%w: the answer to POST %s names no member", httpconfig.ErrUnexpectedAnswer, httpconfig.PathPeers)
			}
			if err == nil {
				n.logger.Info("joined the cluster", "via", peer, "attempt", attempt)
				return nil
			}
			if why := joinRefusal(peer, err); why != nil {
				n.logger.Error("cannot join through this member; not asking it again", "via", peer, "error", why)
				refused[peer] = why
				continue
			}
			n.logger.Warn("join attempt failed", "via", peer, "error", err)
			failed = append(failed, fmt.Sprintf("%s: %v", peer, err))
		}
		var why []error
		for _, peer := range peers {
			if err := refused[peer]; err != nil {
				why = append(why, err)
			}
		}
		if len(why) == len(peers) {
			return permanent(errors.Join(why...))
		}
		for _, err := range why {
			failed = append(failed, err.Error())
		}
		return errors.New(strings.Join(failed, "; "))
	})
	switch {
	case err == nil:
		return nil
	case isPermanent(err):
		return fmt.Errorf("canoe: cannot join the cluster: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	case errors.Is(context.Cause(ctx), errJoinTimeout):
		return fmt.Errorf("canoe: could not join the cluster within %v; last errors: %v", b.MaxElapsedTime, err)
	}
	return fmt.Errorf("%w (last errors: %v)", context.Cause(ctx), err)
}

// joinRefusal says why err, the outcome of asking the member at peer to add
// this node, cannot change by asking again: a wrong ClusterSecret, another
// cluster, a server that is not a canoe API, a TLS mismatch. It returns nil
// when asking again may help: the member is down, unreachable, busy, has no
// leader, or failed.
func joinRefusal(peer string, err error) error {
	var se *httpconfig.StatusError
	var cve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &se):
		return statusRefusal(peer, se)
	case errors.Is(err, httpconfig.ErrUnexpectedAnswer):
		return fmt.Errorf("%s gave an answer canoe cannot read (is it a member's ConfigurationPort?): %v", peer, err)
	case errors.As(err, &cve):
		return fmt.Errorf("%s: the member's TLS certificate is not trusted (check TLSConfig): %v", peer, err)
	case errors.Is(err, http.ErrSchemeMismatch):
		return fmt.Errorf("%s answered plain HTTP to HTTPS (use an http:// URL, or TLSConfig on every node)", peer)
	}
	return nil
}

// statusRefusal is joinRefusal for a non-2xx answer.
func statusRefusal(peer string, se *httpconfig.StatusError) error {
	body := quote(se.Message)
	if se.Foreign {
		body = fmt.Sprintf("%q", body)
	}
	answered := fmt.Sprintf("%d %s: %s", se.Code, http.StatusText(se.Code), body)
	switch code := se.Code; {
	case code == http.StatusUnauthorized && !se.Foreign:
		return fmt.Errorf("%s refused this node's credentials (%s): is ClusterSecret the same on every node?", peer, answered)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests,
		code == http.StatusMisdirectedRequest, code >= 500 && code != http.StatusNotImplemented:
		// Busy, no leader, failed, or down behind a proxy: ask again.
		return nil
	case se.Foreign, code == http.StatusNotImplemented:
		return fmt.Errorf("%s is not a canoe API (is it a member's ConfigurationPort?): it answered %s", peer, answered)
	}
	return fmt.Errorf("%s refused this node (%s)", peer, answered)
}

// quote returns s cut to maxQuote bytes, "..." marking a cut.
func quote(s string) string {
	if len(s) <= maxQuote {
		return s
	}
	return strings.ToValidUTF8(s[:maxQuote], "") + "..."
}

// awaitGossipAdmission waits until the leader, which learns of this node by
// gossip, has added it, or the gossip join fails for good (see joinGossip),
// or InitBackoff.MaxElapsedTime passes, or ctx ends.
func (n *Node) awaitGossipAdmission(ctx context.Context, rt *run) error {
	limit := n.cfg.InitBackoff.MaxElapsedTime
	ctx, cancel := context.WithTimeoutCause(ctx, limit, errJoinTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.checkRemoved(rt); n.wasMember.Load() {
			n.logger.Info("joined the cluster through gossip")
			return nil
		}
		if err := rt.gossip.lastJoinErr(); isPermanent(err) {
			return fmt.Errorf("canoe: cannot join the cluster: gossip join refused: %w", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if !errors.Is(context.Cause(ctx), errJoinTimeout) {
				return context.Cause(ctx)
			}
			if err := rt.gossip.lastJoinErr(); err != nil {
				return fmt.Errorf("canoe: not added to a cluster within %v: gossip join failed: %w", limit, err)
			}
			return fmt.Errorf("canoe: not added to a cluster within %v: the gossip pool answered but no leader added this node (is a leader up, with the same ClusterID?)", limit)
		}
	}
}
