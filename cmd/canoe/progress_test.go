package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{48 << 20, "48.0 MiB"}, {3 << 30, "3.0 GiB"}, {5 << 40, "5.0 TiB"}, {1 << 62, "4.0 EiB"},
	} {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// header returns the fixed header of a version-1 backup with the given
// sizes.
func header(version uint16, membership, state uint64) []byte {
	b := []byte(backupMagic)
	b = binary.BigEndian.AppendUint16(b, version)
	b = append(b, make([]byte, 40)...)
	b = binary.BigEndian.AppendUint64(b, membership)
	return binary.BigEndian.AppendUint64(b, state)
}

func TestBackupSize(t *testing.T) {
	h := header(1, 100, 1000)
	if size, ok := backupSize(h); !ok || size != 66+100+1000+32 {
		t.Errorf("backupSize: %d, %v; want %d", size, ok, 66+100+1000+32)
	}
	for name, b := range map[string][]byte{
		"short":         h[:65],
		"not a backup":  append([]byte("NOTABACK"), h[8:]...),
		"version 2":     header(2, 100, 1000),
		"absurd size":   header(1, 0, 1<<63),
		"absurd member": header(1, 1<<63, 0),
	} {
		if size, ok := backupSize(b); ok {
			t.Errorf("%s: backupSize = %d, want not known", name, size)
		}
	}
}

// fakeClock advances by step at each reading.
func fakeClock(step time.Duration) func() time.Time {
	now := time.Unix(1000, 0)
	return func() time.Time {
		now = now.Add(step)
		return now
	}
}

// TestProgressLine: the line says bytes done of the total, learned from a
// backup's header as it streams by, with the percentage, a bar and the
// rate; it is redrawn in place and ends with a newline.
func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "saving f.bak", -1)
	p.now = fakeClock(time.Second)
	p.start = time.Unix(1000, 0)
	p.learnTotal = true
	stream := append(header(1, 0, 4096-66-32), make([]byte, 4096-66)...)
	_, _ = p.Write(stream[:10]) // the header is not complete yet: no total
	if got := out.String(); !strings.HasPrefix(got, "\rsaving f.bak  10 B  ") || strings.Contains(got, "%") {
		t.Errorf("before the header: %q", got)
	}
	_, _ = p.Write(stream[10:2048])
	if got := out.String(); !strings.Contains(got, "\rsaving f.bak  2.0 KiB / 4.0 KiB   50%  [============            ]") {
		t.Errorf("half way: %q", got)
	}
	_, _ = p.Write(stream[2048:])
	p.finish()
	lines := strings.Split(out.String(), "\r")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "saving f.bak  4.0 KiB / 4.0 KiB  100%  [========================]") || !strings.HasSuffix(last, "\n") {
		t.Errorf("final line %q", last)
	}
	// A shorter line overwrites a longer one completely.
	if w := len(lines[1]); len(strings.TrimRight(last, "\n")) < w && !strings.HasSuffix(strings.TrimRight(last, "\n"), " ") {
		t.Errorf("final line %q does not cover %q", last, lines[1])
	}

	// A nil progress does nothing.
	var none *progress
	none.add([]byte("x"))
	none.finish()
	none.abort()
}

// TestProgressRedrawRate: many small writes redraw at most every
// progressEvery.
func TestProgressRedrawRate(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "x", 1000)
	now := time.Unix(1000, 0)
	p.now = func() time.Time { return now }
	for range 1000 {
		now = now.Add(progressEvery / 10)
		p.add([]byte{0})
	}
	if n := strings.Count(out.String(), "\r"); n != 100 {
		t.Errorf("%d redraws for 1000 writes over %v, want 100", n, 100*progressEvery)
	}
}

// TestPassReader: each pass over the file gets its own line and label,
// and the end of the last pass says the node is at work.
func TestPassReader(t *testing.T) {
	var out bytes.Buffer
	data := strings.Repeat("x", 3000)
	r := &passReader{f: strings.NewReader(data), size: int64(len(data)), w: &out, labels: []string{"hashing", "sending"}, done: "sent"}
	for pass := range 2 {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil || len(b) != len(data) {
			t.Fatalf("pass %d read %d bytes (%v)", pass, len(b), err)
		}
	}
	r.end()
	got := out.String()
	for _, want := range []string{"\rhashing  2.9 KiB / 2.9 KiB  100%", "\n\rsending  ", "\rsending  2.9 KiB / 2.9 KiB  100%", "\nsent\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%q", want, got)
		}
	}
	if strings.Count(got, "sent\n") != 1 || !strings.HasSuffix(got, "sent\n") {
		t.Errorf("output %q: want one \"sent\" line, at the end", got)
	}
}

func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for name, w := range map[string]io.Writer{"the null device": null, "a file": file, "a pipe": pw, "a buffer": &bytes.Buffer{}} {
		if isTerminal(w) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
	for mode, want := range map[string]bool{"always": true, "never": false, "auto": false} {
		if on, err := progressOn(mode, pw); err != nil || on != want {
			t.Errorf("-progress %s on a pipe: %v, %v; want %v", mode, on, err, want)
		}
	}
	if _, err := progressOn("yes", pw); err == nil {
		t.Error("-progress yes accepted")
	}
}

// TestProgressOnTerminal runs canoe snapshot inspect with stderr on a
// terminal (script(1) gives it one): the progress bar shows without
// -progress.
func TestProgressOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the canoe binary")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to run canoe on a terminal")
	}
	bin, err := buildBins()
	if err != nil {
		t.Fatal(err)
	}
	// A valid backup is not needed: the bar is drawn as the file is read,
	// and the error comes after it.
	file := filepath.Join(t.TempDir(), "f.bak")
	if err := os.WriteFile(file, bytes.Repeat([]byte("x"), 100000), 0o600); err != nil {
		t.Fatal(err)
	}
	canoe := filepath.Join(bin, "canoe")
	out, _ := exec.Command(script, "-qec", canoe+" snapshot inspect "+file, os.DevNull).CombinedOutput()
	if !strings.Contains(string(out), "\rverifying "+file) {
		t.Errorf("on a terminal, inspect drew no progress bar:\n%q", out)
	}
	out, _ = exec.Command(script, "-qec", canoe+" snapshot inspect -progress never "+file, os.DevNull).CombinedOutput()
	if strings.Contains(string(out), "verifying") || !strings.Contains(string(out), "not a canoe backup") {
		t.Errorf("with -progress never on a terminal:\n%q", out)
	}
}
