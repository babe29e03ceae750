package test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEGoBlocksCompile builds every Go block of the README as the
// program it is (each is a complete main package), against this checkout,
// so that the README cannot show code that no longer compiles.
func TestREADMEGoBlocksCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlocks(t, filepath.Join(root, "README.md"))
	if len(blocks) == 0 {
		t.Fatal("the README holds no Go block")
	}
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		if !strings.Contains(b.code, "package main") {
			t.Errorf("README line %d: the Go block is not a complete program (package main)", b.line)
			continue
		}
		dir := t.TempDir()
		mod := "module readme\n\ngo 1.25.0\n\nrequire github.com/canoe-raft/canoe v0.0.0\n\nreplace github.com/canoe-raft/canoe => " + root + "\n"
		for name, content := range map[string][]byte{"go.mod": []byte(mod), "go.sum": sums, "main.go": []byte(b.code)} {
			if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("go", "vet", "-mod=mod", ".")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("README line %d (Go block %d) does not build:\n%s", b.line, i+1, out)
		}
	}
}

type goBlock struct {
	line int
	code string
}

// goBlocks returns the README's ```go blocks.
func goBlocks(t *testing.T, path string) []goBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goBlock
	var cur *strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur, start = &strings.Builder{}, n
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, goBlock{line: start, code: cur.String()})
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
