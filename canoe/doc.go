// Package canoe replicates a state machine across a cluster of nodes with
// raft (hashicorp/raft underneath). You implement FSM; canoe keeps every
// node's FSM identical through crashes, restarts, partitions and membership
// changes.
//
// # Starting a cluster
//
// Implement FSM (Apply, Snapshot, Restore), then start one Node per machine.
// The first node of a new cluster sets BootstrapNode; the others name a
// member's HTTP API in BootstrapPeers and join through it:
//
//	node, err := canoe.NewNode(&canoe.NodeConfig{
//		FSM:            fsm,
//		DataDir:        "/var/lib/app",
//		BootstrapPeers: []string{"http://10.0.0.1:1235"},
//	})
//	if err != nil { ... }
//	if err := node.Start(); err != nil { ... }
//	defer node.Stop()
//
// BootstrapPeers may instead hold bare host:port gossip addresses: nodes
// find each other with memberlist, the leader adds the nodes that appear,
// and BootstrapExpect lets N nodes found a cluster together without a
// designated first node.
//
// New members join as non-voters and are promoted to voters once they have
// caught up. A node restarted on the same DataDir comes back as the member
// it was, with the same ID, and its FSM is restored from the newest snapshot
// plus the log.
//
// # Proposing
//
// Propose (or ProposeContext) works on any node: a follower forwards to the
// leader. It returns nil once the proposal is committed and applied on the
// calling node, so a read there right after sees it. Concurrent proposals
// are batched into one raft entry (group commit). If FSM.Apply returns an
// error, the proposer gets it as an *ApplyError; the entry still counts as
// applied everywhere and the cluster goes on. Errors matching
// ErrUnknownOutcome or ErrTimeout mean the proposal may still commit.
//
// # Reading
//
// Read the FSM directly for fast, possibly stale reads. For a linearizable
// read, call ReadBarrier first: it returns once this node has applied every
// entry committed before the call, without writing to the log.
//
// # Snapshots
//
// SnapshotConfig sets how often canoe checks for a snapshot, the number of
// new entries that makes one due, and how many snapshot files are kept. The
// log is truncated after each snapshot. Snapshots are on by default.
//
// FSM.Snapshot returns the whole state as one []byte, which must fit in
// memory (twice, while it is written). An FSM with a large state also
// implements StreamingFSM: SnapshotStream captures the state quickly (Apply
// waits only for that) and returns a function that writes it while Applies
// go on, and RestoreStream reads it back. canoe then never holds the whole
// state: snapshots, installs on new or lagging nodes, restarts, backups and
// restores all stream. An FSM may start streaming at any time: snapshots
// written before are read the same way, so its RestoreStream must read what
// its Snapshot wrote.
//
// # Backups
//
// Backup writes a consistent copy of the cluster's state (at a
// linearizable point, from any node) as one self-describing, checksummed
// stream; GET /snapshot does the same over HTTP. InspectBackup reads one
// and verifies it without a node. RestoreBackup (POST /snapshot) replaces
// the state of the whole running cluster with a backup, after checking it
// in full: a damaged, truncated or foreign backup is refused with an
// ErrInvalidBackup that says why, and nothing changes. NodeConfig.RestoreFrom
// founds a new cluster from a backup file:
//
//	f, _ := os.Create("cluster.backup")
//	index, err := node.Backup(ctx, f) // the state at index, or later
//	...
//	cfg := &canoe.NodeConfig{FSM: fsm, BootstrapNode: true, RestoreFrom: "cluster.backup"}
//
// # Membership
//
// AddPeer and RemovePeer change membership from Go; the HTTP API's /peers
// endpoint does the same for tools. Stop leaves a node a member (it still
// counts toward quorum); Destroy removes it and deletes its data. A node the
// cluster removes stops itself and answers ErrorRemovedFromCluster, once the
// removal is committed: a removal that never commits (the leader lost
// leadership first) leaves the node a member.
//
// A node started with NonVoter is a read replica: the cluster adds it as a
// non-voter and keeps it one. It gets every entry and serves reads
// (ReadBarrier, then its FSM) without counting toward quorum, so replicas
// add read capacity in other zones or on small machines without slowing
// commits or risking availability. Promote makes one a voter:
//
//	cfg := &canoe.NodeConfig{FSM: fsm, NonVoter: true, DataDir: dir,
//		BootstrapPeers: []string{"http://10.0.0.1:1235"}}
//	...
//	err := node.Promote(ctx, replicaID) // on any member
//
// # Recovering from the loss of a quorum
//
// When most voters are gone for good, the survivors hold the data but can
// never elect a leader. Stop each survivor and run RecoverCluster on its
// DataDir with the same members (the survivors, as ParseMembers reads
// "ID@HOST:RAFTPORT,..."); started again, they elect a leader among
// themselves, and the lost machines come back as new nodes (an empty
// DataDir, joining). Entries only the lost nodes held are lost; entries a
// survivor held but the cluster never committed become committed.
// ScheduleRecovery does the same for programs without the FSM (the canoe
// operator command): the node's next Start carries it out.
//
//	members, err := canoe.ParseMembers("42@10.0.0.1:7000")
//	if err != nil { ... }
//	if err := canoe.RecoverCluster(cfg, members); err != nil { ... }
//	node, err := canoe.NewNode(cfg) // and Start: it leads alone
//
// # Observing
//
// RegisterObserver delivers typed events (LeaderChanged, PeerAdded,
// SnapshotTaken, ...) to a channel without ever blocking the node; events
// that do not fit are dropped and counted.
//
// # HTTP API
//
// Each node serves, on ConfigurationPort: GET/POST/DELETE /peers (the
// original canoe's membership API), POST /peers/promote, GET /status, GET
// /healthz, GET /metrics (Prometheus), GET/POST /snapshot (backups) and
// POST /leader/transfer. Followers forward proposals and read-index
// requests to the leader over the raft port, not this API. With
// ClusterSecret set every call must be signed with a key derived from it
// (httpconfig.Client does so), and GET /metrics and GET /healthz also take
// the read-only httpconfig.MetricsToken; with TLSConfig set the API and the
// raft transport use TLS. The canoe command (cmd/canoe) is the operator's
// client of this API.
package canoe
