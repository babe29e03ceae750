package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/canoe-raft/canoe/httpconfig"
)

// The online commands about membership and leadership.

func init() {
	register(&command{
		name: "peers", order: 10, online: true,
		summary: "list the members: ID, raft and API addresses, suffrage, leader, last contact",
		setup:   noFlags(runPeers),
	})
	register(&command{
		name: "status", order: 20, online: true,
		summary: "show the node's state, leader, term and indexes",
		setup:   noFlags(runStatus),
	})
	register(&command{
		name: "transfer", args: "[-to ID]", order: 30, online: true,
		summary: "hand leadership to member ID, or to a voter the leader picks",
		setup: func(fs *flag.FlagSet) runFunc {
			to := fs.Uint64("to", 0, "`ID` of the voter to lead; 0 lets the leader pick")
			return func(ctx context.Context, e *env, args []string) error { return runTransfer(ctx, e, args, *to) }
		},
	})
	register(&command{
		name: "remove", args: "ID", order: 40, online: true,
		summary: "remove member ID from the cluster (a node gone for good)",
		setup:   noFlags(runRemove),
	})
}

// noArgs refuses positional arguments.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// parseID parses a member ID argument.
func parseID(what, s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("%s %q is not a member ID (a nonzero decimal number)", what, s)
	}
	return id, nil
}

// member is one row of "peers".
type member struct {
	ID            uint64 `json:"id"`
	RaftAddress   string `json:"raft_address"`
	APIAddress    string `json:"api_address,omitempty"`
	Suffrage      string `json:"suffrage"`
	Leader        bool   `json:"leader"`
	LastContactMs *int64 `json:"last_contact_ms,omitempty"`
}

// peersOutput is what "peers -json" prints.
type peersOutput struct {
	// ViewOf is the node whose view of the membership this is: the leader
	// when it answered, else the node at -addr.
	ViewOf   uint64   `json:"view_of"`
	LeaderID uint64   `json:"leader_id"`
	Members  []member `json:"members"`
}

