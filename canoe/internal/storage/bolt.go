package storage

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"slices"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// bbolt's on-disk layout (format version 2, go.etcd.io/bbolt v1.3.x: v1.3.6
// here, under raft-boltdb/v2's raft.db and raft-wal's wal-meta.db): two
// meta pages, each a 16-byte page header then the meta fields.
const (
	boltPageHeader   = 16
	boltMetaSize     = 64
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltFreelistFlag = 0x10
)

type boltMeta struct {
	pageSize       uint64
	root, freelist uint64 // page ids
	highWater      uint64 // first page id past the end of the data
	txid           uint64
}

// checkBoltFile refuses a raft log file that bbolt would crash on: bbolt
// trusts its meta page and faults (SIGBUS, which no recover catches) or
// panics when the page it names lies past the end of a truncated file or
// holds garbage. A missing or empty file is fine (bbolt creates it).
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	size := uint64(st.Size())
	var metas []boltMeta
	m0, err0 := readBoltMeta(f, 0)
	if err0 == nil {
		metas = append(metas, m0)
	}
	if m0.pageSize != 0 {
		if m1, err := readBoltMeta(f, int64(m0.pageSize)); err == nil {
			metas = append(metas, m1)
		}
	}
	if len(metas) == 0 {
		return fmt.Errorf("no valid meta page: %v", err0)
	}
	// bbolt uses the valid meta page of the newest transaction.
	m := slices.MaxFunc(metas, func(a, b boltMeta) int { return cmp.Compare(a.txid, b.txid) })
	switch {
	case m.highWater*m.pageSize > size:
		return fmt.Errorf("file is %d bytes but its meta page says the data spans %d pages of %d bytes: truncated", size, m.highWater, m.pageSize)
	case m.freelist >= m.highWater || m.root >= m.highWater:
		return fmt.Errorf("meta page names pages past the end of the data")
	}
	var hdr [boltPageHeader]byte
	if _, err := f.ReadAt(hdr[:], int64(m.freelist*m.pageSize)); err != nil {
		return fmt.Errorf("read freelist page: %w", err)
	}
	id := binary.LittleEndian.Uint64(hdr[0:])
	flags := binary.LittleEndian.Uint16(hdr[8:])
	count := uint64(binary.LittleEndian.Uint16(hdr[10:]))
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if id != m.freelist || flags&boltFreelistFlag == 0 {
		return fmt.Errorf("freelist page %d is not a freelist page", m.freelist)
	}
	if (m.freelist+overflow+1)*m.pageSize > size {
		return fmt.Errorf("freelist page %d runs past the end of the file", m.freelist)
	}
	if count != 0xFFFF && count*8 > (overflow+1)*m.pageSize-boltPageHeader {
		return fmt.Errorf("freelist page %d holds more ids than fit", m.freelist)
	}
	return nil
}

func readBoltMeta(f io.ReaderAt, off int64) (boltMeta, error) {
	var b [boltPageHeader + boltMetaSize]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return boltMeta{}, err
	}
	p := b[boltPageHeader:]
	m := boltMeta{
		pageSize:  uint64(binary.LittleEndian.Uint32(p[8:])),
		root:      binary.LittleEndian.Uint64(p[16:]),
		freelist:  binary.LittleEndian.Uint64(p[32:]),
		highWater: binary.LittleEndian.Uint64(p[40:]),
		txid:      binary.LittleEndian.Uint64(p[48:]),
	}
	if binary.LittleEndian.Uint32(p[0:]) != boltMagic || binary.LittleEndian.Uint32(p[4:]) != boltVersion {
		return m, errors.New("bad magic or version")
	}
	h := fnv.New64a()
	h.Write(p[:56])
	if sum := binary.LittleEndian.Uint64(p[56:]); sum != 0 && sum != h.Sum64() {
		return m, errors.New("bad checksum")
	}
	if m.pageSize < 512 || m.pageSize > 1<<20 {
		return m, fmt.Errorf("implausible page size %d", m.pageSize)
	}
	return m, nil
}

// openBolt opens the raft log, turning bbolt's crashes on a damaged file
// into an error that names it.
func openBolt(path string) (store *boltStore, err error) {
	if err := checkBoltFile(path); err != nil {
		return nil, fmt.Errorf("canoe: raft log %s is damaged: %v (restore it from a backup, or remove this node's DataDir and join the cluster again as a new node)", path, err)
	}
	// Damage the check above misses still must not kill the process: make
	// memory faults in bbolt's mmap panics, and recover them.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			store, err = nil, fmt.Errorf("canoe: raft log %s is damaged: bbolt: %v", path, r)
		}
	}()
	bs, err := raftboltdb.NewBoltStore(path)
	if err != nil {
		return nil, err
	}
	return &boltStore{BoltStore: bs, path: path}, nil
}

// boltStore is raft-boltdb's store with a GetUint64 that refuses a value
// that is not 8 bytes, as walStore's does: raft-boltdb's panics on a
// shorter one and reads the start of a longer one.
type boltStore struct {
	*raftboltdb.BoltStore
	path string
}

func (s *boltStore) GetUint64(key []byte) (uint64, error) {
	b, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("canoe: raft log %s: stable key %q holds %d bytes, not a uint64", s.path, key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
