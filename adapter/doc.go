// Package adapter bridges canoe's FSM to hashicorp/raft.
//
// It implements raft.FSM and raft.BatchingFSM: each raft log command starts
// with a Kind byte (a single proposal, a batch of proposals coalesced by
// group commit, or canoe's own member metadata), and every proposal of a
// batch is applied in order with its own result. It keeps what all nodes
// must agree on besides the user's state: the members' addresses, the last
// applied configuration and the applied index, which it writes into every
// snapshot next to the user's bytes (streamed for a StreamingFSM), and it
// builds the snapshot raft restores a backup from. It also turns raft
// observations into canoe observations.
//
// Nothing here starts goroutines; raft calls in on its own.
package adapter
