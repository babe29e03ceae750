package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestWaitForWaitsInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ready := start.Add(3 * time.Second)
		WaitFor(t, 10*time.Second, "three seconds", func() bool { return !time.Now().Before(ready) })
		if d := time.Since(start); d < 3*time.Second || d > 3*time.Second+10*time.Millisecond {
			t.Fatalf("WaitFor returned after %v, want about 3s", d)
		}
	})
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { b.Write([]byte("ab")) })
	}
	wg.Wait()
	if got := len(b.String()); got != 20 {
		t.Fatalf("%d bytes, want 20", got)
	}
}

func TestDirNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b", "a", "c"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := DirNames(t, dir); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("DirNames = %q, want [a b c]", got)
	}
}
