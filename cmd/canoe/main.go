// Command canoe is the operator's tool for a canoe cluster: it speaks a
// node's canoe HTTP API (the one on NodeConfig.ConfigurationPort, 7001 in
// the demo) for the daily tasks, and works on a stopped node's data
// directory for a recovery after losing quorum.
//
//	canoe peers                     members: ID, raft and API addresses, suffrage, leader,
//	                                last contact with the leader
//	canoe status                    the node's state, term, indexes and leader
//	canoe remove ID                 remove member ID from the cluster
//	canoe transfer [-to ID]         hand leadership to ID (or to a voter the leader picks)
//	canoe snapshot save FILE        save a backup of the cluster's state (any member serves it)
//	canoe snapshot restore FILE     replace the whole cluster's state with a backup
//	canoe snapshot inspect FILE     offline: verify a backup and show what it holds
//	canoe recover -data DIR -members ID@HOST:RAFTPORT[,...]
//	                                offline: make a stopped node recover at its next
//	                                start with exactly these members
//
// Install it with
//
//	go install github.com/canoe-raft/canoe/cmd/canoe@latest
//
// Connection flags (every command but recover and snapshot inspect), each
// also read from the environment variable shown; a flag wins:
//
//	-addr URL        the node's API, http(s)://host:port   CANOE_ADDR (default http://127.0.0.1:7001)
//	-secret S        the cluster secret (16, 24 or 32 bytes) CANOE_SECRET (prefer it: flags show in ps)
//	-cluster-id N    the cluster ID the keys are bound to    CANOE_CLUSTER_ID (default canoe's, 256)
//	-ca FILE         CA certificates for an https API       CANOE_CA
//	-cert, -key FILE a client certificate, if the API asks  CANOE_CERT, CANOE_KEY
//	-timeout D       bound on the whole command (default 30s; 1h for snapshot save and restore)
//
// Backups: "snapshot save FILE" writes the backup a node streams (GET
// /snapshot) to a temporary file beside FILE, verifies it (format, sizes,
// SHA-256) and only then renames it to FILE: a save that fails leaves FILE
// as it was. "snapshot restore FILE" verifies the file first and refuses a
// damaged one without contacting the node; the node checks it again and
// replaces the state of the whole cluster (POST /snapshot). "snapshot
// inspect FILE" reads and verifies a file with no node. save, restore and
// inspect draw a progress bar on stderr (bytes done / total) when stderr
// is a terminal; -progress always or never decides instead.
//
// Every command prints a human-readable answer, or with -json one JSON
// document for scripts. Exit codes: 0 the command did what it says; 1 it
// failed (the node is unreachable, refused the secret, is not a canoe
// node, or refused or failed the operation: the message says which); 2 the
// command line is wrong (unknown command or flag, bad argument).
//
// Each command lives in a file of its own (a family of subcommands, such
// as snapshot save, restore and inspect, in one file) and registers itself
// in init with register; a family's commands are registered under two-word
// names ("snapshot save"), so that each may be online or offline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageError is a problem with the command line (exit code 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// command is one subcommand of canoe.
type command struct {
	name    string
	args    string // synopsis after the name, e.g. "ID" or "[-to ID]"
	summary string // one line for the command list
	order   int    // place in the command list
	// online commands get the connection flags (-addr, -secret, ...) and
	// a client (env.client) before they run.
	online bool
	// timeout is the default of an online command's -timeout; 0 means
	// defaultTimeout.
	timeout time.Duration
	// setup adds the command's own flags to fs, for one run, and returns
	// the function that does the command with the positional arguments
	// left once the flags are parsed.
	setup func(fs *flag.FlagSet) runFunc
}

// runFunc does a command.
type runFunc func(ctx context.Context, e *env, args []string) error

// noFlags is the setup of a command without flags of its own.
func noFlags(run runFunc) func(*flag.FlagSet) runFunc {
	return func(*flag.FlagSet) runFunc { return run }
}

// commands is every command, by name; each file registers its own.
var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("canoe: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if c, _ := lookup(args[1:]); c != nil {
			newEnv(c, stdout, stderr, lookupEnv).fs.Usage()
			return exitOK
		}
		usage(stdout)
		return exitOK
	}
	c, rest := lookup(args)
	if c == nil {
		fmt.Fprintf(stderr, "canoe: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		usage(stderr)
		return exitUsage
	}
	e := newEnv(c, stdout, stderr, lookupEnv)
	err := e.do(ctx, rest)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "canoe %s: %v\n(run \"canoe %s -h\" for its flags)\n", c.name, err, c.name)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "canoe %s: %v\n", c.name, err)
		return exitFailed
	}
}

// lookup finds the command args start with: a family's two-word name
// ("snapshot save") first, then a one-word name. It returns the arguments
// after the name; nil when there is no such command.
func lookup(args []string) (*command, []string) {
	if len(args) > 1 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c, args[2:]
		}
	}
	if len(args) > 0 {
		if c, ok := commands[args[0]]; ok {
			return c, args[1:]
		}
	}
	return nil, nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: canoe COMMAND [flags] [arguments]

canoe operates a canoe cluster through a node's HTTP API (-addr, CANOE_ADDR;
sign with CANOE_SECRET when the cluster has a secret).

Commands:
`)
	list := make([]*command, 0, len(commands))
	for _, c := range commands {
		list = append(list, c)
	}
	slices.SortFunc(list, func(a, b *command) int {
		if a.order != b.order {
			return a.order - b.order
		}
		return strings.Compare(a.name, b.name)
	})
	for _, c := range list {
		synopsis := strings.TrimSpace(c.name + " " + c.args)
		if len(synopsis) > 22 {
			fmt.Fprintf(w, "  %s\n  %-22s %s\n", synopsis, "", c.summary)
			continue
		}
		fmt.Fprintf(w, "  %-22s %s\n", synopsis, c.summary)
	}
	fmt.Fprint(w, `
Every command takes -json for output meant for scripts. Run "canoe COMMAND -h"
for a command's flags. Exit codes: 0 done, 1 failed, 2 bad command line.
`)
}
