package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// walMetaFile is raft-wal's bbolt file: the stable store and the list of
// segments.
const walMetaFile = metadb.FileName

var (
	_ raft.LogStore          = (*walStore)(nil)
	_ raft.StableStore       = (*walStore)(nil)
	_ raft.MonotonicLogStore = (*walStore)(nil)
)

// walStore is raft's log and stable store on raft-wal (v0.4.1). It reopens
// the WAL after a failed StoreLogs or DeleteRange, because raft-wal can be
// left with its memory out of step with its files for good: rotating to a
// new segment, and truncations that start one, commit the new metadata to
// wal-meta.db first and then create the segment file; when creating it
// fails (no space for its 64 MiB), the WAL keeps its old state in memory.
// After a failed rotation (done in the background; wal.go runRotate only
// logs "rotate error") the full segment stays sealed and every StoreLogs
// fails with ErrSealed, even once space is freed. Open instead rebuilds
// the state from the files, which hold every write ever acknowledged, and
// takes up the new segment (creating its file if the failed attempt left
// none). raft retries the failed write.
//
// Not covered: if a rotation failed before it committed its metadata
// (wal-meta.db could not be written), or a crash or Close came between a
// segment's sealing append and its rotation, raft-wal reopens the sealed
// segment as the tail and refuses every append, at a restart too. (An
// append whose fsync failed after its data reached the file is found in
// the reopened log; raft's retry of it then skips what is held: unstored.)
type walStore struct {
	dir    string
	logger hclog.Logger
	meta   *metadb.BoltMetaDB // the stable store; open from openWAL to Close, across reopens

	wmu sync.Mutex // serializes writes with the reopen after a failed one

	mu       sync.RWMutex // guards w, openErr, closed, failedAt; write-locked only to reopen and to close
	w        *wal.WAL     // nil when the last reopen failed (a later write tries again) or after Close
	openErr  error        // why w is nil
	failedAt time.Time    // when the last reopen failed
	closed   bool
}

// keptMeta is the meta database as raft-wal sees it: WAL.Close closes its
// meta store, but the stable store must stay usable while the log is
// reopened (raft panics when it cannot persist its term), so only
// walStore.Close closes it.
type keptMeta struct{ *metadb.BoltMetaDB }

func (keptMeta) Close() error { return nil }

// reopenPause is the least time between two reopen attempts after one
// failed: each failed wal.Open may leave segment files open.
const reopenPause = time.Second

// openWAL opens (or creates) the raft-wal log in dir. Like openBolt it
// turns damage that would crash the process into an error naming the
// directory. When it fails to create a new log (a full disk cannot hold
// the first preallocated segment), it removes what it created, so that a
// later start tries afresh instead of finding a half-made log.
func openWAL(dir string, logger hclog.Logger) (*walStore, error) {
	metaPath := filepath.Join(dir, walMetaFile)
	_, err := os.Stat(metaPath)
	fresh := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("canoe: create %s: %w", dir, err)
	}
	if err := checkBoltFile(metaPath); err != nil {
		return nil, walDamaged(dir, "%s: %v", walMetaFile, err)
	}
	s := &walStore{dir: dir, logger: logger, meta: &metadb.BoltMetaDB{}}
	if s.w, err = s.open(); err != nil {
		s.meta.Close()
		if fresh {
			// Nothing but this attempt's files: wal-meta.db did not exist.
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	return s, nil
}

func walDamaged(dir, format string, args ...any) error {
	return fmt.Errorf("canoe: raft log %s is damaged: %s (restore it from a backup, or remove this node's DataDir and join the cluster again as a new node)", dir, fmt.Sprintf(format, args...))
}

// open opens the WAL in s.dir on s.meta.
func (s *walStore) open() (w *wal.WAL, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			w, err = nil, walDamaged(s.dir, "raft-wal: %v", r)
		}
	}()
	w, err = wal.Open(s.dir, wal.WithLogger(s.logger), wal.WithMetaStore(keptMeta{s.meta}))
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno) && errno != syscall.ENOENT:
		// An I/O error (full disk, permissions), not damage.
		return nil, fmt.Errorf("canoe: open raft log %s: %w", s.dir, err)
	case err != nil:
		return nil, walDamaged(s.dir, "raft-wal: %v", err)
	}
	return w, nil
}

// reopen replaces the WAL a write failed on (none, after a failed reopen)
// by a freshly opened one. The caller holds s.wmu.
func (s *walStore) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return wal.ErrClosed
	}
	if s.w == nil && time.Since(s.failedAt) < reopenPause {
		return s.openErr
	}
	if s.w != nil {
		// No reads run (they hold s.mu for reading) and no write (the
		// caller holds s.wmu), so no rotation is pending either: StoreLogs
		// and DeleteRange wait for one first, and only a successful
		// StoreLogs starts one. This closes every segment file.
		_ = s.w.Close()
		s.w = nil
	}
	s.w, s.openErr = s.open()
	if s.openErr != nil {
		s.failedAt = time.Now()
		s.logger.Error("reopening the raft log after a failed write failed; the next write tries again", "error", s.openErr)
		return s.openErr
	}
	s.logger.Warn("reopened the raft log after a failed write", "dir", s.dir)
	return nil
}

// read runs f on the open WAL.
func (s *walStore) read(f func(*wal.WAL) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.w == nil {
		return s.openErr
	}
	return f(s.w)
}

