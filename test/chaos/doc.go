// Package chaos is canoe's fault-injection and linearizability suite. It
// runs real node processes (test/chaos/node: a canoe node with an
// append-only KV state machine and a JSON API) on 127.0.0.1 with real data
// directories, behind an in-process userspace proxy that carries all
// traffic between the nodes (raft, canoe's HTTP API, gossip over TCP and
// UDP), and drives 8 concurrent clients while a seeded schedule injects
// faults:
//
//   - kill -9 and restart on the same data dir (also three times in a row
//     under heavy writes), and graceful restart (SIGTERM, node.Stop);
//   - SIGSTOP/SIGCONT of the leader (the stale-leader and stale-read case);
//   - a node isolated from all others, or one link between two nodes cut
//     (connections stall, then reset on heal; gossip datagrams vanish);
//   - a flaky network: random delay per chunk and random connection resets.
//
// After healing and settling it checks that the history is linearizable
// (porcupine, KV model partitioned by key; appends with an unknown outcome
// get an infinite return time), that plain reads only show appended values
// and are prefixes of the final lists, that no acknowledged append is lost
// and no certainly-failed one is visible, that every node has the same
// final lists, applied index, command count and state hash, that no term
// had two leaders, that the cluster serves again within 20s of the last
// fault, and that no process exited unless the schedule ended it.
//
// Tiers and knobs:
//
//	go test ./test/chaos/                      bounded: 3 schedules of 5 faults, 3 nodes
//	CANOE_CHAOS=long go test -timeout 2h ./test/chaos/
//	                                           20 schedules of 14 faults, 3 and 5 nodes
//	CANOE_CHAOS_SEED=n                         replay: schedules use seeds n, n+1, ...
//	CANOE_CHAOS_SCHEDULES=k                    run k schedules
//	CANOE_CHAOS_NODES=m                        cluster size of every schedule
//	CANOE_CHAOS_OUT=dir                        keep node logs, data dirs, report.txt and
//	                                           porcupine visualizations in dir
//
// The seed of every schedule, its faults and a report (faults by kind, ops
// ok/failed/unknown, linearizability verdict, lost writes, longest time
// without a leader) are logged (go test -v). A failing schedule prints the
// exact replay command and the tail of every node's log.
//
// The suite needs Linux (/proc, SIGSTOP) and the whole 127.0.0.0/8 on lo;
// it skips when the node binary cannot be built.
package chaos
