package canoe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/canoe/internal/transport"
	"github.com/canoe-raft/canoe/httpconfig"
	"github.com/canoe-raft/canoe/observer"
)

// httpShutdownGrace bounds how long Stop waits for HTTP requests in flight.
const httpShutdownGrace = 5 * time.Second

// listenHTTP opens the HTTP API's listener on ConfigurationPort.
func (n *Node) listenHTTP() (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(n.cfg.BindAddr, strconv.Itoa(n.cfg.ConfigurationPort)))
	if err != nil {
		return nil, fmt.Errorf("canoe: HTTP API listener: %w", err)
	}
	return ln, nil
}

// serveHTTP starts the HTTP API on ln; the run's WaitGroup owns it.
func (n *Node) serveHTTP(rt *run, ln net.Listener) {
	api := apiShim{n}
	rt.http = httpconfig.NewServer(httpconfig.Config{
		Membership: api,
		Promoter:   api,
		Status:     api,
		Snapshots:  api,
		Leadership: api,
		Metrics:    n.metrics.handler(),
		Secret:     n.cfg.ClusterSecret,
		ClusterID:  n.cfg.ClusterID,
		Logger:     n.logger.Named("http"),
		// The body is the backup, which RestoreBackup also checks against
		// MaxBackupBytes as it reads it.
		MaxSnapshotBytes: n.cfg.MaxBackupBytes,
	}, ln, n.cfg.TLSConfig)
	rt.wg.Go(func() {
		if err := rt.http.Serve(); err != nil {
			n.logger.Error("HTTP API stopped", "error", err)
		}
	})
}

func (n *Node) stopHTTP(rt *run) error {
	if rt.http == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownGrace)
	defer cancel()
	return rt.http.Shutdown(ctx)
}

// apiShim is the node as the HTTP API sees it.
type apiShim struct{ n *Node }

func (a apiShim) Self() httpconfig.Peer { return toHTTPPeer(a.n.Self()) }

func (a apiShim) Peers() []httpconfig.Peer {
	peers := a.n.Peers()
	out := make([]httpconfig.Peer, len(peers))
	for i, p := range peers {
		out[i] = toHTTPPeer(p)
	}
	return out
}

func (a apiShim) AddPeer(ctx context.Context, p httpconfig.Peer) error {
	if p.ClusterID != 0 && p.ClusterID != a.n.cfg.ClusterID {
		return fmt.Errorf("%w: the node to add belongs to ClusterID %d, this cluster is ClusterID %d",
			httpconfig.ErrConflict, p.ClusterID, a.n.cfg.ClusterID)
	}
	return toHTTPError(a.n.AddPeer(ctx, fromHTTPPeer(p)))
}

func (a apiShim) RemovePeer(ctx context.Context, id uint64) error {
	return toHTTPError(a.n.RemovePeer(ctx, id))
}

func (a apiShim) Promote(ctx context.Context, id uint64) error {
	return toHTTPError(a.n.Promote(ctx, id))
}

func (a apiShim) Status() httpconfig.Status {
	s := a.n.Status()
	out := httpconfig.Status{
		ID: s.ID, State: raftStateName(s.State), LeaderID: s.LeaderID, Term: s.Term,
		CommitIndex: s.CommitIndex, AppliedIndex: s.AppliedIndex, LastIndex: s.LastIndex,
		Members:          make([]httpconfig.Peer, len(s.Members)),
		CommittedMembers: s.CommittedMembers,
	}
	for i, p := range s.Members {
		out.Members[i] = toHTTPPeer(p)
		if d, ok := s.LastContact[p.ID]; ok {
			ms := d.Milliseconds()
			out.Members[i].LastContactMs = &ms
		}
	}
	return out
}

func (a apiShim) TransferLeadership(ctx context.Context, to uint64) (uint64, error) {
	var err error
	switch {
	case to == 0:
		err = a.n.TransferLeadership(ctx)
	case to == a.n.id && a.n.IsLeader():
		return a.n.id, nil
	default:
		err = a.n.TransferLeadershipTo(ctx, to)
	}
	if err != nil {
		return 0, toHTTPError(err)
	}
	return a.n.awaitOtherLeader(ctx), nil
}

