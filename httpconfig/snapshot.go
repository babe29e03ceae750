package httpconfig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
)

// PathSnapshot serves backups: GET writes one, POST restores one.
const PathSnapshot = "/snapshot"

// TrailerBackupIndex is the HTTP trailer of a GET /snapshot answer that
// holds the log index whose state the backup holds (decimal).
const TrailerBackupIndex = "X-Canoe-Backup-Index"

const contentTypeBackup = "application/octet-stream"

// restoreResponse answers a POST /snapshot.
type restoreResponse struct {
	Restored    bool   `json:"restored"`
	BackupIndex uint64 `json:"backup_index"`
}

// snapshotContext returns the context for calling the node on behalf of a
// /snapshot request, and extends the connection's deadlines to match.
func (h *handler) snapshotContext(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc) {
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(h.cfg.SnapshotTimeout)
	// Errors mean the writer cannot have deadlines (httptest's recorder):
	// nothing to extend then.
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
	return context.WithDeadline(r.Context(), deadline)
}

// getSnapshot streams a backup. Before the first byte an error gets its
// status; after it, the answer is aborted.
func (h *handler) getSnapshot(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ctx, cancel := h.snapshotContext(w, r)
	defer cancel()
	bw := &backupWriter{w: w}
	index, err := h.cfg.Snapshots.Backup(ctx, bw)
	switch {
	case err != nil && !bw.started:
		h.fail(w, r, err)
		return
	case err != nil:
		h.log.Warn("backup failed after part of it was sent; aborting the answer", "path", r.URL.Path, "bytes", bw.n, "error", err)
		panic(http.ErrAbortHandler)
	}
	bw.start()
	w.Header().Set(TrailerBackupIndex, strconv.FormatUint(index, 10))
}

// backupWriter sends the answer's header at the first write.
type backupWriter struct {
	w       http.ResponseWriter
	started bool
	n       int64
}

func (b *backupWriter) start() {
	if b.started {
		return
	}
	b.started = true
	hdr := b.w.Header()
	hdr.Set("Content-Type", contentTypeBackup)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Trailer", TrailerBackupIndex)
	b.w.WriteHeader(http.StatusOK)
}

func (b *backupWriter) Write(p []byte) (int, error) {
	b.start()
	n, err := b.w.Write(p)
	b.n += int64(n)
	return n, err
}

// postSnapshot restores the backup in the body. The node reads the body
// to its end and checks the backup before anything changes; the restore
// happens only if the body also matches its signature.
func (h *handler) postSnapshot(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ctx, cancel := h.snapshotContext(w, r)
	defer cancel()
	if r.ContentLength > h.cfg.MaxSnapshotBytes {
		h.fail(w, r, fmt.Errorf("%w: body of %d bytes over the limit of %d bytes (MaxSnapshotBytes)", ErrTooLarge, r.ContentLength, h.cfg.MaxSnapshotBytes))
		return
	}
	// r.Body stays as it is, for bodyVerified.
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxSnapshotBytes)
	staged, err := h.cfg.Snapshots.StageRestore(ctx, body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = fmt.Errorf("%w: body over the limit of %d bytes (MaxSnapshotBytes)", ErrTooLarge, mbe.Limit)
		}
		h.fail(w, r, err)
		return
	}
	defer staged.Discard()
	if !bodyVerified(r) {
		// StageRestore returned without reading the signed body to its end.
		h.fail(w, r, errBodyMismatch)
		return
	}
	if err := staged.Restore(ctx); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, restoreResponse{Restored: true, BackupIndex: staged.Index()})
}
