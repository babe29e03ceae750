// Package httpconfig is canoe's HTTP API: the configuration API of the
// original canoe (/peers), promotion, leadership transfer, backups, status,
// health and metrics, with its server (NewHandler, NewServer) and client
// (NewClient). (Followers forward proposals and read-index requests over
// the raft port, not over this API.)
//
// The package is a leaf: it imports neither canoe nor hashicorp/raft. It
// declares one small interface per concern (Membership, Promoter,
// StatusSource, LeaderTransfer, Snapshots) that the node
// implements with unexported shims, and the node's errors reach HTTP
// through this package's sentinel errors.
//
// # Endpoints
//
//	method  path                 body                         2xx answer
//	GET     /peers               -                            200 PeersResponse
//	POST    /peers               {"id","raft_port",           200 PeersResponse, once committed
//	                              "config_port"[,"host",
//	                              "gossip_port","cluster_id",
//	                              "nonvoter"]}
//	DELETE  /peers               {"id"}                       200 {"removed": id}, once committed
//	POST    /peers/promote       {"id"}                       200 {"promoted": id}, once a voter
//	GET     /status              -                            200 Status
//	GET     /healthz             -                            200 {"status":"ok"}
//	GET     /metrics             -                            Config.Metrics (Prometheus)
//	GET     /snapshot            -                            200 a backup (application/octet-stream),
//	                                                          its index in the trailer X-Canoe-Backup-Index
//	POST    /snapshot            a backup                     200 {"restored": true, "backup_index": N},
//	                                                          once the cluster holds it
//	POST    /leader/transfer     none, or {"id"}              200 {"leader_id": new leader}, once
//	                                                          the old leader stepped down
//
// POST /leader/transfer (Config.Leadership) hands leadership to voter "id",
// or with no body (or id 0) to a voter the leader picks; only the leader
// serves it, others answer 421 with the leader's id (the client goes there),
// an unknown id gets 404 and a non-voter, or no other voter, 400. A
// leader's GET /status carries, per member, "last_contact_ms": how long
// ago that member last answered it (absent for itself, for members that
// have not answered yet, and in every follower's answer).
//
// A POST /peers without "host" adds the peer at the address the request came
// from, as the original canoe did; one with "cluster_id" is refused (409)
// by a node of another cluster. One with "nonvoter": true adds a read
// replica: a member that gets every entry and serves reads but stays a
// non-voter (never counted toward quorum, never a leader) until POST
// /peers/promote makes it a voter; without it the new member is promoted
// once it has caught up. Servers that predate "nonvoter" refuse it (400,
// unknown field), so the Client sends it only when true. Members in
// answers carry "suffrage" ("voter" or "nonvoter") and, for a read
// replica, "nonvoter": true. POST /peers/promote of a voter succeeds at
// once; of a non-voter it answers once the member is a voter (it is
// promoted when it has caught up, so a lagging replica takes longer).
//
// JSON request bodies are limited to Config.MaxBodyBytes (1 MiB) and
// backups to Config.MaxSnapshotBytes (16 GiB). Answers are JSON except for
// GET /snapshot (application/octet-stream) and /metrics.
//
// GET /snapshot streams a backup as the node writes it; if the node fails
// midway the answer is aborted (the client sees a broken connection, not a
// short backup). POST /snapshot hands the body to the node, which reads it
// to its end and checks the backup before anything changes; the server
// lets it restore only once the body matched its signature. Both run
// under Config.SnapshotTimeout (1h) instead of RequestTimeout, and with
// the connection's read and write deadlines extended to match.
//
// # Errors
//
// Every error answer has Content-Type application/json and the body
// {"error": "human readable message"}; a 421 adds "leader_id" when the
// leader is known. Statuses:
//
//	400  ErrInvalid               malformed JSON, unknown field, data after the object,
//	                              missing or zero id, port outside 1..65535, bad host,
//	                              a backup the node refuses (damaged, truncated, of
//	                              another cluster)
//	401  ErrUnauthorized          Config.Secret set and the request not properly
//	                              signed (see Authentication: the message says
//	                              what is wrong); sets "WWW-Authenticate:
//	                              Canoe-HMAC-SHA256" (and "Bearer" on GET
//	                              /metrics and GET /healthz)
//	404  ErrPeerNotFound          DELETE /peers or POST /peers/promote of an id
//	                              that is not a member;
//	                              also any unknown path, and routes whose Config
//	                              component is nil
//	405  -                        known path, wrong method; sets "Allow"
//	409  ErrConflict              the node refused a conflicting membership change,
//	                              or a new member of another cluster
//	410  ErrRemoved               the node was removed from the cluster
//	413  ErrTooLarge              body over the limit
//	421  ErrNotLeader             leader-only call on a follower (NotLeaderError),
//	                              e.g. POST /leader/transfer
//	503  ErrNoLeader              no known leader; also GET /healthz when
//	                              unhealthy, and a request canceled by shutdown
//	504  context.DeadlineExceeded the node did not finish within
//	                              Config.RequestTimeout (30s)
//	500  -                        any other error, or a panic in the node's code
//	                              (recovered and logged; the process goes on);
//	                              every request when Config.Secret is set but
//	                              shorter than 16 bytes
//
// The node's implementations return these sentinels, wrapped as they like;
// the server maps them with errors.Is. The Client turns every non-2xx answer
// into a *StatusError that errors.Is matches against the same sentinel, so
// an error crosses the network and still compares equal:
//
//	_, err := client.TransferLeadership(ctx, nodeURL, 0)
//	var se *httpconfig.StatusError
//	if errors.Is(err, httpconfig.ErrNotLeader) && errors.As(err, &se) {
//		// retry at se.LeaderID
//	}
//
// # Authentication
//
// Without Config.Secret the API is open. With it, every request must be
// signed, and the secret itself never goes on the wire: the server and the
// Client derive keys from Config.Secret and Config.ClusterID with
// HKDF-SHA256 (module-internal package keys; one key per use, so a key one
// use exposes reveals neither the secret nor another key), and requests
// carry an HMAC under the API key:
//
//	Authorization: Canoe-HMAC-SHA256 t=<ms>,n=<nonce>,b=<body sha256>,s=<signature>
//
//	t  the signing time, unix milliseconds in decimal (1 to 15 digits)
//	n  a nonce: 16 to 64 base64url characters (the Client sends 16 random bytes)
//	b  SHA-256 of the exact body bytes (of nothing for no body), unpadded base64url
//	s  HMAC-SHA256(API key, string to sign), unpadded base64url
//
// The string to sign is these six lines, each ended by "\n":
//
//	CANOE-HMAC-SHA256-V1
//	<method, as on the request line>
//	<request URI as on the request line: escaped path and query>
//	<t, as sent>
//	<n, as sent>
//	<b, as sent>
//
// The scheme name is case-insensitive; the parameters are comma-separated,
// in any order, each exactly once, with optional spaces or tabs around the
// commas; the header is at most 512 bytes. The server checks, and answers
// 401 with a JSON message that says which check failed:
//
//   - the header is present ("missing Authorization header") and well
//     formed ("malformed ...: <which parameter and why>");
//   - the signature, recomputed with the server's key and compared in
//     constant time ("bad signature": a different ClusterSecret or
//     ClusterID, or a request altered in transit);
//   - t is within SignatureWindow (60 s) of the server's clock, either way
//     ("expired or clock skew", with the offset and its direction);
//   - n was not used before ("replayed request"). The server remembers each
//     accepted nonce while its t is inside the window, at most
//     DefaultReplayCacheSize (131072) of them. At that cap it forgets the
//     nonce with the oldest t and from then on refuses every request whose t
//     is not newer than the newest t it forgot ("older than this node's
//     replay cache still vouches for"), so a forgotten nonce can never be
//     replayed; only requests delayed behind a flood of newer ones are
//     turned away, and sending them again with a fresh signature works;
//   - the body matches b. The handler gives every route a Body that
//     hashes what is read and returns io.EOF only if the whole body matched;
//     otherwise its last Read returns an error matching ErrUnauthorized
//     ("request body does not match the SHA-256 it was signed with").
//     Handlers read JSON bodies whole before they act, so an
//     altered body changes nothing; the body of a GET, HEAD or OPTIONS
//     request (which no route reads) is checked before routing; a handler
//     that streams a large body (a backup upload) must read it to io.EOF
//     before it commits anything. A sender must know the body's SHA-256
//     before sending it (hash a file first).
//
// NewSigner and Signer.Authorization produce the header for programs that
// build their own requests; a Client made with the same secret and cluster
// ID signs every request itself.
//
// GET /metrics and GET /healthz (and no other method or route) also accept
// a read-only bearer token, for Prometheus and for people:
//
//	Authorization: Bearer <MetricsToken(secret, clusterID)>
//
// The token is derived from the secret under its own label, so it reveals
// neither the secret nor the signing or gossip keys; on any other route it
// gets 401 ("the metrics token grants only GET /metrics and GET /healthz").
//
// What an observer on the network can still do without TLS: read every
// request and answer (bodies, membership, status, metrics), learn
// the metrics token from a scrape and read /metrics and /healthz with it,
// and replay a captured request to a different node of the cluster within
// the window (each node has its own replay cache). A request cannot be
// altered, redirected to another route or replayed to the same node
// without a 401. Use TLSConfig where reading matters.
//
// # Serving
//
//	ln, err := net.Listen("tcp", ":9001")
//	...
//	srv := httpconfig.NewServer(httpconfig.Config{
//		Membership: membershipShim, Status: statusShim,
//		Metrics: promhttp.Handler(), Secret: secret, ClusterID: clusterID,
//		Logger: logger,
//	}, ln, tlsConfig)
//	go srv.Serve()
//	...
//	err = srv.Shutdown(ctx) // graceful; returns after Serve and every handler
package httpconfig