func (a apiShim) Healthy() error {
	rt, err := a.n.current()
	if err != nil {
		return toHTTPError(err)
	}
	if _, id := rt.raft.LeaderWithID(); id == "" {
		return fmt.Errorf("%w: this node knows no leader", httpconfig.ErrNoLeader)
	}
	return nil
}

func (a apiShim) Backup(ctx context.Context, w io.Writer) (uint64, error) {
	index, err := a.n.Backup(ctx, w)
	return index, toHTTPError(err)
}

func (a apiShim) StageRestore(ctx context.Context, r io.Reader) (httpconfig.StagedRestore, error) {
	if _, err := a.n.current(); err != nil {
		return nil, toHTTPError(err)
	}
	st, err := a.n.stageBackup(ctx, r)
	if err != nil {
		return nil, toHTTPError(err)
	}
	return stagedShim{st}, nil
}

// stagedShim is a staged backup as the HTTP API sees it.
type stagedShim struct{ s *stagedBackup }

func (s stagedShim) Index() uint64                     { return s.s.info.Index }
func (s stagedShim) Restore(ctx context.Context) error { return toHTTPError(s.s.Restore(ctx)) }
func (s stagedShim) Discard()                          { s.s.Discard() }

func toHTTPPeer(p Peer) httpconfig.Peer {
	s := httpconfig.Nonvoter
	if p.Voter {
		s = httpconfig.Voter
	}
	return httpconfig.Peer{ID: p.ID, Host: p.Host, RaftPort: p.RaftPort, ConfigPort: p.ConfigPort, GossipPort: p.GossipPort, Suffrage: s, NonVoter: p.NonVoter}
}

func fromHTTPPeer(p httpconfig.Peer) Peer {
	return Peer{ID: p.ID, Host: p.Host, RaftPort: p.RaftPort, ConfigPort: p.ConfigPort, GossipPort: p.GossipPort, Voter: p.Suffrage == httpconfig.Voter, NonVoter: p.NonVoter}
}

// raftStateName is a State as the HTTP API names it (raft's names).
func raftStateName(s State) string {
	switch s {
	case observer.Leader:
		return raft.Leader.String()
	case observer.Candidate:
		return raft.Candidate.String()
	case observer.Shutdown:
		return raft.Shutdown.String()
	}
	return raft.Follower.String()
}

// toHTTPError maps canoe's errors to the HTTP API's sentinels.
func toHTTPError(err error) error {
	var nle *NotLeaderError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnknownOutcome):
		// Before the retriable cases below: the follower must not resend.
		// Any 5xx reads as an unknown outcome on the follower.
		return errors.New(err.Error())
	case errors.As(err, &nle):
		return &httpconfig.NotLeaderError{LeaderID: nle.LeaderID}
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrNotRunning):
		return fmt.Errorf("%w: %v", httpconfig.ErrNoLeader, err)
	case errors.Is(err, ErrPeerNotFound):
		return fmt.Errorf("%w: %v", httpconfig.ErrPeerNotFound, err)
	case errors.Is(err, ErrInvalidPeer), errors.Is(err, ErrEmptyProposal), errors.Is(err, ErrInvalidBackup):
		return fmt.Errorf("%w: %v", httpconfig.ErrInvalid, err)
	case errors.Is(err, ErrorRemovedFromCluster):
		return fmt.Errorf("%w: %v", httpconfig.ErrRemoved, err)
	case errors.Is(err, ErrTimeout):
		return fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
	}
	return err
}