// write runs f, a change to the log. When f fails (or the WAL is not open),
// write reopens the WAL and, if again says so on the reopened WAL, runs f
// once more (a write that failed for want of a rotation then succeeds). It
// returns the last error.
func (s *walStore) write(f func(*wal.WAL) error, again func(*wal.WAL) bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	for try := range 2 {
		s.mu.RLock()
		w := s.w
		switch {
		case w == nil:
			err = s.openErr
		case try > 0 && !again(w):
			s.mu.RUnlock()
			return err
		default:
			err = f(w)
		}
		s.mu.RUnlock()
		if err == nil || errors.Is(err, wal.ErrClosed) || !reopenHelps(err) {
			return err
		}
		if rerr := s.reopen(); rerr != nil {
			if w == nil {
				return rerr
			}
			return fmt.Errorf("%w (reopening the raft log failed too: %w)", err, rerr)
		}
	}
	return err
}

// reopenHelps reports whether reopening the WAL may cure err. A write
// that raft-wal's own checks refused (a non-monotonic append, a range that
// is neither prefix nor suffix: plain fmt errors in wal.go) would fail
// again the same way, and reopening for it could only loop.
func reopenHelps(err error) bool {
	msg := err.Error()
	return !strings.Contains(msg, "non-monotonic") && !strings.Contains(msg, "only suffix or prefix")
}

func (s *walStore) FirstIndex() (idx uint64, err error) {
	err = s.read(func(w *wal.WAL) (err error) { idx, err = w.FirstIndex(); return err })
	return idx, err
}

func (s *walStore) LastIndex() (idx uint64, err error) {
	err = s.read(func(w *wal.WAL) (err error) { idx, err = w.LastIndex(); return err })
	return idx, err
}

func (s *walStore) GetLog(index uint64, log *raft.Log) error {
	return s.read(func(w *wal.WAL) error { return w.GetLog(index, log) })
}

func (s *walStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs appends logs, skipping those the log already holds (see
// unstored); after a failure it reopens the WAL and tries once more.
func (s *walStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	err := s.write(func(w *wal.WAL) error {
		rest, err := unstored(w, logs)
		if err != nil || len(rest) == 0 {
			return err
		}
		return w.StoreLogs(rest)
	}, func(*wal.WAL) bool { return true })
	if errors.Is(err, wal.ErrSealed) {
		// Still sealed after reopening: the case the type's comment says is
		// not covered. Say what it means, since raft logs only the error.
		return fmt.Errorf("%w: raft-wal reopened its last segment sealed (a crash or failure between sealing a full segment and starting the next one; raft-wal v0.4.1 cannot recover from it): this node cannot append to its log until its DataDir %s is removed and it joins the cluster again as a new node", err, filepath.Dir(s.dir))
	}
	return err
}

// unstored returns the entries of logs past what w holds. An append whose
// data reached the segment file but that reported an error is found in the
// WAL after a reopen, while raft, which still believes its last index is
// the one before, stores the same entries again: they are skipped, so the
// retry succeeds instead of failing as non-monotonic forever. An entry held
// at the same index with the same term is the same entry (raft's log
// matching); one held with another term is an error, as raft truncates the
// log before it overwrites entries.
func unstored(w *wal.WAL, logs []*raft.Log) ([]*raft.Log, error) {
	last, err := w.LastIndex()
	if err != nil || last < logs[0].Index {
		return logs, err
	}
	var held raft.Log
	for i, l := range logs {
		if l.Index > last {
			return logs[i:], nil
		}
		if err := w.GetLog(l.Index, &held); err != nil {
			return nil, fmt.Errorf("canoe: raft log: entry %d is to be stored again but cannot be read: %w", l.Index, err)
		}
		if held.Term != l.Term {
			return nil, fmt.Errorf("canoe: raft log: entry %d is held with term %d and was to be stored with term %d: non-monotonic append", l.Index, held.Term, l.Term)
		}
	}
	return nil, nil
}

// DeleteRange deletes a prefix or suffix of the log; deleting what is
// already gone is a no-op, so it can always run again after a reopen.
func (s *walStore) DeleteRange(min, max uint64) error {
	return s.write(func(w *wal.WAL) error { return w.DeleteRange(min, max) }, func(*wal.WAL) bool { return true })
}

// IsMonotonic tells raft that the log has no gaps (raft.MonotonicLogStore):
// after restoring a snapshot raft then deletes the whole log.
func (s *walStore) IsMonotonic() bool { return true }

// The stable store is raft-wal's meta database, used directly and kept
// open across reopens (keptMeta), so that it keeps working while the log
// is reopened or cannot be (raft panics when it cannot persist its term).
// raft-wal stores uint64s as 8 little-endian bytes (wal.go SetUint64), and
// so does this.

func (s *walStore) Set(key, val []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return wal.ErrClosed
	}
	return s.meta.SetStable(key, val)
}

func (s *walStore) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, wal.ErrClosed
	}
	return s.meta.GetStable(key)
}

func (s *walStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.LittleEndian.AppendUint64(nil, val))
}

func (s *walStore) GetUint64(key []byte) (uint64, error) {
	b, err := s.Get(key)
	switch {
	case err != nil:
		return 0, err
	case len(b) == 0:
		return 0, nil
	case len(b) != 8:
		return 0, fmt.Errorf("canoe: raft log %s: stable key %q holds %d bytes, not a uint64", s.dir, key, len(b))
	}
	return binary.LittleEndian.Uint64(b), nil
}

// Close closes the WAL and its meta database. It is idempotent.
func (s *walStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.w != nil {
		err = s.w.Close()
	}
	s.w, s.openErr = nil, wal.ErrClosed
	return errors.Join(err, s.meta.Close())
}
