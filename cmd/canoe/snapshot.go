package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

// The snapshot family: backups of the whole cluster's state. save and
// restore speak a node's GET and POST /snapshot; inspect is offline.

func init() {
	register(&command{
		name: "snapshot save", args: "FILE", order: 50, online: true, timeout: httpconfig.DefaultSnapshotTimeout,
		summary: "save a backup of the cluster's state to FILE (any member serves it)",
		setup: func(fs *flag.FlagSet) runFunc {
			mode := addProgressFlag(fs)
			return func(ctx context.Context, e *env, args []string) error { return runSave(ctx, e, args, *mode) }
		},
	})
	register(&command{
		name: "snapshot restore", args: "FILE", order: 51, online: true, timeout: httpconfig.DefaultSnapshotTimeout,
		summary: "replace the whole cluster's state with the backup in FILE",
		setup: func(fs *flag.FlagSet) runFunc {
			mode := addProgressFlag(fs)
			return func(ctx context.Context, e *env, args []string) error { return runRestore(ctx, e, args, *mode) }
		},
	})
	register(&command{
		name: "snapshot inspect", args: "FILE", order: 52,
		summary: "offline: verify the backup in FILE and show what it holds",
		setup: func(fs *flag.FlagSet) runFunc {
			mode := addProgressFlag(fs)
			return func(_ context.Context, e *env, args []string) error { return runInspect(e, args, *mode) }
		},
	})
}

// oneFile returns the FILE argument.
func oneFile(args []string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", usagef("want exactly one FILE, got %d arguments", len(args))
	}
	return args[0], nil
}

// backupOutput describes a backup: what "snapshot inspect -json" prints,
// and "snapshot save -json" and "snapshot restore -json" with their own
// fields.
type backupOutput struct {
	File      string         `json:"file"`
	Version   int            `json:"format_version"`
	ClusterID uint64         `json:"cluster_id"`
	NodeID    uint64         `json:"node_id"`
	Index     uint64         `json:"index"`
	Term      uint64         `json:"term"`
	Created   time.Time      `json:"created"`
	Size      int64          `json:"size"`
	StateSize int64          `json:"state_size"`
	SHA256    string         `json:"sha256"`
	Members   []backupMember `json:"members"`

	// save
	SavedFrom string  `json:"saved_from,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"`
	// restore
	RestoredThrough string `json:"restored_through,omitempty"`
}

type backupMember struct {
	ID          uint64 `json:"id"`
	RaftAddress string `json:"raft_address,omitempty"`
	APIAddress  string `json:"api_address,omitempty"`
	Suffrage    string `json:"suffrage"`
}

func describeBackup(file string, info canoe.BackupInfo) backupOutput {
	out := backupOutput{
		File: file, Version: info.Version, ClusterID: info.ClusterID, NodeID: info.NodeID, Index: info.Index,
		Term: info.Term, Created: info.Created.UTC(), Size: info.Size, StateSize: info.StateSize,
		SHA256: hex.EncodeToString(info.SHA256[:]), Members: make([]backupMember, 0, len(info.Members)),
	}
	for _, p := range info.Members {
		m := backupMember{ID: p.ID, Suffrage: httpconfig.Voter}
		if !p.Voter {
			m.Suffrage = httpconfig.Nonvoter
		}
		if p.Host != "" && p.RaftPort != 0 {
			m.RaftAddress = net.JoinHostPort(p.Host, strconv.Itoa(p.RaftPort))
		}
		if p.Host != "" && p.ConfigPort != 0 {
			m.APIAddress = net.JoinHostPort(p.Host, strconv.Itoa(p.ConfigPort))
		}
		out.Members = append(out.Members, m)
	}
	return out
}

// printBackup prints the human-readable description of a backup: a
// key-value table, then its members.
func (e *env) printBackup(out backupOutput, first [2]string) error {
	ids := make([]string, 0, len(out.Members))
	for _, m := range out.Members {
		ids = append(ids, strconv.FormatUint(m.ID, 10))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	rows := [][2]string{first,
		{"index", strconv.FormatUint(out.Index, 10)},
		{"term", strconv.FormatUint(out.Term, 10)},
		{"cluster", strconv.FormatUint(out.ClusterID, 10)},
		{"written by", "node " + strconv.FormatUint(out.NodeID, 10)},
		{"created", out.Created.Format("2006-01-02 15:04:05.000 MST")},
		{"size", fmt.Sprintf("%s (%d bytes; state %d bytes)", formatBytes(out.Size), out.Size, out.StateSize)},
		{"sha256", out.SHA256},
		{"format", "canoe backup version " + strconv.Itoa(out.Version)},
		{"members", fmt.Sprintf("%d (%s)", len(out.Members), strings.Join(ids, ", "))},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Members) == 0 {
		return nil
	}
	fmt.Fprintln(e.stdout)
	tw = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tAPI ADDRESS\tSUFFRAGE")
	for _, m := range out.Members {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.ID, orDash(m.RaftAddress), orDash(m.APIAddress), m.Suffrage)
	}
	return tw.Flush()
}

// invalidBackup turns an InspectBackup error about path into one that
// says the file is not a usable backup.
func invalidBackup(path string, err error) error {
	if errors.Is(err, canoe.ErrInvalidBackup) {
		why := strings.TrimPrefix(err.Error(), canoe.ErrInvalidBackup.Error()+": ")
		return fmt.Errorf("%s is not a valid canoe backup: %s", path, why)
	}
	return fmt.Errorf("reading %s: %w", path, err)
}

