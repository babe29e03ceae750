package storage

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRecoveryRequest: a request reads back as written; no file is no
// request; a file that is truncated, empty, garbage or of another version
// is an error naming it, never a request.
func TestRecoveryRequest(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := LoadRecovery(dir); ok || err != nil {
		t.Fatalf("LoadRecovery without a file: ok %v, %v; want false, nil", ok, err)
	}
	req := RecoveryRequest{Requested: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Members: []RecoveryMember{{ID: 1, Host: "10.0.0.1", RaftPort: 7000, ConfigPort: 8000}, {ID: 2, Host: "h2", RaftPort: 7000}}}
	if err := SaveRecovery(dir, req); err != nil {
		t.Fatal(err)
	}
	got, ok, err := LoadRecovery(dir)
	if err != nil || !ok || got.Version != recoveryVer || !got.Requested.Equal(req.Requested) || !slices.Equal(got.Members, req.Members) {
		t.Fatalf("LoadRecovery: %+v, %v, %v; want %+v", got, ok, err, req)
	}
	good, err := os.ReadFile(RecoveryPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"truncated":       {good[:len(good)/2], "not valid JSON"},
		"empty":           {nil, "not valid JSON"},
		"garbage":         {[]byte("\x00\xffCNS\x01"), "not valid JSON"},
		"no version":      {[]byte(`{"members": [{"id": 1, "host": "h", "raft_port": 1}]}`), "version 0"},
		"another version": {[]byte(strings.Replace(string(good), `"version": 1`, `"version": 2`, 1)), "version 2"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(RecoveryPath(dir), tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, ok, err := LoadRecovery(dir)
			if ok || err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), RecoveryPath(dir)) {
				t.Fatalf("LoadRecovery: ok %v, %v; want an error naming the file and saying %q", ok, err, tc.want)
			}
		})
	}
	if err := RemoveRecovery(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := LoadRecovery(dir); ok || err != nil {
		t.Fatalf("LoadRecovery after RemoveRecovery: ok %v, %v; want false, nil", ok, err)
	}
	if err := RemoveRecovery(dir); err != nil {
		t.Fatalf("RemoveRecovery without a file: %v", err)
	}
}
