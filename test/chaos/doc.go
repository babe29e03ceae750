// Package chaos is canoe's fault-injection and linearizability suite. It
// runs real node processes (test/chaos/node: a canoe node with an
// append-only KV state machine, whose snapshots stream, and a JSON API) on
// 127.0.0.1 with real data directories (the voters, plus one read replica:
// a -nonvoter node, which the workload and the faults target like any
// member), behind an in-process userspace proxy that carries all
// traffic between the nodes (raft, canoe's HTTP API, gossip over TCP and
// UDP), and drives 8 concurrent clients while a seeded schedule injects
// faults:
//
//   - kill -9 and restart on the same data dir (also three times in a row
//     under heavy writes), and graceful restart (SIGTERM, node.Stop);
//   - SIGSTOP/SIGCONT of the leader (the stale-leader and stale-read case);
//   - a node isolated from all others, or one link between two nodes cut
//     (connections stall, then reset on heal; gossip datagrams vanish);
//   - a flaky network: random delay per chunk and random connection resets;
//   - membership: a fresh node (new ID and data dir, behind the same proxy)
//     joins the running cluster with -join http://<a member's API>, must
//     become a voter within 30s, serves the workload for a while, and is
//     removed again with DELETE /peers sent to a random member's canoe HTTP
//     API (httpconfig.Client.RemovePeer, retried on ErrNoLeader/ErrNotLeader
//     and open outcomes for up to 20s); or an original member (maybe the
//     leader) is removed that way and a fresh node joins in its place, so
//     the cluster has its size again. A removed node must stop itself
//     within 10s as documented: its Status says Shutdown, its canoe HTTP
//     API is closed, and appends and linearizable reads through it fail
//     with ErrorRemovedFromCluster (kind "removed", recorded as certainly
//     failed). Its process keeps running (the node binary exits only on a
//     signal); at the end it must still be stopped and exit 0 on SIGTERM.
//
// Fault targets are positions in the current member list, and the workload
// only targets current members. After healing and settling it checks that
// the history is linearizable
// (porcupine, KV model partitioned by key; appends with an unknown outcome
// get an infinite return time), that plain reads only show appended values
// and are prefixes of the final lists, that no acknowledged append is lost
// (appends a node acknowledged before its removal included) and no
// certainly-failed one is visible, that every member at the end has the
// same final lists, applied index, command count and state hash and a
// configuration of exactly the members, all voters but the read replica,
// which must still be one (removed nodes stopped at their removal and are
// not compared), that no term had two leaders and the replica led none,
// that the cluster serves again within 20s of the last fault, and that no
// process exited unless the schedule ended it.
//
// Tiers and knobs:
//
//	go test ./test/chaos/                      bounded: 3 schedules of 5 faults, 3 voters; a
//	                                           schedule whose seed is a multiple of 3 (one of
//	                                           the three) has one membership fault
//	CANOE_CHAOS=long go test -timeout 2h ./test/chaos/
//	                                           20 schedules of 14 faults, 3 and 5 voters,
//	                                           membership among the drawn fault kinds
//	CANOE_CHAOS_SEED=n                         replay: schedules use seeds n, n+1, ...
//	CANOE_CHAOS_SCHEDULES=k                    run k schedules
//	CANOE_CHAOS_NODES=m                        voters of every schedule (plus the replica)
//	CANOE_CHAOS_OUT=dir                        keep node logs, data dirs, report.txt and
//	                                           porcupine visualizations in dir
//
// The seed of every schedule, its faults and a report (faults by kind, ops
// ok/failed/unknown, linearizability verdict, lost writes, longest time
// without a leader, what each membership fault did and how long it took)
// are logged (go test -v). A failing schedule prints the exact replay
// command and the tail of every node's log, removed nodes included.
//
// The suite needs Linux (/proc, SIGSTOP) and the whole 127.0.0.0/8 on lo;
// it skips when the node binary cannot be built.
package chaos
