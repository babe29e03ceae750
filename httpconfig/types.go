package httpconfig

import (
	"context"
	"io"
)

// Suffrage values of Peer.Suffrage.
const (
	Voter    = "voter"
	Nonvoter = "nonvoter"
)

// Peer is one cluster member as the HTTP API describes it.
type Peer struct {
	// ID is the member's unique nonzero id.
	ID uint64 `json:"id"`
	// Host is the host name or IP address peers use to reach the member.
	Host string `json:"host,omitempty"`
	// RaftPort is the member's raft transport port.
	RaftPort int `json:"raft_port"`
	// ConfigPort is the member's HTTP API port.
	ConfigPort int `json:"config_port"`
	// GossipPort is the member's memberlist port, 0 if unknown.
	GossipPort int `json:"gossip_port,omitempty"`
	// Suffrage is Voter or Nonvoter, "" if unknown.
	Suffrage string `json:"suffrage,omitempty"`
	// NonVoter marks a read replica: a member that stays a non-voter
	// (Suffrage Nonvoter) until promoted explicitly (POST /peers/promote).
	// A member with Suffrage Nonvoter and NonVoter false is catching up and
	// the leader promotes it on its own. In a POST /peers request it asks
	// for the new member to be added as a read replica.
	NonVoter bool `json:"nonvoter,omitempty"`
	// LastContactMs is, in a leader's GET /status, how many milliseconds
	// ago the member last answered the leader (heartbeats included); absent
	// for the leader itself, for a member that has not answered it yet, on
	// other routes and in a follower's answer.
	LastContactMs *int64 `json:"last_contact_ms,omitempty"`
	// ClusterID is, in a POST /peers request, the cluster the new member
	// belongs to: a node of another cluster refuses it (ErrConflict). 0
	// means unchecked; answers leave it 0.
	ClusterID uint64 `json:"cluster_id,omitempty"`
}

// PeersResponse answers GET /peers and POST /peers: the answering node's own
// fields, flattened, plus every other member.
type PeersResponse struct {
	ID         uint64 `json:"id"`
	Host       string `json:"host,omitempty"`
	RaftPort   int    `json:"raft_port"`
	ConfigPort int    `json:"config_port"`
	GossipPort int    `json:"gossip_port,omitempty"`
	Suffrage   string `json:"suffrage,omitempty"`
	NonVoter   bool   `json:"nonvoter,omitempty"`
	// RemotePeers is every member except the answering node; never null in
	// the JSON the server writes.
	RemotePeers []Peer `json:"remote_peers"`
}

// Self returns the answering node's fields as a Peer.
func (r PeersResponse) Self() Peer {
	return Peer{
		ID:         r.ID,
		Host:       r.Host,
		RaftPort:   r.RaftPort,
		ConfigPort: r.ConfigPort,
		GossipPort: r.GossipPort,
		Suffrage:   r.Suffrage,
		NonVoter:   r.NonVoter,
	}
}

// Status answers GET /status.
type Status struct {
	// ID is the answering node's id.
	ID uint64 `json:"id"`
	// State is the raft state: "Follower", "Candidate", "Leader", "Shutdown".
	State string `json:"state"`
	// LeaderID is the leader's id, 0 if unknown.
	LeaderID     uint64 `json:"leader_id"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	// Members is every member, the answering node included, as in the
	// latest configuration the node knows (possibly not committed yet);
	// never null in the JSON the server writes.
	Members []Peer `json:"members"`
	// CommittedMembers are the IDs of the newest committed configuration
	// the node has applied, sorted. It may lag Members but is never undone.
	// Absent before the node has applied a configuration, and from servers
	// that predate it.
	CommittedMembers []uint64 `json:"committed_members,omitempty"`
}

// Membership is the node's membership, used by the /peers routes.
//
// Self and Peers are called on every GET /peers, POST /peers and DELETE
// /peers; they must be cheap and must not block. AddPeer and RemovePeer are
// called once per valid POST and DELETE respectively, never for invalid
// input; they may block until the change is committed or ctx ends, and must
// return once ctx ends.
type Membership interface {
	// Self returns the node itself.
	Self() Peer
	// Peers returns every member, the node itself included. The server does
	// not modify the returned slice.
	Peers() []Peer
	// AddPeer adds p to the cluster (as a non-voter that the node promotes
	// once it has caught up, or with p.NonVoter as a read replica that
	// stays a non-voter) and returns after the change is committed. A
	// follower may forward the request to the leader itself. Errors should
	// match this package's sentinels (ErrNoLeader, ErrConflict, ...).
	AddPeer(ctx context.Context, p Peer) error
	// RemovePeer removes the member id and returns after the change is
	// committed; ErrPeerNotFound if id is not a member.
	RemovePeer(ctx context.Context, id uint64) error
}

// Promoter serves POST /peers/promote.
type Promoter interface {
	// Promote makes member id a voter: a read replica stops being one, and
	// a non-voter is promoted once it has caught up. It returns after the
	// promotion is committed, nil at once for a voter, and ErrPeerNotFound
	// if id is not a member. It is called once per valid request; it may
	// block until ctx ends, and must return once ctx ends.
	Promote(ctx context.Context, id uint64) error
}

// StatusSource serves GET /status and GET /healthz.
type StatusSource interface {
	// Status returns a snapshot of the node's state. It must not block.
	Status() Status
	// Healthy returns nil if the node is running and knows a leader, else
	// an error saying why not. It must not block.
	Healthy() error
}

// Snapshots serves GET and POST /snapshot: backups of the cluster's state,
// and their restore.
type Snapshots interface {
	// Backup writes a backup of the cluster's state to w and returns the
	// log index whose state it holds. It streams the whole state, so it
	// may take long; it must return once ctx ends. If it fails after
	// writing, the server aborts the answer, so that the client sees an
	// error rather than a short backup.
	Backup(ctx context.Context, w io.Writer) (index uint64, err error)
	// StageRestore reads a backup from r to its end (io.EOF) and checks
	// it, changing nothing, and returns what restores it. The server calls
	// it once per POST /snapshot and acts on the result only once the
	// request's body is known to be authentic (see bodyVerified). It
	// returns an error matching ErrInvalid for a backup it refuses, and
	// r's own errors (ErrUnauthorized for a body that does not match its
	// signature, *http.MaxBytesError past MaxSnapshotBytes) as they are.
	StageRestore(ctx context.Context, r io.Reader) (StagedRestore, error)
}

// StagedRestore is a backup read and checked by Snapshots.StageRestore.
type StagedRestore interface {
	// Index returns the log index whose state the backup holds.
	Index() uint64
	// Restore replaces the state of the whole cluster with the backup's
	// and returns once that is committed; it may block until ctx ends.
	Restore(ctx context.Context) error
	// Discard releases the backup. The server calls it once, after
	// Restore or instead of it.
	Discard()
}