// fromHTTPError maps an HTTP API error back to canoe's sentinels: a request
// the leader may have acted on is an unknown outcome, one it surely did not
// act on is retried.
func fromHTTPError(err error, leader uint64) error {
	var se *httpconfig.StatusError
	if errors.As(err, &se) {
		switch {
		case errors.Is(se, httpconfig.ErrNotLeader):
			return &NotLeaderError{LeaderID: se.LeaderID}
		case errors.Is(se, httpconfig.ErrNoLeader):
			return fmt.Errorf("%w: leader %d answered: %s", ErrNoLeader, leader, se.Message)
		case errors.Is(se, httpconfig.ErrPeerNotFound):
			return fmt.Errorf("%w: %s", ErrPeerNotFound, se.Message)
		case errors.Is(se, httpconfig.ErrInvalid):
			return fmt.Errorf("%w: %s", ErrInvalidPeer, se.Message)
		case errors.Is(se, httpconfig.ErrRemoved):
			return &NotLeaderError{} // the node we asked is no longer a member
		case errors.Is(se, context.DeadlineExceeded):
			return fmt.Errorf("%w: leader %d: %s", ErrTimeout, leader, se.Message)
		case se.Code >= 500:
			// The leader failed while handling the request: it may have
			// acted on it (a proposal may commit).
			return fmt.Errorf("%w: leader %d answered %d: %s", ErrUnknownOutcome, leader, se.Code, se.Message)
		}
		return fmt.Errorf("canoe: leader %d: %w", leader, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// Nothing was sent: the leader is down or moving.
		return fmt.Errorf("%w: leader %d unreachable: %v", ErrNoLeader, leader, err)
	}
	return fmt.Errorf("%w: request to leader %d failed: %v", ErrUnknownOutcome, leader, err)
}

// httpForwarder carries a follower's membership requests to the leader over
// the HTTP API, and dials forward channels on the raft port.
type httpForwarder struct {
	n      *Node
	client *httpconfig.Client
	scheme string
}

func (f *httpForwarder) base(id uint64) (string, error) {
	m, ok := f.n.fsm.Peer(id)
	if !ok || m.ConfigPort == 0 {
		return "", fmt.Errorf("%w: the HTTP address of member %d is not known yet", ErrNoLeader, id)
	}
	return f.scheme + "://" + net.JoinHostPort(m.Host, strconv.Itoa(m.ConfigPort)), nil
}

// DialForward connects to member id's forward channel on its raft port.
func (f *httpForwarder) DialForward(ctx context.Context, id uint64) (net.Conn, error) {
	rt, err := f.n.current()
	if err != nil {
		return nil, err
	}
	cfg, _, err := configuration(rt)
	if err != nil {
		return nil, err
	}
	if s := findServer(cfg, id); s != nil {
		return rt.layer.DialChannel(ctx, string(s.Address), transport.Forward)
	}
	return nil, fmt.Errorf("%w: member %d is not in this node's configuration", ErrNoLeader, id)
}

func (f *httpForwarder) AddPeer(ctx context.Context, leader uint64, p Peer) error {
	base, err := f.base(leader)
	if err != nil {
		return err
	}
	if _, err := f.client.AddPeer(ctx, base, toHTTPPeer(p)); err != nil {
		return fromHTTPError(err, leader)
	}
	return nil
}

func (f *httpForwarder) RemovePeer(ctx context.Context, leader uint64, id uint64) error {
	base, err := f.base(leader)
	if err != nil {
		return err
	}
	if err := f.client.RemovePeer(ctx, base, id); err != nil {
		return fromHTTPError(err, leader)
	}
	return nil
}

func (f *httpForwarder) Promote(ctx context.Context, leader uint64, id uint64) error {
	base, err := f.base(leader)
	if err != nil {
		return err
	}
	if err := f.client.Promote(ctx, base, id); err != nil {
		return fromHTTPError(err, leader)
	}
	return nil
}

func (f *httpForwarder) Membership(ctx context.Context, peer uint64) (uint64, []uint64, error) {
	base, err := f.base(peer)
	if err != nil {
		return 0, nil, err
	}
	st, err := f.client.Status(ctx, base)
	if err != nil {
		return 0, nil, err
	}
	// A member too old to report its committed configuration cannot tell:
	// its Members may hold a change that is undone later.
	return st.LeaderID, st.CommittedMembers, nil
}
