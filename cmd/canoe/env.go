package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

const (
	defaultAddr    = "http://127.0.0.1:7001"
	defaultTimeout = 30 * time.Second
)

// envVars maps the connection flags to the environment variables that set
// them when they are not on the command line.
var envVars = map[string]string{
	"addr":       "CANOE_ADDR",
	"secret":     "CANOE_SECRET",
	"cluster-id": "CANOE_CLUSTER_ID",
	"ca":         "CANOE_CA",
	"cert":       "CANOE_CERT",
	"key":        "CANOE_KEY",
}

// env is one run of a command: its flags, output and, for online
// commands, the client of the node's API.
type env struct {
	cmd            *command
	run            runFunc
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	fs             *flag.FlagSet
	json           bool

	// Connection flags (online commands).
	addr             string
	secret           string
	clusterID        uint64
	ca, cert, key    string
	timeout          time.Duration
	base             string // addr, checked, without a trailing slash
	scheme           string // of base: http or https
	client           *httpconfig.Client
	secretFromEnvVar bool
}

func newEnv(c *command, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) *env {
	e := &env{cmd: c, stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
	fs := flag.NewFlagSet("canoe "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&e.json, "json", false, "print one JSON document (for scripts) instead of text")
	if c.online {
		fs.StringVar(&e.addr, "addr", defaultAddr, "`URL` of a node's canoe API (its ConfigurationPort), http(s)://host:port")
		fs.StringVar(&e.secret, "secret", "", "the cluster `secret` (16, 24 or 32 bytes) that signs every request; prefer CANOE_SECRET, flags show in ps")
		fs.Uint64Var(&e.clusterID, "cluster-id", 0, "the cluster `ID` the secret's keys are bound to; 0 means canoe's default (256)")
		fs.StringVar(&e.ca, "ca", "", "PEM `file` of the CA certificates that sign an https node's certificate")
		fs.StringVar(&e.cert, "cert", "", "PEM `file` of a client certificate, for an API that asks for one (with -key)")
		fs.StringVar(&e.key, "key", "", "PEM `file` of the client certificate's key")
		timeout := defaultTimeout
		if c.timeout > 0 {
			timeout = c.timeout
		}
		fs.DurationVar(&e.timeout, "timeout", timeout, "give up after this `duration`")
	}
	e.run = c.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: canoe %s\n\n%s\n\nFlags:\n", strings.TrimSpace(c.name+" [flags] "+c.args), c.summary)
		fs.VisitAll(func(f *flag.Flag) {
			name, text := flag.UnquoteUsage(f)
			head := "  -" + f.Name
			if name != "" {
				head += " " + name
			}
			extra := ""
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				extra = "default " + f.DefValue
			}
			if v, ok := envVars[f.Name]; ok && c.online {
				extra = strings.TrimPrefix(extra+"; env "+v, "; ")
			}
			if extra != "" {
				text += " (" + extra + ")"
			}
			fmt.Fprintf(stderr, "%s\n    \t%s\n", head, text)
		})
	}
	e.fs = fs
	return e
}

// do parses args (flags may come before, between and after the positional
// arguments), connects an online command and runs it.
func (e *env) do(ctx context.Context, args []string) error {
	pos, err := e.parse(args)
	if err != nil {
		return err
	}
	if !e.cmd.online {
		return e.run(ctx, e, pos)
	}
	if err := e.connect(); err != nil {
		return err
	}
	defer e.client.Close()
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	return e.run(ctx, e, pos)
}

func (e *env) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := e.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = e.fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if !e.cmd.online {
		return pos, nil
	}
	given := map[string]bool{}
	e.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for name, v := range envVars {
		val, ok := e.lookupEnv(v)
		if given[name] || !ok || val == "" {
			continue
		}
		if err := e.fs.Set(name, val); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %v", v, val, err))
		}
		if name == "secret" {
			e.secretFromEnvVar = true
		}
	}
	if len(errs) > 0 {
		return nil, usageError{errors.Join(errs...)}
	}
	return pos, nil
}

// connect checks the connection flags and makes the client.
func (e *env) connect() error {
	addr := strings.TrimSuffix(e.addr, "/")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := httpconfig.ParseBaseURL(addr)
	if err != nil {
		var be *httpconfig.BaseURLError
		if errors.As(err, &be) {
			return usagef("-addr %q: %s (want http(s)://host:port of a node's canoe API)", e.addr, be.Reason)
		}
		return usagef("-addr %q: %v", e.addr, err)
	}
	e.base, e.scheme = u.String(), u.Scheme
	switch n := len(e.secret); n {
	case 0, 16, 24, 32:
	default:
		return usagef("the cluster secret (%s) is %d bytes; a canoe cluster secret is 16, 24 or 32", e.secretSource(), n)
	}
	if e.timeout <= 0 {
		return usagef("-timeout %v must be positive", e.timeout)
	}
	clusterID := e.clusterID
	if clusterID == 0 {
		clusterID = canoe.DefaultClusterID
	}
	tlsConfig, err := e.tlsConfig()
	if err != nil {
		return err
	}
	e.client = httpconfig.NewClient(tlsConfig, []byte(e.secret), clusterID)
	return nil
}

