// Package httpconfig is canoe's HTTP API: the configuration API of the
// original canoe (/peers), proposal forwarding and read index between nodes,
// status, health and metrics, with its server (NewHandler, NewServer) and
// client (NewClient).
//
// The package is a leaf: it imports neither canoe nor hashicorp/raft. It
// declares one small interface per concern (Membership, Proposer,
// ReadIndexer, StatusSource) that the node implements with unexported
// shims, and the node's errors reach HTTP through this package's sentinel
// errors.
//
// # Endpoints
//
//	method  path                 body                         2xx answer
//	GET     /peers               -                            200 PeersResponse
//	POST    /peers               {"id","raft_port",           200 PeersResponse, once committed
//	                              "config_port"[,"host",
//	                              "gossip_port","cluster_id"]}
//	DELETE  /peers               {"id"}                       200 {"removed": id}, once committed
//	POST    /internal/propose    binary proposals (codec.go)  200 binary results
//	GET     /internal/readindex  -                            200 {"index": N}
//	GET     /status              -                            200 Status
//	GET     /healthz             -                            200 {"status":"ok"}
//	GET     /metrics             -                            Config.Metrics (Prometheus)
//
// A POST /peers without "host" adds the peer at the address the request came
// from, as the original canoe did; one with "cluster_id" is refused (409)
// by a node of another cluster. JSON request bodies are limited to
// Config.MaxBodyBytes (1 MiB) and proposal bodies to Config.MaxProposalBytes
// (64 MiB). Answers are JSON except for /internal/propose
// (application/octet-stream) and /metrics.
//
// # Errors
//
// Every error answer has Content-Type application/json and the body
// {"error": "human readable message"}; a 421 adds "leader_id" when the
// leader is known. Statuses:
//
//	400  ErrInvalid               malformed JSON, unknown field, data after the object,
//	                              missing or zero id, port outside 1..65535, bad host,
//	                              malformed or empty proposal batch
//	401  ErrUnauthorized          Config.Secret set and no or wrong bearer token;
//	                              also sets "WWW-Authenticate: Bearer"
//	404  ErrPeerNotFound          DELETE /peers of an id that is not a member;
//	                              also any unknown path, and routes whose Config
//	                              component is nil
//	405  -                        known path, wrong method; sets "Allow"
//	409  ErrConflict              the node refused a conflicting membership change,
//	                              or a new member of another cluster
//	410  ErrRemoved               the node was removed from the cluster
//	413  ErrTooLarge              body over the limit
//	421  ErrNotLeader             leader-only call on a follower (NotLeaderError)
//	503  ErrNoLeader              no known leader; also GET /healthz when
//	                              unhealthy, and a request canceled by shutdown
//	504  context.DeadlineExceeded the node did not finish within
//	                              Config.RequestTimeout (30s)
//	500  -                        any other error, or a panic in the node's code
//	                              (recovered and logged; the process goes on)
//
// The node's implementations return these sentinels, wrapped as they like;
// the server maps them with errors.Is. The Client turns every non-2xx answer
// into a *StatusError that errors.Is matches against the same sentinel, so
// an error crosses the network and still compares equal:
//
//	_, err := client.Propose(ctx, leaderURL, items)
//	var se *httpconfig.StatusError
//	if errors.Is(err, httpconfig.ErrNotLeader) && errors.As(err, &se) {
//		// retry at se.LeaderID
//	}
//
// # Authentication
//
// When Config.Secret is set, every request, /healthz and /metrics included,
// must carry "Authorization: Bearer <token>", where the token is the secret
// itself if it is printable ASCII, or else its unpadded base64url encoding
// (BearerToken). Tokens are compared in constant time. A Client made with the
// same secret sends it.
//
// # Proposal codec
//
// POST /internal/propose carries a batch of proposals in a small binary,
// versioned format (EncodeProposals, DecodeProposals) and answers one Result
// per proposal (EncodeResults, DecodeResults); see codec.go. Decoding
// rejects every malformed input with an error and bounds its allocations by
// the input length.
//
// # Serving
//
//	ln, err := net.Listen("tcp", ":9001")
//	...
//	srv := httpconfig.NewServer(httpconfig.Config{
//		Membership: membershipShim, Proposer: proposerShim,
//		Reader: readerShim, Status: statusShim,
//		Metrics: promhttp.Handler(), Secret: secret, Logger: logger,
//	}, ln, tlsConfig)
//	go srv.Serve()
//	...
//	err = srv.Shutdown(ctx) // graceful; returns after Serve and every handler
package httpconfig
