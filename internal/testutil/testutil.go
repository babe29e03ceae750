// Package testutil holds the helpers canoe's test packages share. Only
// tests import it.
package testutil

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test if it does not within
// timeout; what names the condition in the failure. It sleeps between
// polls, so inside a testing/synctest bubble it waits in virtual time.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers: the output of a
// logger that several goroutines use.
type SyncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// DirNames returns the names of the entries in dir, sorted; it fails t when
// dir cannot be read.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name()) // os.ReadDir sorts by name
	}
	return names
}
