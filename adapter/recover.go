package adapter

import "github.com/hashicorp/raft"

// ResetMembership replaces canoe's membership state with members, for a
// forced recovery (canoe.RecoverCluster), which writes a configuration of
// exactly these members, all voters, that no log entry carries:
//
//   - the replicated addresses become members' (and only theirs);
//   - every other member the adapter knew of, by address or by
//     configuration, is recorded as removed on purpose, so that discovery
//     never adds it back (a lost node that returns with its old DataDir
//     must not rejoin as itself);
//   - the applied index moves up to index and the term to term: index is
//     the last log entry the recovery keeps, and the entries after the last
//     one the FSM applied are raft no-ops, barriers or configurations,
//     which hold nothing for the FSM.
//
// It observes nothing (no PeerAdded or PeerRemoved): the recovery runs on a
// stopped node. It takes the lock Apply and Restore take, so it never runs
// while they do.
func (a *Adapter) ResetMembership(members []PeerMeta, index, term uint64) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	keep := make(map[uint64]bool, len(members))
	for _, m := range members {
		keep[m.ID] = true
	}
	for id := range a.peers {
		if !keep[id] {
			a.removed[id] = true
		}
	}
	for id := range a.servers {
		if !keep[id] {
			a.removed[id] = true
		}
	}
	a.peers = make(map[uint64]PeerMeta, len(members))
	a.servers = make(map[uint64]raft.ServerSuffrage, len(members))
	for _, m := range members {
		a.peers[m.ID] = m
		a.servers[m.ID] = raft.Voter
		delete(a.removed, m.ID)
	}
	if index > a.applied.Load() {
		a.applied.Store(index)
		a.lastTerm = term
		close(a.advanced)
		a.advanced = make(chan struct{})
	}
}
