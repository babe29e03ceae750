// Command demo is a replicated key-value store built on canoe, and the first
// program to run to see canoe work.
//
// With no arguments it starts a three-node cluster inside one process on
// 127.0.0.1 and serves, on each node, a small HTTP API
//
//	PUT    /kv/{key}   body = value (at most 1 MiB); any node accepts writes
//	GET    /kv/{key}   local read; ?consistent=true reads after a ReadBarrier
//	DELETE /kv/{key}
//	POST   /kv/{key}?cas=OLD   body = new value: compare-and-swap; answers 200
//	                   {"swapped": bool, "found": bool, "value": the value found}
//	                   (value_base64 for a value that is not UTF-8; no value
//	                   when the key did not exist, which never swaps)
//	POST   /kv/{key}/incr[?by=N]   add N (default 1) to the decimal int64
//	                   value, a missing key counting as 0; answers 200 with
//	                   the new value; a value that is not an integer, or a
//	                   sum outside int64, is a 400 that changes nothing
//	GET    /kv         every pair, as JSON
//	GET    /           a dashboard: the cluster, who replicates to whom,
//	                   writes/s and commit index per node, a timeline of
//	                   leader and membership changes, Stop and Start buttons
//	GET    /api/cluster    every member's role, suffrage and indexes, as JSON
//	GET    /api/dashboard  what the dashboard polls: the cluster, and the
//	                   history, events and keys since the cursors it sends
//
// A key is the rest of the path after /kv/, percent-decoded and otherwise
// taken as sent: a//b, ./x and ../x are keys like any other (send dot
// segments as %2E if your client removes them, as curl does without
// --path-as-is). Keys are 1 to 4096 bytes. A POST whose path ends in /incr
// increments; to cas a key that ends in "/incr", send its last slash as
// %2F.
//
// cas and incr answer what the store found or made when it applied the
// write (canoe's ProposeResult): any node answers, from its own copy of the
// store, and every node would answer the same. Other errors: 503 when there
// is no leader or the node is stopped, 504 when the write's outcome is
// unknown (it may have taken effect), 400 and 413 for bad requests, each
// with a JSON {"error": ...}.
//
// "demo node" runs one node per process, one process per machine:
//
//	demo node -id 1 -bind 10.0.0.1 -data /var/lib/kv -bootstrap
//	demo node -id 2 -bind 10.0.0.2 -data /var/lib/kv -join http://10.0.0.1:7001
//	demo node -id 3 -bind 10.0.0.3 -data /var/lib/kv -join http://10.0.0.1:7001
//
// or, with no founder, all three started with the same seeds (each with its
// own -id and -bind):
//
//	demo node -id 1 -bind 10.0.0.1 -data /var/lib/kv -expect 3 -join 10.0.0.1:7946,10.0.0.2:7946,10.0.0.3:7946
//
// A read replica gets every write and serves reads but never votes, so it
// adds reads without slowing writes (POST /peers/promote {"id":4} on any
// member's canoe API makes it a voter):
//
//	demo node -id 4 -bind 10.0.0.4 -data /var/lib/kv -join http://10.0.0.1:7001 -nonvoter
//
// Ctrl-C stops a node and it stays a member; with -leave-on-exit it leaves
// the cluster for good and deletes its raft data.
//
// Automatic backups: give every node
//
//	demo node ... -backup-dir /var/backups/kv -backup-every 1h -backup-keep 24
//
// and at every tick the node that leads writes a backup of the store
// (canoe's Node.Backup) into the directory, as
// canoe-backup-20260102T150405.000Z-1234.bak (the time it began, UTC, and
// the log index whose state it holds), through a temporary file that is
// verified and renamed into place; then the oldest beyond -backup-keep go
// (0 keeps them all). Followers skip the tick. A failed backup is logged
// and retried at the next tick. Restore one into a running cluster with
// "canoe snapshot restore FILE" (cmd/canoe). Every flag can also be set
// with a CANOE_* environment variable (-raft-port is CANOE_RAFT_PORT); a flag
// on the command line wins. Run "demo -h" and "demo node -h" for the full
// list.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, shut down cleanly; a second one kills the
	// process at once (the default behavior, which stop restores).
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// usageError is a problem with the command line.
type usageError struct{ error }

