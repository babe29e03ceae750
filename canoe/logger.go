package canoe

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Logger is the logger canoe, raft and memberlist write to. The original
// canoe cloned etcd's logger interface; hclog is what raft and memberlist
// speak natively, so no adapter loses levels or fields.
type Logger = hclog.Logger

// DefaultLogger is used when NodeConfig.Logger is nil: a logger named
// "canoe" at INFO level on stderr.
var DefaultLogger Logger = hclog.New(&hclog.LoggerOptions{
	Name:   "canoe",
	Level:  hclog.Info,
	Output: os.Stderr,
})

// raftLogRules say at which level canoe passes on the raft messages that
// describe expected, transient conditions of a healthy cluster, which raft
// logs at WARN or ERROR: a new or restarted member catching up, the
// replication a new leader corrects, an election that a leader change (which
// canoe logs itself) makes, a vote refused because a leader exists, a node
// waiting to be added or without a vote. The rest of raft's messages keep
// their level.
var raftLogRules = map[string]hclog.Level{
	"failed to get previous log":                                 hclog.Debug,
	"appendEntries rejected, sending older logs":                 hclog.Debug,
	"previous log term mis-match":                                hclog.Debug,
	"peer has newer term, stopping replication":                  hclog.Debug,
	"rejecting vote request since we have a leader":              hclog.Debug,
	"rejecting pre-vote request since we have a leader":          hclog.Debug,
	"rejecting vote request since our last index is greater":     hclog.Debug,
	"rejecting pre-vote request since our last index is greater": hclog.Debug,
	"rejecting vote request since our last term is greater":      hclog.Debug,
	"rejecting pre-vote request since our last term is greater":  hclog.Debug,
	"duplicate requestVote from":                                 hclog.Debug,
	"skipping application of old log":                            hclog.Debug,
	"heartbeat timeout reached, not part of a stable configuration or a non-voter, not triggering a leader election": hclog.Debug,
	"no known peers, aborting election":                   hclog.Debug, // a joining node, not added yet
	"not part of stable configuration, aborting election": hclog.Info,  // a read replica, or a removed node
	"heartbeat timeout reached, starting election":        hclog.Info,
	"Election timeout reached, restarting election":       hclog.Info,
	"new leader elected, stepping down":                   hclog.Info,
	"clearing log suffix":                                 hclog.Info,
}

// raftPeerMessages are raft's messages about a peer it cannot reach: a
// stopped, crashed or partitioned member makes raft log them many times a
// second. canoe passes on the first for each peer at INFO, once a minute,
// and the rest at DEBUG; the metrics and observations (HeartbeatFailed)
// tell the whole story.
var raftPeerMessages = map[string]bool{
	"failed to appendEntries to":       true,
	"failed to heartbeat to":           true,
	"failed to make requestVote RPC":   true,
	"failed to contact":                true,
	"failed to send snapshot to":       true,
	"installSnapshot rejected to":      true,
	"failed to pipeline appendEntries": true,
}

// peerLogEvery is how often an unreachable peer is reported at INFO.
const peerLogEvery = time.Minute

// raftLogger is the logger canoe gives raft: it applies raftLogRules and
// raftPeerMessages, and keeps doing so in the loggers derived from it.
type raftLogger struct {
	hclog.Logger
	peers *peerLog
}

type peerLog struct {
	mu   sync.Mutex // guards last
	last map[string]time.Time
}

func newRaftLogger(l hclog.Logger) hclog.Logger {
	return &raftLogger{Logger: l, peers: &peerLog{last: make(map[string]time.Time)}}
}

// level returns the level msg is logged at.
func (l *raftLogger) level(level hclog.Level, msg string, args []any) hclog.Level {
	if level < hclog.Warn {
		return level
	}
	if to, ok := raftLogRules[msg]; ok {
		return to
	}
	if msg == "failed to decode incoming command" && connectionLost(errorOf(args)) {
		return hclog.Debug // this node is stopping, or the peer went away
	}
	if !raftPeerMessages[msg] {
		return level
	}
	key := msg + " " + peerOf(args)
	now := time.Now()
	l.peers.mu.Lock()
	defer l.peers.mu.Unlock()
	if at, ok := l.peers.last[key]; ok && now.Sub(at) < peerLogEvery {
		return hclog.Debug
	}
	if len(l.peers.last) > 1024 {
		clear(l.peers.last)
	}
	l.peers.last[key] = now
	return hclog.Info
}

// errorOf returns the error a raft message carries.
func errorOf(args []any) error {
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "error" {
			err, _ := args[i+1].(error)
			return err
		}
	}
	return nil
}

// connectionLost reports whether err says a raft connection ended (this
// node's transport shut down, the peer closed or reset it) rather than that
// it carried something malformed.
func connectionLost(err error) bool {
	return err != nil && (errors.Is(err, raft.ErrTransportShutdown) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

// peerOf returns the peer a raft message is about.
func peerOf(args []any) string {
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "peer", "target", "server-id":
			return fmt.Sprint(args[i+1])
		}
	}
	return ""
}

func (l *raftLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(l.level(level, msg, args), msg, args...)
}

func (l *raftLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *raftLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *raftLogger) With(args ...any) hclog.Logger {
	return &raftLogger{Logger: l.Logger.With(args...), peers: l.peers}
}

func (l *raftLogger) Named(name string) hclog.Logger {
	return &raftLogger{Logger: l.Logger.Named(name), peers: l.peers}
}

func (l *raftLogger) ResetNamed(name string) hclog.Logger {
	return &raftLogger{Logger: l.Logger.ResetNamed(name), peers: l.peers}
}
