// Package observer delivers typed observations about a canoe node to user
// code without ever blocking raft.
//
// An observation is one of the event structs in this package (LeaderChanged,
// StateChanged, PeerAdded, PeerRemoved, PeerPromoted, SnapshotTaken,
// SnapshotRestored, EntryApplied, HeartbeatFailed, HeartbeatResumed). A user
// creates an Observer around a buffered channel and an optional FilterFn, and
// registers it with the node, which keeps the observers in a Registry:
//
//	ch := make(chan observer.Observation, 64)
//	o := observer.New(ch, func(ob observer.Observation) bool {
//		_, ok := ob.(observer.LeaderChanged)
//		return ok
//	})
//	reg.Register(o)
//	defer reg.Unregister(o)
//	for ob := range ch {
//		lc := ob.(observer.LeaderChanged)
//		fmt.Println("leader is now", lc.LeaderID)
//	}
//
// Delivery is best effort. Registry.Notify never blocks: when an observer's
// channel is full the observation is dropped for that observer and its
// Dropped counter grows. Size the channel for bursts and read it promptly;
// compare Dropped before and after a period to detect losses.
//
// Filters run synchronously on the goroutine that calls Notify, which in canoe
// is on the path of raft's own event processing. A filter must be fast, must
// not block and must not call back into the node. A filter that panics is
// recovered; the panic counts as a drop for that observer.
//
// Registry.Active is a single atomic load, so callers on hot paths (such as
// the apply loop emitting EntryApplied) can skip building an observation when
// nobody listens.
package observer
