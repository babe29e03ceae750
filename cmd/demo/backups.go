package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/canoe-raft/canoe/canoe"
	"github.com/canoe-raft/canoe/httpconfig"
)

// Automatic backups (demo node -backup-dir DIR -backup-every D -backup-keep
// N): at every tick of a ticker the node checks whether it leads, and only
// the leader writes a backup of the cluster's state (canoe's Node.Backup)
// into DIR. A backup is written to a temporary file in DIR, synced,
// verified (canoe.InspectBackup) and renamed into place, so DIR only ever
// holds complete backups, named
//
//	canoe-backup-20260102T150405.000Z-1234.bak
//
// for the time the backup began (UTC) and the log index whose state it
// holds: names sort in time order. Then the oldest such files beyond the
// newest N are deleted (N = 0 keeps them all); other files in DIR are never
// touched. A failed backup is logged and retried at the next tick; it never
// stops the node. Ticks that pass while a backup runs are skipped, not
// queued.

const (
	backupExt        = ".bak"
	backupNamePrefix = "canoe-backup-"
	backupTimeLayout = "20060102T150405.000Z"
)

// backupNameRE matches the names the scheduler gives backups.
var backupNameRE = regexp.MustCompile(`^` + backupNamePrefix + `(\d{8}T\d{6}\.\d{3}Z)-(\d+)` + regexp.QuoteMeta(backupExt) + `$`)

// backupName is the file name of a backup begun at t that holds the state
// at index.
func backupName(t time.Time, index uint64) string {
	return backupNamePrefix + t.UTC().Format(backupTimeLayout) + "-" + strconv.FormatUint(index, 10) + backupExt
}

// backupSource is what the scheduler needs of the node (*canoe.Node).
type backupSource interface {
	IsLeader() bool
	Backup(ctx context.Context, w io.Writer) (uint64, error)
}

// backupOptions are the -backup-* flags.
type backupOptions struct {
	Dir   string        // "" means no automatic backups
	Every time.Duration // the ticker's period
	Keep  int           // backups kept in Dir; 0 keeps them all
}

// backupScheduler writes automatic backups while this node leads.
type backupScheduler struct {
	src    backupSource
	opt    backupOptions
	nodeID uint64 // names this node's temporary files
	logger hclog.Logger
}

func newBackupScheduler(src backupSource, opt backupOptions, nodeID uint64, logger hclog.Logger) *backupScheduler {
	return &backupScheduler{src: src, opt: opt, nodeID: nodeID, logger: logger}
}

// prepareBackupDir creates dir if needed and checks that files can be
// created in it, so that a bad -backup-dir fails the start instead of
// every backup.
func prepareBackupDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("-backup-dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".canoe-backup-check-*")
	if err != nil {
		return fmt.Errorf("-backup-dir: cannot create files in %s: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// tempPattern is the pattern of this node's temporary files in Dir.
func (b *backupScheduler) tempPattern() string {
	return ".canoe-backup-node" + strconv.FormatUint(b.nodeID, 10) + "-*.tmp"
}

// start removes the temporary files an earlier run of this node left in
// Dir (it stopped in the middle of a backup), then runs the ticker on a
// goroutine of its own until stop is called. stop cancels a backup in
// progress and returns once the goroutine has ended.
func (b *backupScheduler) start() (stop func()) {
	stale, _ := filepath.Glob(filepath.Join(b.opt.Dir, b.tempPattern()))
	for _, name := range stale {
		if err := os.Remove(name); err != nil {
			b.logger.Warn("could not remove an unfinished backup", "file", name, "error", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.run(ctx)
	}()
	b.logger.Info("automatic backups on: the leader writes one at every tick", "dir", b.opt.Dir, "every", b.opt.Every, "keep", b.opt.Keep)
	return func() {
		cancel()
		<-done
	}
}

func (b *backupScheduler) run(ctx context.Context) {
	tick := time.NewTicker(b.opt.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !b.src.IsLeader() {
			b.logger.Debug("not the leader: no backup at this tick")
			continue
		}
		b.backupOnce(ctx)
	}
}

// backupOnce writes one backup and prunes the old ones, logging what
// happened.
func (b *backupScheduler) backupOnce(stopping context.Context) {
	// Bounded like a GET /snapshot, and ended at once by stop.
	ctx, cancel := context.WithTimeout(stopping, httpconfig.DefaultSnapshotTimeout)
	defer cancel()
	begin := time.Now()
	path, info, err := b.write(ctx, begin)
	if err != nil {
		if stopping.Err() != nil {
			b.logger.Info("backup abandoned: the node is stopping", "error", err)
			return
		}
		b.logger.Error("backup failed; the next tick tries again", "dir", b.opt.Dir, "error", err)
		return
	}
	b.logger.Info("wrote a backup", "file", path, "index", info.Index, "bytes", info.Size,
		"took", time.Since(begin).Round(time.Millisecond))
	if err := b.prune(); err != nil {
		b.logger.Warn("could not delete old backups", "dir", b.opt.Dir, "error", err)
	}
}

// write writes a backup begun at begin to a temporary file, syncs and
// verifies it, and renames it into place. On an error no file of it is
// left.
func (b *backupScheduler) write(ctx context.Context, begin time.Time) (path string, info canoe.BackupInfo, err error) {
	f, err := os.CreateTemp(b.opt.Dir, b.tempPattern())
	if err != nil {
		return "", info, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	index, err := b.src.Backup(ctx, bw)
	if err != nil {
		return "", info, err
	}
	if err = bw.Flush(); err == nil {
		err = f.Sync()
	}
	if err != nil {
		return "", info, fmt.Errorf("writing %s: %w", tmp, err)
	}
	if _, err = f.Seek(0, io.SeekStart); err != nil {
		return "", info, err
	}
	if info, err = canoe.InspectBackup(bufio.NewReaderSize(f, 256<<10)); err != nil {
		return "", info, fmt.Errorf("the backup written to %s does not verify: %w", tmp, err)
	}
	if info.Index != index {
		return "", info, fmt.Errorf("the backup written to %s holds index %d, and the node said %d", tmp, info.Index, index)
	}
	if err = f.Close(); err != nil {
		return "", info, err
	}
	path = filepath.Join(b.opt.Dir, backupName(begin, index))
	if err = os.Rename(tmp, path); err != nil {
		return "", info, err
	}
	syncDir(b.opt.Dir, b.logger)
	return path, info, nil
}

// prune deletes the oldest backups in Dir beyond the newest Keep.
func (b *backupScheduler) prune() error {
	if b.opt.Keep <= 0 {
		return nil
	}
	entries, err := os.ReadDir(b.opt.Dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && backupNameRE.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	if len(names) <= b.opt.Keep {
		return nil
	}
	slices.Sort(names) // oldest first: the names start with the time
	var errs []error
	for _, name := range names[:len(names)-b.opt.Keep] {
		if err := os.Remove(filepath.Join(b.opt.Dir, name)); err != nil {
			errs = append(errs, err)
		} else {
			b.logger.Debug("deleted an old backup", "file", name)
		}
	}
	return errors.Join(errs...)
}

// syncDir makes a rename in dir durable, logging a failure (some file
// systems cannot sync a directory).
func syncDir(dir string, logger hclog.Logger) {
	d, err := os.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		logger.Debug("could not sync the backup directory", "dir", dir, "error", err)
	}
}