// inspectFile reads and verifies the backup in path, with a progress line
// on w (nil: none).
func inspectFile(path string, w io.Writer, label string) (canoe.BackupInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return canoe.BackupInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return canoe.BackupInfo{}, err
	}
	if fi.IsDir() {
		return canoe.BackupInfo{}, fmt.Errorf("%s is a directory, not a backup file", path)
	}
	var p *progress
	if w != nil {
		p = newProgress(w, label+" "+path, fi.Size())
	}
	info, err := canoe.InspectBackup(bufio.NewReaderSize(progressReader{f, p}, 256<<10))
	if err != nil {
		p.abort()
		return info, invalidBackup(path, err)
	}
	p.finish()
	return info, nil
}

// progressWriter returns stderr when -progress mode shows progress, else
// nil.
func (e *env) progressWriter(mode string) (io.Writer, error) {
	on, err := progressOn(mode, e.stderr)
	if err != nil || !on {
		return nil, err
	}
	return e.stderr, nil
}

// fileArgs returns the FILE argument and where progress goes (nil: none).
func (e *env) fileArgs(args []string, mode string) (string, io.Writer, error) {
	path, err := oneFile(args)
	if err != nil {
		return "", nil, err
	}
	pw, err := e.progressWriter(mode)
	return path, pw, err
}

// showBackup prints out as JSON, or as text after the row first.
func (e *env) showBackup(out backupOutput, first [2]string) error {
	if e.json {
		return e.printJSON(out)
	}
	return e.printBackup(out, first)
}

func runInspect(e *env, args []string, mode string) error {
	path, pw, err := e.fileArgs(args, mode)
	if err != nil {
		return err
	}
	info, err := inspectFile(path, pw, "verifying")
	if err != nil {
		return err
	}
	return e.showBackup(describeBackup(path, info), [2]string{"file", path + " (verified: the checksum matches)"})
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// runSave saves a backup to FILE through a temporary file in FILE's
// directory, renamed to FILE once the whole backup is on disk and
// verified: a failed save leaves FILE as it was (absent, or the earlier
// backup) and no temporary file.
func runSave(ctx context.Context, e *env, args []string, mode string) (err error) {
	path, pw, err := e.fileArgs(args, mode)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory: give the backup's file name", path)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.part")
	if err != nil {
		return fmt.Errorf("cannot write the backup next to %s: %w", path, err)
	}
	tmp := f.Name()
	var p *progress
	defer func() {
		if err != nil {
			p.abort()
			f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if pw != nil {
		p = newProgress(pw, "saving "+path, -1)
		p.learnTotal = true
	}
	begin := time.Now()
	bw := bufio.NewWriterSize(f, 256<<10)
	cw := &countingWriter{w: bw}
	var w io.Writer = cw
	if p != nil {
		w = io.MultiWriter(cw, p)
	}
	index, err := e.client.Backup(ctx, e.base, w)
	if err != nil {
		var se *httpconfig.StatusError
		switch {
		case errors.As(err, &se), errors.Is(err, httpconfig.ErrUnexpectedAnswer), cw.n == 0:
			err = e.explain(err, e.base)
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("%s: the backup was not complete after -timeout %v (%s received)", e.base, e.timeout, formatBytes(cw.n))
		case errors.Is(err, context.Canceled):
			err = fmt.Errorf("interrupted after %s of the backup", formatBytes(cw.n))
		default:
			err = fmt.Errorf("%s: the backup broke off after %s: %v", e.base, formatBytes(cw.n), err)
		}
		return fmt.Errorf("%w; %s was not written", err, path)
	}
	if err = bw.Flush(); err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if _, err = f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	info, err := canoe.InspectBackup(bufio.NewReaderSize(f, 256<<10))
	switch {
	case err != nil:
		return fmt.Errorf("%s sent a backup that does not verify (%v); %s was not written", e.base, strings.TrimPrefix(err.Error(), "canoe: "), path)
	case info.Index != index:
		return fmt.Errorf("%s sent a backup of index %d but said %d; %s was not written", e.base, info.Index, index, path)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable where the file system can
		d.Close()
	}
	p.finish()
	out := describeBackup(path, info)
	out.SavedFrom, out.Seconds = e.base, time.Since(begin).Seconds()
	return e.showBackup(out, [2]string{"saved", fmt.Sprintf("%s from %s in %v", path, e.base, time.Since(begin).Round(time.Millisecond))})
}

// runRestore verifies the backup in FILE, then has the node at -addr
// restore it into the whole cluster (a follower sends it to the leader).
func runRestore(ctx context.Context, e *env, args []string, mode string) error {
	path, pw, err := e.fileArgs(args, mode)
	if err != nil {
		return err
	}
	// Checked here first: a damaged file is refused without a word to the
	// cluster (the node checks it again).
	info, err := inspectFile(path, pw, "verifying")
	if err != nil {
		return fmt.Errorf("%w; the cluster was not changed", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	body := &passReader{f: f, size: info.Size, w: pw, labels: []string{"hashing " + path, "sending " + path},
		done: "sent; the cluster is restoring it..."}
	begin := time.Now()
	_, err = e.client.RestoreSnapshot(ctx, e.base, body)
	body.end()
	if err != nil {
		var se *httpconfig.StatusError
		if errors.As(err, &se) && !se.Foreign && errors.Is(se, httpconfig.ErrInvalid) {
			return fmt.Errorf("%s refused the backup: %s; the cluster was not changed", e.base, se.Message)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within -timeout %v; the restore may or may not have taken effect (see canoe status)", e.base, e.timeout)
		}
		return e.explain(err, e.base)
	}
	out := describeBackup(path, info)
	out.RestoredThrough, out.Seconds = e.base, time.Since(begin).Seconds()
	return e.showBackup(out, [2]string{"restored", fmt.Sprintf("%s into the cluster through %s in %v", path, e.base, time.Since(begin).Round(time.Millisecond))})
}
