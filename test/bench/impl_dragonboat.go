//go:build cgo

// dragonboat's pebble LogDB links github.com/DataDog/zstd, which needs cgo;
// without cgo impl_dragonboat_nocgo.go stands in.

package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/client"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// dragonboatImpl runs one NodeHost per node (default pebble LogDB) with
// RTTMillisecond 1, ElectionRTT -db-election-rtt (100 by default; 10 when
// unset), HeartbeatRTT 1, a counter IStateMachine, and SyncPropose with a
// no-op session on the leader; for the read cells a kvStore IStateMachine
// and SyncRead on the leader.
type dragonboatImpl struct {
	nodes       int
	electionRTT uint64 // 0: 10
	kv          bool
	nhs         []*dragonboat.NodeHost
	target      *dragonboat.NodeHost
	session     *client.Session
}

const dbShard = 1

func init() {
	impls["dragonboat"] = func(n int) impl { return &dragonboatImpl{nodes: n} }
}

func (d *dragonboatImpl) setElectionRTT(n uint64) { d.electionRTT = n }

func (d *dragonboatImpl) name() string { return "dragonboat" }

// dbCounter is the trivial IStateMachine: it counts the entries applied.
type dbCounter struct{ n uint64 }

func (c *dbCounter) Update(e sm.Entry) (sm.Result, error) {
	c.n++
	return sm.Result{Value: c.n}, nil
}

func (c *dbCounter) Lookup(any) (any, error) { return c.n, nil }

func (c *dbCounter) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	_, err := w.Write(binary.BigEndian.AppendUint64(nil, c.n))
	return err
}

func (c *dbCounter) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	c.n = binary.BigEndian.Uint64(b[:])
	return nil
}

func (c *dbCounter) Close() error { return nil }

// dbKV adapts kvStore to dragonboat's IStateMachine: Lookup takes the key
// (a uint64) and returns its value.
type dbKV struct{ kvStore }

func (f *dbKV) Update(e sm.Entry) (sm.Result, error) {
	return sm.Result{Value: f.set(e.Cmd)}, nil
}

func (f *dbKV) Lookup(q any) (any, error) {
	k, ok := q.(uint64)
	if !ok {
		return nil, fmt.Errorf("lookup of a %T, want a uint64 key", q)
	}
	return f.get(k), nil
}

func (f *dbKV) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	_, err := w.Write(f.snapshot())
	return err
}

func (f *dbKV) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return f.restore(b)
}

func (f *dbKV) Close() error { return nil }

var quietDragonboat sync.Once

// errorLogger drops dragonboat's logs below ERROR.
type errorLogger struct{ pkg string }

func (errorLogger) SetLevel(logger.LogLevel) {}
func (errorLogger) Debugf(string, ...any)    {}
func (errorLogger) Infof(string, ...any)     {}
func (errorLogger) Warningf(string, ...any)  {}
func (l errorLogger) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "dragonboat "+l.pkg+": "+f+"\n", a...)
}
func (l errorLogger) Panicf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

func (d *dragonboatImpl) start(dir string) error {
	quietDragonboat.Do(func() {
		logger.SetLoggerFactory(func(pkg string) logger.ILogger { return errorLogger{pkg} })
	})
	members := map[uint64]dragonboat.Target{}
	for i := range d.nodes {
		port, err := freePort()
		if err != nil {
			return err
		}
		members[uint64(i+1)] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	for i := range d.nodes {
		nd := filepath.Join(dir, fmt.Sprintf("n%d", i))
		nh, err := dragonboat.NewNodeHost(config.NodeHostConfig{
			NodeHostDir:    nd,
			WALDir:         nd,
			RTTMillisecond: 1,
			RaftAddress:    members[uint64(i+1)],
		})
		if err != nil {
			return fmt.Errorf("dragonboat NodeHost %d: %w", i, err)
		}
		d.nhs = append(d.nhs, nh)
		rc := config.Config{
			ReplicaID:          uint64(i + 1),
			ShardID:            dbShard,
			ElectionRTT:        cmp.Or(d.electionRTT, 10),
			HeartbeatRTT:       1,
			SnapshotEntries:    8192,
			CompactionOverhead: 8192,
		}
		create := func(uint64, uint64) sm.IStateMachine { return &dbCounter{} }
		if d.kv {
			create = func(uint64, uint64) sm.IStateMachine { return &dbKV{} }
		}
		if err := nh.StartReplica(members, false, create, rc); err != nil {
			return fmt.Errorf("dragonboat StartReplica %d: %w", i, err)
		}
	}
	if err := waitFor(30*time.Second, func() bool { return d.leader() != nil }); err != nil {
		return fmt.Errorf("dragonboat shard did not elect a leader: %w", err)
	}
	// A leader drops proposals made before it is ready (they time out);
	// wait until one is acknowledged.
	deadline := time.Now().Add(30 * time.Second)
	for {
		d.target = d.leader()
		if d.target != nil {
			d.session = d.target.GetNoOPSession(dbShard)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			err := d.propose(ctx, []byte("ready"))
			cancel()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("dragonboat shard never acknowledged a proposal")
		}
		time.Sleep(time.Millisecond)
	}
}

// leader returns the NodeHost whose replica leads the shard, if any.
func (d *dragonboatImpl) leader() *dragonboat.NodeHost {
	for i, nh := range d.nhs {
		if nh == nil {
			continue
		}
		id, _, ok, err := nh.GetLeaderID(dbShard)
		if err == nil && ok && id == uint64(i+1) {
			return nh
		}
	}
	return nil
}

func (d *dragonboatImpl) propose(ctx context.Context, data []byte) error {
	_, err := d.target.SyncPropose(ctx, d.session, data)
	return err
}

func (d *dragonboatImpl) useKV() { d.kv = true }

// read is SyncRead (ReadIndex, then Lookup) on the leader.
func (d *dragonboatImpl) read(ctx context.Context, key uint64) ([]byte, error) {
	v, err := d.target.SyncRead(ctx, dbShard, key)
	if err != nil {
		return nil, err
	}
	b, _ := v.([]byte)
	return b, nil
}

func (d *dragonboatImpl) stop() {
	for _, nh := range d.nhs {
		if nh != nil {
			nh.Close()
		}
	}
}

// stopLeader closes the leader's NodeHost: no handover, a crash to the
// others.
func (d *dragonboatImpl) stopLeader() (string, error) {
	l := d.leader()
	if l == nil {
		return "", errors.New("no leader")
	}
	for i, nh := range d.nhs {
		if nh == l {
			nh.Close()
			d.nhs[i] = nil
		}
	}
	return "NodeHost.Close() of the leader (no handover)", nil
}

// proposeSurvivor proposes on whichever NodeHost leads now.
func (d *dragonboatImpl) proposeSurvivor(ctx context.Context, data []byte) error {
	l := d.leader()
	if l == nil {
		return errors.New("no leader")
	}
	_, err := l.SyncPropose(ctx, l.GetNoOPSession(dbShard), data)
	return err
}

func (d *dragonboatImpl) term() uint64 {
	_, t, _, _ := d.target.GetLeaderID(dbShard)
	return t
}