// run is the whole program: args without the program name, and the
// environment lookup for CANOE_* variables.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	if len(args) > 0 && args[0] == "node" {
		opt, err := parseNodeFlags(args[1:], stderr, lookupEnv)
		if err != nil {
			return err
		}
		return runNode(ctx, opt, stdout, stderr)
	}
	opt, err := parseLocalFlags(args, stderr, lookupEnv)
	if err != nil {
		return err
	}
	return runLocal(ctx, opt, stdout, stderr)
}

func parseLocalFlags(args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) (localOptions, error) {
	var opt localOptions
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&opt.DataDir, "data", "", "directory for the nodes' data, kept at exit; empty means a temporary directory removed at exit")
	fs.IntVar(&opt.HTTPPort, "http-port", 0, "demo HTTP port of node 1; nodes 2 and 3 use the next two ports; 0 picks free ports")
	fs.BoolVar(&opt.Verbose, "v", false, "debug logging (canoe and raft internals)")
	fs.StringVar(&opt.Secret, "secret", "", "the cluster `secret` (16, 24 or 32 bytes) that authenticates raft, gossip and canoe's API; empty means a random one for this run")
	usage := `Usage: demo [flags]          run a 3-node cluster in this process
       demo node [flags]     run one node (see demo node -h)

Starts three canoe nodes on 127.0.0.1, prints their addresses and a few curl
commands, and serves a key-value API and a dashboard on each until Ctrl-C.`
	if err := parseFlags(fs, args, usage, stderr, lookupEnv); err != nil {
		return opt, err
	}
	if opt.HTTPPort < 0 || opt.HTTPPort > 65533 {
		return opt, usageError{fmt.Errorf("-http-port %d is not a usable port", opt.HTTPPort)}
	}
	switch len(opt.Secret) {
	case 0:
		opt.Secret = randomSecret()
	case 16, 24, 32:
	default:
		return opt, usageError{fmt.Errorf("-secret is %d bytes; it must be 16, 24 or 32", len(opt.Secret))}
	}
	return opt, nil
}

// envName is the environment variable that sets a flag: -raft-port is
// CANOE_RAFT_PORT.
func envName(flagName string) string {
	return "CANOE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag not given on the command
// line from its CANOE_* environment variable.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags (each also read from the environment variable shown; a flag wins):\n", usage)
		fs.VisitAll(func(f *flag.Flag) {
			name, text := flag.UnquoteUsage(f)
			head := "  -" + f.Name
			if name != "" {
				head += " " + name
			}
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(stderr, "%s\n    \t%s\n    \t(default %s; env %s)\n", head, text, def, envName(f.Name))
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		env := envName(f.Name)
		if v, ok := lookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", env, v, err))
			}
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

func newLogger(w io.Writer, verbose bool) hclog.Logger {
	level := hclog.Info
	if verbose {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:              "demo",
		Level:             level,
		Output:            w,
		IndependentLevels: true,
	})
}

// canoeLogger is the logger handed to canoe: raft's and memberlist's INFO
// chatter is left out unless -v (the demo prints one line per cluster event
// from its observers instead).
func canoeLogger(l hclog.Logger, verbose bool) hclog.Logger {
	cl := l.Named("canoe")
	if !verbose {
		cl.SetLevel(hclog.Warn)
	}
	return cl
}

func portOK(p int) bool { return p >= 0 && p <= 65535 }

// randomSecret returns a random cluster secret of 32 hex digits.
func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b) // crypto/rand.Read never fails (Go >= 1.24)
	return hex.EncodeToString(b)
}
