package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func TestCheckBoltFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	store, err := openBolt(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	info, err := os.Stat(good)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want string // "" = accepted
	}{
		{"missing", filepath.Join(dir, "none.db"), ""},
		{"empty", write("empty.db", nil), ""},
		{"valid", good, ""},
		{"garbage", write("garbage.db", []byte(strings.Repeat("garbage!", 2048))), "no valid meta page"},
		{"truncated to two pages", write("short.db", data[:8192]), "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBoltFile(tt.path)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
	if info.Size() < 8192 {
		t.Fatalf("test assumes a bolt file of several pages, got %d bytes", info.Size())
	}
	if _, err := openBolt(filepath.Join(dir, "short.db")); err == nil || !strings.Contains(err.Error(), "short.db is damaged") {
		t.Fatalf("openBolt of a truncated file: got %v, want an error naming the file", err)
	}
}
