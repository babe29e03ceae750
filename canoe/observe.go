package canoe

import (
	"strconv"

	"github.com/hashicorp/raft"

	"github.com/canoe-raft/canoe/observer"
)

// observe is the observation goroutine: it turns raft's observations into
// canoe's, fans them out to the registered observers (never blocking), and
// wakes whatever waits for a leader.
func (n *Node) observe(rt *runtime, ch <-chan raft.Observation) {
	for {
		select {
		case o := <-ch:
			n.handleObservation(rt, o)
		case <-rt.stop:
			return
		}
	}
}

func (n *Node) handleObservation(rt *runtime, o raft.Observation) {
	ev, ok := n.translator.Translate(o)
	if ok {
		n.observers.Notify(ev)
	}
	switch ev := ev.(type) {
	case observer.LeaderChanged:
		n.leaderBC.fire()
		n.metrics.leaderChanges.Inc()
		if ev.LeaderID == 0 {
			n.logger.Info("no leader", "term", ev.Term)
		} else {
			n.logger.Info("leader changed", "leader", strconv.FormatUint(ev.LeaderID, 10), "term", ev.Term)
		}
		kick(rt)
	case observer.StateChanged:
		if ev.To == observer.Leader {
			rt.trans.Reset() // what followers acknowledged to an earlier term may be gone
		}
		if ev.To == observer.Shutdown || ev.To == observer.Leader {
			kick(rt)
		}
	}
}
