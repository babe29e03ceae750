package httpconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSnapshots serves /snapshot: Backup writes backup (failing after
// failAfter bytes if set); StageRestore reads the body (to its end, or
// only readOnly bytes if set), refuses bodies not starting with "BACKUP",
// and Restore records what it restores.
type fakeSnapshots struct {
	mu        sync.Mutex // guards every field below
	backup    []byte
	failAfter int
	readOnly  int
	staged    int // StageRestore calls
	created   int // staged backups returned
	discarded int
	restored  [][]byte
}

func (f *fakeSnapshots) Backup(_ context.Context, w io.Writer) (uint64, error) {
	f.mu.Lock()
	b, failAfter := f.backup, f.failAfter
	f.mu.Unlock()
	if failAfter > 0 {
		if _, err := w.Write(b[:failAfter]); err != nil {
			return 0, err
		}
		return 0, errors.New("disk gone midway")
	}
	if _, err := w.Write(b); err != nil {
		return 0, err
	}
	return 77, nil
}

func (f *fakeSnapshots) StageRestore(_ context.Context, r io.Reader) (StagedRestore, error) {
	f.mu.Lock()
	f.staged++
	readOnly := f.readOnly
	f.mu.Unlock()
	var b []byte
	var err error
	if readOnly > 0 {
		b = make([]byte, readOnly)
		_, err = io.ReadFull(r, b)
	} else {
		b, err = io.ReadAll(r)
	}
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte("BACKUP")) {
		return nil, fmt.Errorf("%w: not a backup", ErrInvalid)
	}
	f.mu.Lock()
	f.created++
	f.mu.Unlock()
	return &fakeStaged{f: f, b: b}, nil
}

func (f *fakeSnapshots) counts() (staged, discarded, restored int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.staged, f.discarded, len(f.restored)
}

// undiscarded returns how many staged backups were not discarded.
func (f *fakeSnapshots) undiscarded() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.created - f.discarded
}

type fakeStaged struct {
	f *fakeSnapshots
	b []byte
}

func (s *fakeStaged) Index() uint64 { return 5 }

func (s *fakeStaged) Restore(context.Context) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.restored = append(s.f.restored, s.b)
	return nil
}

func (s *fakeStaged) Discard() {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.discarded++
}

func backupBytes(n int) []byte {
	b := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
	copy(b, "BACKUP")
	return b
}

// TestSnapshotRoundTrip: over a signed API, Backup streams a backup larger
// than MaxBodyBytes with its index in the trailer, and RestoreSnapshot
// posts one (the body limit for /snapshot is its own).
func TestSnapshotRoundTrip(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			f := newFakeNode()
			snaps := &fakeSnapshots{backup: backupBytes(3 << 20)}
			cfg := f.config()
			cfg.Snapshots = snaps
			cfg.Secret, cfg.ClusterID = testSecret, testClusterID
			base, c := startAPI(t, cfg, useTLS, testSecret)
			ctx := context.Background()
			var got bytes.Buffer
			index, err := c.Backup(ctx, base, &got)
			if err != nil || index != 77 || !bytes.Equal(got.Bytes(), snaps.backup) {
				t.Fatalf("Backup: index %d, %d bytes, %v; want 77, the %d bytes served", index, got.Len(), err, len(snaps.backup))
			}
			body := backupBytes(5 << 20)
			r := bytes.NewReader(append([]byte("skipped"), body...))
			if _, err := r.Seek(7, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			bi, err := c.RestoreSnapshot(ctx, base, r)
			if err != nil || bi != 5 {
				t.Fatalf("RestoreSnapshot: %d, %v", bi, err)
			}
			staged, discarded, restored := snaps.counts()
			if staged != 1 || discarded != 1 || restored != 1 || !bytes.Equal(snaps.restored[0], body) {
				t.Fatalf("staged %d, discarded %d, restored %d (want 1 each, with the body from the reader's offset)", staged, discarded, restored)
			}
			_, err = c.RestoreSnapshot(ctx, base, strings.NewReader("not one"))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a backup") {
				t.Fatalf("RestoreSnapshot of garbage: got %v, want ErrInvalid saying why", err)
			}
		})
	}
}

// TestSnapshotBackupFailsMidway: a backup that fails after its first bytes
// aborts the answer, so the client gets an error, not a short backup.
func TestSnapshotBackupFailsMidway(t *testing.T) {
	f := newFakeNode()
	cfg := f.config()
	cfg.Snapshots = &fakeSnapshots{backup: backupBytes(1 << 20), failAfter: 100 << 10}
	base, c := startAPI(t, cfg, false, nil)
	var got bytes.Buffer
	if _, err := c.Backup(context.Background(), base, &got); err == nil {
		t.Fatalf("Backup that failed midway: no error, %d bytes", got.Len())
	}
}

// TestSnapshotRestoreChecks: the restore acts only on a body read to its
// end that matches its signature, and within MaxSnapshotBytes.
func TestSnapshotRestoreChecks(t *testing.T) {
	body := backupBytes(64 << 10)
	sum := sha256.Sum256(body)
	other := sha256.Sum256([]byte("another body"))
	at := time.UnixMilli(1_700_000_000_000)
	signer := mustSigner(testSecret, testClusterID)
	tests := []struct {
		name     string
		snaps    *fakeSnapshots
		sum      [32]byte
		limit    int64
		chunked  bool
		want     int
		restores int
	}{
		{"signed", &fakeSnapshots{}, sum, 0, false, http.StatusOK, 1},
		{"body does not match the signature", &fakeSnapshots{}, other, 0, false, http.StatusUnauthorized, 0},
		{"node stops reading early", &fakeSnapshots{readOnly: 100}, sum, 0, false, http.StatusUnauthorized, 0},
		{"over the limit", &fakeSnapshots{}, sum, 1000, false, http.StatusRequestEntityTooLarge, 0},
		{"over the limit, no length", &fakeSnapshots{}, sum, 1000, true, http.StatusRequestEntityTooLarge, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNode()
			clk := &clock{t: at}
			cfg := f.config()
			withSecret(f, &cfg)
			cfg.Snapshots, cfg.MaxSnapshotBytes, cfg.now = tt.snaps, tt.limit, clk.now
			h := NewHandler(cfg)
			var rd io.Reader = bytes.NewReader(body)
			if tt.chunked {
				rd = io.MultiReader(rd) // hides the length
			}
			req, _ := http.NewRequest(http.MethodPost, "http://node"+PathSnapshot, rd)
			req.RequestURI = PathSnapshot
			req.Header.Set("Authorization", signer.Authorization(http.MethodPost, PathSnapshot, tt.sum, at))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body.String(), tt.want)
			}
			staged, _, restored := tt.snaps.counts()
			if restored != tt.restores || tt.snaps.undiscarded() != 0 {
				t.Fatalf("restored %d (want %d); %d staged backups not discarded", restored, tt.restores, tt.snaps.undiscarded())
			}
			if tt.want == http.StatusRequestEntityTooLarge && !tt.chunked && staged != 0 {
				t.Fatal("a body whose length is over the limit was read")
			}
		})
	}
}
