package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/canoe-raft/canoe/canoe"
)

// recover is offline: it works on a stopped node's data directory.

func init() {
	register(&command{
		name: "recover", args: "-data DIR -members ID@HOST:RAFTPORT[,...]", order: 90,
		summary: "offline, after losing quorum: a stopped node recovers at its next start with exactly these members",
		setup: func(fs *flag.FlagSet) runFunc {
			data := fs.String("data", "", "the stopped node's data `directory` (its DataDir, the demo's -data)")
			members := fs.String("members", "", "the members to keep, comma-separated `ID@HOST:RAFTPORT` (as canoe peers prints them), this node among them")
			return func(ctx context.Context, e *env, args []string) error { return runRecover(e, args, *data, *members) }
		},
	})
}

// recoverOutput is what "recover -json" prints.
type recoverOutput struct {
	Request string         `json:"request"`
	Members []recoveryPeer `json:"members"`
}

type recoveryPeer struct {
	ID          uint64 `json:"id"`
	RaftAddress string `json:"raft_address"`
}

func runRecover(e *env, args []string, data, members string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	if data == "" {
		return usagef("-data is required: the stopped node's data directory")
	}
	if strings.TrimSpace(members) == "" {
		return usagef("-members is required: ID@HOST:RAFTPORT of each member to keep, this node among them")
	}
	peers, err := canoe.ParseMembers(members)
	if err != nil {
		return usageError{fmt.Errorf("-members: %w", err)}
	}
	if err := canoe.ScheduleRecovery(data, peers); err != nil {
		switch {
		case errors.Is(err, canoe.ErrDataDirInUse):
			return fmt.Errorf("%w: stop the node first (recover works on a stopped node's data)", err)
		case errors.Is(err, canoe.ErrInvalidPeer):
			return usageError{fmt.Errorf("-members: %w", err)}
		}
		return err
	}
	out := recoverOutput{Request: canoe.RecoveryFile(data)}
	for _, p := range peers {
		out.Members = append(out.Members, recoveryPeer{ID: p.ID, RaftAddress: net.JoinHostPort(p.Host, strconv.Itoa(p.RaftPort))})
	}
	if e.json {
		return e.printJSON(out)
	}
	fmt.Fprintf(e.stdout, "wrote the recovery request %s\n", out.Request)
	for _, m := range out.Members {
		fmt.Fprintf(e.stdout, "  member %d at %s\n", m.ID, m.RaftAddress)
	}
	fmt.Fprint(e.stdout, `
Next: start the node as usual on this data directory. At start it rewrites its
membership to these members (keeping every entry it holds), deletes the request
and logs what it did; with every listed member started, they elect a leader.
Lost nodes come back only with an empty data directory, joining as new nodes.
`)
	return nil
}
