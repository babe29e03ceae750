package httpconfig

import (
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults for the zero values of Config.
const (
	// DefaultMaxBodyBytes limits the JSON request bodies: 1 MiB.
	DefaultMaxBodyBytes int64 = 1 << 20
	// DefaultRequestTimeout bounds the context the node's AddPeer,
	// RemovePeer, Promote and TransferLeadership get: 30s.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultMaxSnapshotBytes limits a POST /snapshot body (a backup):
	// 16 GiB.
	DefaultMaxSnapshotBytes int64 = 16 << 30
	// DefaultSnapshotTimeout bounds a GET or POST /snapshot, the transfer
	// of the backup included: 1h.
	DefaultSnapshotTimeout = time.Hour
)

// Config configures NewHandler and NewServer. The zero value of every field
// is usable: a nil component disables its routes (they answer 404), and a
// zero limit means its default. NewHandler copies the Config; later changes
// to it (or to Secret's bytes) have no effect.
type Config struct {
	// Membership serves GET, POST and DELETE /peers. Nil: 404.
	Membership Membership
	// Promoter serves POST /peers/promote. Nil: 404.
	Promoter Promoter
	// Status serves GET /status and GET /healthz. Nil: 404.
	Status StatusSource
	// Snapshots serves GET and POST /snapshot. Nil: 404.
	Snapshots Snapshots
	// Leadership serves POST /leader/transfer. Nil: 404.
	Leadership LeaderTransfer
	// Metrics serves GET /metrics, typically promhttp.HandlerFor(...).
	// Nil: 404.
	Metrics http.Handler
	// Secret, when not empty, turns authentication on: every request must
	// be signed with the API key derived from Secret and ClusterID, except
	// that GET /metrics and GET /healthz also accept the read-only metrics
	// token (see the package documentation, "Authentication"). It must be
	// at least 16 bytes; with a shorter one every request gets 500. Empty:
	// no authentication.
	Secret []byte
	// ClusterID is the cluster the keys derived from Secret belong to; the
	// clients must be made with the same one (canoe passes
	// NodeConfig.ClusterID after defaulting). Unused without Secret.
	ClusterID uint64
	// Logger receives request failures, panics and the http.Server's own
	// errors. Nil: hclog.NewNullLogger().
	Logger hclog.Logger
	// MaxBodyBytes limits the JSON request bodies, in bytes; a larger body
	// gets 413. Zero or negative: DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// MaxSnapshotBytes limits a POST /snapshot body, in bytes; a larger
	// body gets 413 (MaxBodyBytes does not apply to it). Zero or negative:
	// DefaultMaxSnapshotBytes (16 GiB).
	MaxSnapshotBytes int64
	// SnapshotTimeout bounds a GET or POST /snapshot: the context passed
	// to the node and the connection's read and write deadlines, which
	// the server's own (2 minutes to read a request, RequestTimeout + 30s
	// to write an answer) would otherwise cut a large backup short with.
	// Zero or negative: DefaultSnapshotTimeout (1h).
	SnapshotTimeout time.Duration
	// RequestTimeout bounds the context passed to the node for one request
	// (the request's own context ends earlier if the caller goes away); a
	// request that runs out of it gets 504. Zero: DefaultRequestTimeout
	// (30s). Negative: no bound beyond the request's context.
	RequestTimeout time.Duration

	// now is the clock signatures are checked against (tests); nil:
	// time.Now.
	now func() time.Time
	// replayCap is the replay cache's size (tests); 0:
	// DefaultReplayCacheSize.
	replayCap int
}

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxSnapshotBytes <= 0 {
		c.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if c.SnapshotTimeout <= 0 {
		c.SnapshotTimeout = DefaultSnapshotTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if len(c.Secret) > 0 {
		c.Secret = append([]byte(nil), c.Secret...)
	} else {
		c.Secret = nil
	}
	return c
}
