package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// recoveryVer is the version of recoveryFile's format.
const recoveryVer = 1

// RecoveryMember is one member of the configuration a recovery writes.
type RecoveryMember struct {
	ID         uint64 `json:"id"`
	Host       string `json:"host"`
	RaftPort   int    `json:"raft_port"`
	ConfigPort int    `json:"config_port,omitempty"`
	GossipPort int    `json:"gossip_port,omitempty"`
}

// RecoveryRequest is a recovery that the node's next Start performs
// (Consul's peers.json): written by a program that does not hold the
// node's FSM (canoe.ScheduleRecovery), it is kept in DataDir as
// recover.json until a Start has carried it out.
type RecoveryRequest struct {
	Version   int              `json:"version"`
	Requested time.Time        `json:"requested"`
	Members   []RecoveryMember `json:"members"`
}

// RecoveryPath returns the path of dir's recovery request file.
func RecoveryPath(dir string) string { return filepath.Join(dir, recoveryFile) }

// SaveRecovery writes r to dir atomically and durably, replacing any
// request there.
func SaveRecovery(dir string, r RecoveryRequest) error {
	r.Version = recoveryVer
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir, recoveryFile, append(b, '\n')); err != nil {
		return fmt.Errorf("canoe: write recovery request: %w", err)
	}
	return nil
}

// LoadRecovery reads dir's recovery request; ok is false when there is
// none. A file that is not a request of a known version is an error that
// names it: the operator asked for something, and a Start must not go on
// as if they had not.
func LoadRecovery(dir string) (r RecoveryRequest, ok bool, err error) {
	if dir == "" {
		return RecoveryRequest{}, false, nil
	}
	path := RecoveryPath(dir)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return RecoveryRequest{}, false, nil
	}
	if err != nil {
		return RecoveryRequest{}, false, fmt.Errorf("canoe: read recovery request: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return RecoveryRequest{}, false, fmt.Errorf("canoe: recovery request %s is not valid JSON (%v): write it again, or remove it to start without recovering", path, err)
	}
	if r.Version != recoveryVer {
		return RecoveryRequest{}, false, fmt.Errorf("canoe: recovery request %s has version %d, this canoe reads version %d: write it again with this version's tools", path, r.Version, recoveryVer)
	}
	return r, true, nil
}

// RemoveRecovery deletes dir's recovery request, durably.
func RemoveRecovery(dir string) error {
	err := os.Remove(RecoveryPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("canoe: remove recovery request: %w", err)
	}
	return syncDir(dir)
}
