package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Progress bars for the transfers of the snapshot commands: one line on
// stderr, redrawn in place ("\r") at most every progressEvery, that says
// bytes done / total (when the total is known), the percentage, a bar and
// the rate. Shown when stderr is a terminal, or when -progress=always.

const progressEvery = 100 * time.Millisecond

// addProgressFlag adds -progress to fs.
func addProgressFlag(fs *flag.FlagSet) *string {
	return fs.String("progress", "auto", "progress bar on stderr: `auto` (when stderr is a terminal), always or never")
}

// progressOn reports whether a command shows progress under -progress
// mode, stderr being stderr; an unknown mode is a usage error.
func progressOn(mode string, stderr io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		return isTerminal(stderr), nil
	}
	return false, usagef("-progress %q: want auto, always or never", mode)
}

// isTerminal reports whether w is a terminal: an *os.File on a character
// device other than the null device (a pipe, a file or /dev/null is not).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// progress is one progress line. A nil *progress does nothing, so that
// callers need not check whether progress is on.
type progress struct {
	w     io.Writer
	label string
	total int64 // -1: unknown
	done  int64
	start time.Time
	last  time.Time // of the last redraw
	width int       // of the line last drawn
	now   func() time.Time

	// header collects the first bytes of a backup stream, to learn its
	// total size from its header (learnTotal).
	learnTotal bool
	header     []byte
}

func newProgress(w io.Writer, label string, total int64) *progress {
	now := time.Now
	return &progress{w: w, label: label, total: total, start: now(), now: now}
}

// Write counts p as done; it never fails, so that it can sit in an
// io.MultiWriter.
func (p *progress) Write(b []byte) (int, error) {
	p.add(b)
	return len(b), nil
}

func (p *progress) add(b []byte) {
	if p == nil {
		return
	}
	if p.learnTotal && p.total < 0 && len(p.header) < backupHeaderSize {
		p.header = append(p.header, b[:min(len(b), backupHeaderSize-len(p.header))]...)
		if size, ok := backupSize(p.header); ok {
			p.total = size
		}
	}
	p.done += int64(len(b))
	if now := p.now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.draw()
	}
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}

// abort ends the line as it is, so that an error message starts on a line
// of its own.
func (p *progress) abort() {
	if p == nil || p.width == 0 {
		return
	}
	fmt.Fprintln(p.w)
}

func (p *progress) draw() {
	line := p.line()
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
}

// line is the text of the progress line.
func (p *progress) line() string {
	var b strings.Builder
	b.WriteString(p.label)
	b.WriteString("  ")
	b.WriteString(formatBytes(p.done))
	if p.total >= 0 {
		pct := 100.0
		if p.total > 0 {
			pct = min(100, 100*float64(p.done)/float64(p.total))
		}
		const barWidth = 24
		filled := int(pct / 100 * barWidth)
		fmt.Fprintf(&b, " / %s  %3.0f%%  [%s%s]", formatBytes(p.total), pct,
			strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled))
	}
	if secs := p.now().Sub(p.start).Seconds(); secs > 0 {
		fmt.Fprintf(&b, "  %s/s", formatBytes(int64(float64(p.done)/secs)))
	}
	return b.String()
}

// formatBytes formats n bytes with a binary unit: 512 B, 1.5 KiB, 3.0 GiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// The start of a canoe backup, as canoe/internal/backup lays it out
// (format version 1): the magic, a 2-byte version, five 8-byte fields,
// then the 8-byte sizes of the membership record and of the state; the
// backup is this header, those two parts and a 32-byte SHA-256. Only the
// progress bar reads it, to know a backup's size from its first bytes (a
// GET /snapshot answer is streamed, with no Content-Length); canoe's
// InspectBackup verifies every backup saved.
const (
	backupMagic      = "CANOEBAK"
	backupHeaderSize = 66
	backupSumSize    = 32
)

// backupSize returns the size of the whole backup that header starts,
// once header holds the fixed header of a version-1 backup.
func backupSize(header []byte) (int64, bool) {
	if len(header) < backupHeaderSize || string(header[:len(backupMagic)]) != backupMagic ||
		binary.BigEndian.Uint16(header[8:10]) != 1 {
		return 0, false
	}
	m, s := binary.BigEndian.Uint64(header[50:58]), binary.BigEndian.Uint64(header[58:66])
	const limit = 1 << 62
	if m > limit || s > limit {
		return 0, false
	}
	return backupHeaderSize + int64(m) + int64(s) + backupSumSize, true
}

// progressReader counts what is read through it on a progress line.
type progressReader struct {
	r io.Reader
	p *progress
}

func (r progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(b[:n])
	return n, err
}

// passReader is an io.ReadSeeker over a file that httpconfig's
// RestoreSnapshot reads twice (once to hash it for the signature, once to
// send it): each pass from the start gets a progress line of its own, with
// the next of labels (the last one repeats). Once the last label's pass
// has read the whole file, it says that the node is at work.
type passReader struct {
	f      io.ReadSeeker
	size   int64
	w      io.Writer // nil: no progress
	labels []string
	done   string // printed once the last pass has read everything
	pass   int
	p      *progress
	sent   bool // the last pass read everything
}

func (r *passReader) Read(b []byte) (int, error) {
	if r.p == nil && r.w != nil && !r.sent {
		r.p = newProgress(r.w, r.labels[min(r.pass, len(r.labels)-1)], r.size)
	}
	n, err := r.f.Read(b)
	r.p.add(b[:n])
	if r.p != nil && r.p.done >= r.size && r.pass >= len(r.labels)-1 {
		r.p.finish()
		r.p, r.sent = nil, true
		fmt.Fprintln(r.w, r.done)
	}
	return n, err
}

func (r *passReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := r.f.Seek(offset, whence)
	if err == nil && pos == 0 && r.p != nil && r.p.done > 0 {
		r.p.finish()
		r.p = nil
		r.pass++
	}
	return pos, err
}

// end ends the line of a pass cut short.
func (r *passReader) end() {
	if r.p != nil {
		r.p.abort()
		r.p = nil
	}
}