func runPeers(ctx context.Context, e *env, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	st, err := e.client.Status(ctx, e.base)
	if err != nil {
		return e.explain(err, e.base)
	}
	// The leader's view carries the last contacts; ask it when the node at
	// -addr is a follower.
	if st.LeaderID != 0 && st.LeaderID != st.ID {
		url := e.leaderURL(st, st.LeaderID)
		var lst httpconfig.Status
		switch {
		case url == "":
			err = errors.New("its API address is not known")
		default:
			lst, err = e.client.Status(ctx, url)
		}
		if err == nil && lst.ID == st.LeaderID && lst.LeaderID == lst.ID {
			st = lst
		} else {
			if err == nil {
				err = fmt.Errorf("it answered as node %d with leader %d", lst.ID, lst.LeaderID)
			}
			fmt.Fprintf(e.stderr, "canoe peers: leader %d did not answer (%v); showing node %d's view, without last contacts\n", st.LeaderID, e.explain(err, url), st.ID)
		}
	}
	out := peersOutput{ViewOf: st.ID, LeaderID: st.LeaderID, Members: make([]member, 0, len(st.Members))}
	for _, m := range st.Members {
		row := member{ID: m.ID, Suffrage: m.Suffrage, Leader: m.ID == st.LeaderID, LastContactMs: m.LastContactMs}
		if m.Host != "" && m.RaftPort != 0 {
			row.RaftAddress = net.JoinHostPort(m.Host, strconv.Itoa(m.RaftPort))
		}
		if m.Host != "" && m.ConfigPort != 0 {
			row.APIAddress = net.JoinHostPort(m.Host, strconv.Itoa(m.ConfigPort))
		}
		out.Members = append(out.Members, row)
	}
	if e.json {
		return e.printJSON(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tAPI ADDRESS\tSUFFRAGE\tLEADER\tLAST CONTACT")
	for _, m := range out.Members {
		leader := ""
		if m.Leader {
			leader = "*"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.ID, orDash(m.RaftAddress), orDash(m.APIAddress), orDash(m.Suffrage), orDash(leader), lastContact(m))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.LeaderID == 0 {
		fmt.Fprintf(e.stdout, "no leader known to node %d\n", st.ID)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lastContact formats a member's last contact with the leader.
func lastContact(m member) string {
	if m.LastContactMs == nil {
		return "-"
	}
	d := time.Duration(*m.LastContactMs) * time.Millisecond
	if d < time.Second {
		return d.String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func runStatus(ctx context.Context, e *env, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	st, err := e.client.Status(ctx, e.base)
	if err != nil {
		return e.explain(err, e.base)
	}
	if e.json {
		return e.printJSON(st)
	}
	voters := 0
	for _, m := range st.Members {
		if m.Suffrage == httpconfig.Voter {
			voters++
		}
	}
	leader := "none known"
	if st.LeaderID != 0 {
		leader = strconv.FormatUint(st.LeaderID, 10)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, row := range [][2]string{
		{"node", strconv.FormatUint(st.ID, 10)},
		{"state", st.State},
		{"leader", leader},
		{"term", strconv.FormatUint(st.Term, 10)},
		{"commit index", strconv.FormatUint(st.CommitIndex, 10)},
		{"applied index", strconv.FormatUint(st.AppliedIndex, 10)},
		{"last index", strconv.FormatUint(st.LastIndex, 10)},
		{"members", fmt.Sprintf("%d (%d voters)", len(st.Members), voters)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func runRemove(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one member ID, got %d arguments", len(args))
	}
	id, err := parseID("ID", args[0])
	if err != nil {
		return err
	}
	if err := e.client.RemovePeer(ctx, e.base, id); err != nil {
		var se *httpconfig.StatusError
		if errors.As(err, &se) && isPeerNotFound(se) {
			return fmt.Errorf("%d is not a member (%s)", id, se.Message)
		}
		return e.explain(err, e.base)
	}
	if e.json {
		return e.printJSON(struct {
			Removed uint64 `json:"removed"`
		}{id})
	}
	fmt.Fprintf(e.stdout, "removed member %d\n", id)
	return nil
}

// transferOutput is what "transfer -json" prints.
type transferOutput struct {
	PreviousLeaderID uint64 `json:"previous_leader_id"`
	LeaderID         uint64 `json:"leader_id"`
}

func runTransfer(ctx context.Context, e *env, args []string, to uint64) error {
	if err := noArgs(args); err != nil {
		return err
	}
	// Only the leader transfers: find it, and follow a 421 that names
	// another leader (leadership may move meanwhile), at most twice.
	st, err := e.client.Status(ctx, e.base)
	if err != nil {
		return e.explain(err, e.base)
	}
	leader, url := st.LeaderID, ""
	for attempt := 0; ; attempt++ {
		if leader == 0 {
			return fmt.Errorf("node %d knows no leader: there is nothing to transfer (see canoe status)", st.ID)
		}
		if url = e.leaderURL(st, leader); url == "" {
			return fmt.Errorf("the API address of leader %d is not known to node %d; run transfer with -addr set to the leader's API", leader, st.ID)
		}
		var now uint64
		now, err = e.client.TransferLeadership(ctx, url, to)
		var se *httpconfig.StatusError
		switch {
		case err == nil:
			return e.transferDone(leader, now, to)
		case errors.As(err, &se) && !se.Foreign && errors.Is(se, httpconfig.ErrNotLeader) && se.LeaderID != 0 && se.LeaderID != leader && attempt < 2:
			leader = se.LeaderID
			if st, err = e.client.Status(ctx, url); err != nil {
				return e.explain(err, url)
			}
			continue
		case errors.As(err, &se) && isPeerNotFound(se):
			return fmt.Errorf("%d is not a member (%s)", to, se.Message)
		case errors.As(err, &se) && !se.Foreign && errors.Is(se, httpconfig.ErrInvalid):
			return fmt.Errorf("leader %d cannot hand over: %s", leader, se.Message)
		}
		return e.explain(err, url)
	}
}

// leaderURL returns the API URL of leader as node st sees it: -addr when
// st is the leader.
func (e *env) leaderURL(st httpconfig.Status, leader uint64) string {
	if leader == st.ID {
		return e.base
	}
	for _, m := range st.Members {
		if m.ID == leader {
			return e.apiURL(m)
		}
	}
	return ""
}

func (e *env) transferDone(previous, now, to uint64) error {
	if e.json {
		return e.printJSON(transferOutput{PreviousLeaderID: previous, LeaderID: now})
	}
	switch {
	case to != 0 && to == previous:
		fmt.Fprintf(e.stdout, "%d already leads\n", previous)
	case now == 0:
		fmt.Fprintf(e.stdout, "leader %d stepped down; the new leader is not known yet (see canoe status)\n", previous)
	default:
		fmt.Fprintf(e.stdout, "leadership moved from %d to %d\n", previous, now)
	}
	return nil
}