func (e *env) secretSource() string {
	if e.secretFromEnvVar {
		return "CANOE_SECRET"
	}
	return "-secret"
}

// tlsConfig builds the client's TLS configuration from -ca, -cert and
// -key; nil when none is given.
func (e *env) tlsConfig() (*tls.Config, error) {
	if e.ca == "" && e.cert == "" && e.key == "" {
		return nil, nil
	}
	if e.scheme != "https" {
		return nil, usagef("-ca, -cert and -key are for an https -addr, and -addr is %s", e.base)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.ca != "" {
		pem, err := os.ReadFile(e.ca)
		if err != nil {
			return nil, usagef("-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("-ca %s holds no PEM certificate", e.ca)
		}
		cfg.RootCAs = pool
	}
	if (e.cert == "") != (e.key == "") {
		return nil, usagef("-cert and -key go together")
	}
	if e.cert != "" {
		pair, err := tls.LoadX509KeyPair(e.cert, e.key)
		if err != nil {
			return nil, usagef("-cert/-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// apiURL returns the base URL of a member's API, "" when its port is not
// known.
func (e *env) apiURL(p httpconfig.Peer) string {
	if p.ConfigPort == 0 || p.Host == "" {
		return ""
	}
	return e.scheme + "://" + net.JoinHostPort(p.Host, strconv.Itoa(p.ConfigPort))
}

// isNoRoute reports whether se is canoe's answer for a path it does not
// serve (a 404 that is not ErrPeerNotFound's).
func isNoRoute(se *httpconfig.StatusError) bool {
	return se.Code == http.StatusNotFound && strings.HasPrefix(se.Message, "no route for")
}

// isPeerNotFound reports whether se is canoe's answer for an ID that is
// not a member.
func isPeerNotFound(se *httpconfig.StatusError) bool {
	return !se.Foreign && se.Code == http.StatusNotFound && strings.Contains(se.Message, "peer not found")
}

// printJSON writes v as indented JSON.
func (e *env) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(append(b, '\n'))
	return err
}

// explain turns an error from the node's API at base into one that says
// what went wrong and what to check.
func (e *env) explain(err error, base string) error {
	var se *httpconfig.StatusError
	var op *net.OpError
	var certErr *tls.CertificateVerificationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.Foreign:
		return fmt.Errorf("%s is not a canoe node's API: it answered %d %s: %q (is -addr the node's canoe API port, its ConfigurationPort, and not another service?)",
			base, se.Code, http.StatusText(se.Code), se.Message)
	case errors.As(err, &se) && se.Code == 401:
		if e.secret == "" {
			return fmt.Errorf("%s requires a signed request: set the cluster secret in CANOE_SECRET (node's answer: %s)", base, se.Message)
		}
		return fmt.Errorf("%s refused the signature: %s (check that %s and the cluster ID, -cluster-id or CANOE_CLUSTER_ID, are the cluster's)",
			base, se.Message, e.secretSource())
	case errors.As(err, &se) && isNoRoute(se):
		return fmt.Errorf("%s: %s (the node runs a canoe without this operation)", base, se.Message)
	case errors.As(err, &se) && se.Code == http.StatusNotFound && !isPeerNotFound(se):
		// canoe answers 404 only for an unknown member or path.
		return fmt.Errorf("%s is not a canoe node's API: it answered 404 Not Found: %q (is -addr the node's canoe API port, its ConfigurationPort, and not another service?)",
			base, se.Message)
	case errors.As(err, &se):
		return fmt.Errorf("%s answered %d %s: %s", base, se.Code, http.StatusText(se.Code), se.Message)
	case errors.Is(err, httpconfig.ErrUnexpectedAnswer):
		return fmt.Errorf("%s is not a canoe node's API: %v (is -addr the node's canoe API port, its ConfigurationPort?)", base, err)
	case errors.As(err, &certErr):
		return fmt.Errorf("%s: the node's TLS certificate is not trusted: %v (give its CA with -ca or CANOE_CA)", base, certErr.Err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer within -timeout %v", base, e.timeout)
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("cannot reach a canoe node at %s: %v (is the node running, and is -addr or CANOE_ADDR its canoe API address?)", base, op.Err)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%s answers plain HTTP: use an http:// -addr", base)
	}
	return fmt.Errorf("%s: %v", base, err)
}
